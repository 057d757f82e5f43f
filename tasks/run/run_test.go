package run

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/deploy/output/outputtest"
	"github.com/davit-deploy/davit/recipes"
)

func writeDeployfile(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "Deployfile")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A long-running command makes a fresh Run per firing: each one runs its
// tasks once and computes its lazy values once, however many runs the
// process has made before.
func TestFreshRunPerFiring(t *testing.T) {
	path := writeDeployfile(t, `
set("stamp", lambda: str(len(fetch("runs", []))))
def tick(ctx):
    info("tick " + fetch("stamp") + " " + fetch("who"))
task("tick", tick)
task("twice", lambda ctx: [invoke("tick"), invoke("tick")])
`)
	for i, who := range []string{"first", "second"} {
		rec := &outputtest.Recorder{}
		r, err := Load(context.Background(), Config{
			Deployfile: path, GoRecipes: recipes.Go(), Recipes: recipes.Starlark(),
			Overrides: map[string]string{"who": who}, Terminal: rec,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Check("twice", "tick"); err != nil {
			t.Fatal(err)
		}
		if err := r.Execute(context.Background(), "twice", "tick"); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		var ticks []string
		for _, ev := range rec.Of(output.Message) {
			ticks = append(ticks, ev.Line)
		}
		if len(ticks) != 1 || ticks[0] != "tick 0 "+who {
			t.Errorf("run %d printed %q; want one tick of its own", i, ticks)
		}
	}
}

// Check reports every unknown task and hook at once, before anything runs.
func TestCheckReportsAllProblemsAtOnce(t *testing.T) {
	path := writeDeployfile(t, `
task("a", lambda ctx: fail("must not run"))
task("b", lambda ctx: None)
after("a", "a:restrat")
before("b", "nope")
`)
	r, err := Load(context.Background(), Config{Deployfile: path})
	if err != nil {
		t.Fatal(err)
	}
	err = r.Check("a", "b", "c")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`after hook of task a at`, `unknown task "a:restrat"`, `before hook of task b`, `unknown task "nope"`, `unknown task "c"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// Redact hides secrets in text that leaves davit outside its output.
func TestRedact(t *testing.T) {
	path := writeDeployfile(t, `set("db_password", "S3cr3t-xyz")`)
	r, err := Load(context.Background(), Config{Deployfile: path})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Redact("echo pw=S3cr3t-xyz"); got != "echo pw="+output.Redacted {
		t.Errorf("Redact = %q", got)
	}
}
