package run

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/deploy/output/outputtest"
	"github.com/davit-deploy/davit/recipes"
	"github.com/davit-deploy/davit/tasks"
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

// countingSource is a host source that counts how often it is asked.
type countingSource struct {
	tag   string
	asked *atomic.Int32
}

func (s countingSource) Name() string     { return "fake" }
func (s countingSource) Describe() string { return "instances tagged " + s.tag }
func (s countingSource) Hosts(ctx context.Context) ([]*deploy.Host, error) {
	s.asked.Add(1)
	if s.tag == "none" {
		return nil, nil
	}
	return []*deploy.Host{{Name: "found-1", Address: "127.0.0.9", Roles: []string{"app"}, Props: map[string]any{"instance_id": "i-1"}}}, nil
}

// sourceRecipe contributes fake_servers(tag), which records a countingSource.
type sourceRecipe struct{ asked *atomic.Int32 }

func (sourceRecipe) SetDefaults(*tasks.Vars)             {}
func (sourceRecipe) DefineTasks(*tasks.Registry) error   { return nil }
func (sourceRecipe) RegisterHooks(*tasks.Registry) error { return nil }
func (r sourceRecipe) Builtins() []tasks.Builtin {
	return []tasks.Builtin{{
		Name: "fake_servers", Params: []tasks.Param{{Name: "tag", Kind: tasks.KindString}},
		Phases: tasks.PhaseLoad | tasks.PhaseStage,
		Call: func(c *tasks.BuiltinCall) (any, error) {
			c.AddHostSource(countingSource{tag: c.String("tag"), asked: r.asked})
			return nil, nil
		},
	}}
}

func TestHostSourcesAskedOnlyWhenTasksRun(t *testing.T) {
	path := writeDeployfile(t, `
use("fake")
def production():
    server("localhost", roles = ["db"])
    fake_servers("App=payroll")
stage("production", production)
stage("empty", lambda: fake_servers("none"))
def count(ctx):
    info("%d hosts: %s" % (len(roles("all")), ", ".join([h.name + "/" + h.properties.get("instance_id", "-") for h in roles("all")])))
task("count", count)
`)
	var asked atomic.Int32
	cfg := func(rec *outputtest.Recorder) Config {
		return Config{Deployfile: path, Terminal: rec,
			GoRecipes: map[string]func() tasks.Recipe{"fake": func() tasks.Recipe { return sourceRecipe{&asked} }}}
	}
	ctx := context.Background()
	// Loading and selecting the stage (all `davit -T production` does)
	// asks nothing.
	r, err := Load(ctx, cfg(&outputtest.Recorder{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.UseStage(ctx, "production"); err != nil {
		t.Fatal(err)
	}
	if asked.Load() != 0 {
		t.Fatalf("source asked %d times before any task ran", asked.Load())
	}
	// A run asks once, however many tasks it runs.
	rec := &outputtest.Recorder{}
	r, _ = Load(ctx, cfg(rec))
	if err := r.UseStage(ctx, "production"); err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(ctx, "count", HostsTask); err != nil {
		t.Fatal(err)
	}
	if asked.Load() != 1 {
		t.Errorf("source asked %d times in one run; want 1", asked.Load())
	}
	var lines []string
	for _, ev := range rec.Of(output.Message) {
		lines = append(lines, ev.Line)
	}
	if len(lines) != 1 || lines[0] != "2 hosts: localhost/-, found-1/i-1" {
		t.Errorf("count printed %q", lines)
	}
	var sources []string
	for _, ev := range rec.Of(output.HostInfo) {
		sources = append(sources, ev.Server.Name+"="+ev.Server.Source)
	}
	if strings.Join(sources, " ") != "localhost=static found-1=fake" {
		t.Errorf("hosts task listed %v", sources)
	}

	// A stage whose source finds nothing says what it asked.
	rec = &outputtest.Recorder{}
	r, _ = Load(ctx, cfg(rec))
	if err := r.UseStage(ctx, "empty"); err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(ctx, HostsTask); err != nil {
		t.Fatal(err)
	}
	if m := rec.Of(output.Message); len(m) != 1 || m[0].Line != "no hosts: 0 declared servers; fake (instances tagged none): none" {
		t.Errorf("empty stage: %+v", m)
	}
}

// A deploy that finds no hosts says where it looked and what it asked.
func TestDeployWithoutHostsNamesItsSources(t *testing.T) {
	path := writeDeployfile(t, `
use("deploy")
use("fake")
set("application", "app")
stage("production", lambda: fake_servers("none"))
stage("filtered", lambda: [server("localhost", roles = ["db"]), fake_servers("none")])
`)
	var asked atomic.Int32
	goRecipes := recipes.Go()
	goRecipes["fake"] = func() tasks.Recipe { return sourceRecipe{&asked} }
	ctx := context.Background()
	for stage, want := range map[string]string{
		"production": "no hosts to deploy: the stage has none; the stage's hosts come from 0 declared servers; fake (instances tagged none): none",
		"filtered":   "no hosts to deploy: none of the stage's 1 hosts has a role in deploy_roles [app] (after --roles/--hosts); the stage's hosts come from 1 declared server; fake (instances tagged none): none",
	} {
		r, err := Load(ctx, Config{Deployfile: path, GoRecipes: goRecipes, Overrides: map[string]string{"deploy_roles": "app"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.UseStage(ctx, stage); err != nil {
			t.Fatal(err)
		}
		err = r.Execute(ctx, "deploy")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: deploy = %v\nwant %q", stage, err, want)
		}
	}
}

// panicRecipe's task panics with a secret in its message.
type panicRecipe struct{}

func (panicRecipe) SetDefaults(*tasks.Vars) {}
func (panicRecipe) DefineTasks(r *tasks.Registry) error {
	return r.Define(&tasks.Task{Name: "explode", Run: func(c *tasks.Context) error {
		pw, _ := c.Executor.Vars.FetchString("db_password")
		panic("cannot connect with " + pw)
	}})
}
func (panicRecipe) RegisterHooks(*tasks.Registry) error { return nil }

// A panic davit recovers from reaches the user as an error: its text is
// redacted in the run's output and log, and by Redact for the CLI.
func TestRecoveredPanicIsRedacted(t *testing.T) {
	path := writeDeployfile(t, `
use("boom")
set("db_password", "S3cr3t-xyz")
`)
	logPath := filepath.Join(t.TempDir(), "davit.log")
	rec := &outputtest.Recorder{}
	r, err := Load(context.Background(), Config{Deployfile: path, Terminal: rec, LogPath: logPath,
		GoRecipes: map[string]func() tasks.Recipe{"boom": func() tasks.Recipe { return panicRecipe{} }}})
	if err != nil {
		t.Fatal(err)
	}
	err = r.Execute(context.Background(), "explode")
	if err == nil || !strings.Contains(err.Error(), "panic: cannot connect with S3cr3t-xyz") {
		t.Fatalf("Execute = %v; want the recovered panic", err)
	}
	if got := r.Redact(err.Error()); strings.Contains(got, "S3cr3t-xyz") || !strings.Contains(got, output.Redacted) {
		t.Errorf("Redact left the secret: %s", got)
	}
	for _, ev := range rec.Events() {
		if strings.Contains(fmt.Sprint(ev), "S3cr3t-xyz") {
			t.Errorf("event shows the secret: %+v", ev)
		}
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "S3cr3t-xyz") || !strings.Contains(string(data), "panic: cannot connect with "+output.Redacted) {
		t.Errorf("log:\n%s", data)
	}
}

// UseHosts replaces the stage's servers and host sources: the sources
// are never asked, and the run sees exactly the hosts given.
func TestGivenHostsReplaceTheInventory(t *testing.T) {
	path := writeDeployfile(t, `
use("fake")
def production():
    server("web1.example.com", roles = ["app"])
    fake_servers("App=payroll")
stage("production", production)
def count(ctx):
    info(", ".join([h.name + "/" + ",".join(h.roles) + "/" + h.properties.get("instance_type", "-") for h in roles("all")]))
task("count", count)
`)
	var asked atomic.Int32
	rec := &outputtest.Recorder{}
	given := []*deploy.Host{{Name: "localhost", Roles: []string{"job"}, Props: map[string]any{"instance_type": "m1.large"}}}
	r, err := Load(context.Background(), Config{Deployfile: path, Terminal: rec,
		GoRecipes: map[string]func() tasks.Recipe{"fake": func() tasks.Recipe { return sourceRecipe{&asked} }}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.UseStage(context.Background(), "production"); err != nil {
		t.Fatal(err)
	}
	r.UseHosts(given)
	given[0].Roles[0] = "changed" // the run keeps its own copy
	if err := r.Execute(context.Background(), "count"); err != nil {
		t.Fatal(err)
	}
	if asked.Load() != 0 {
		t.Errorf("the host source was asked %d times", asked.Load())
	}
	if m := rec.Of(output.Message); len(m) != 1 || m[0].Line != "localhost/job/m1.large" {
		t.Errorf("count printed %+v", m)
	}
}
