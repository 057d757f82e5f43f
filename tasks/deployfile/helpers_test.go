package deployfile

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/backend/local"
	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/deploy/output/outputtest"
	"github.com/davit-deploy/davit/recipes"
	"github.com/davit-deploy/davit/tasks"
)

// recorder keeps every event of a run.
type recorder struct{ outputtest.Recorder }

func (r *recorder) messages() []string {
	var out []string
	for _, ev := range r.Of(output.Message) {
		s := ev.Level + ":" + ev.Line
		if ev.Host != "" {
			s = ev.Host + ":" + s
		}
		out = append(out, s)
	}
	return out
}

// writeDeployfile writes src (with the test's temp dir substituted for
// $DIR) as DIR/Deployfile and returns its path.
func writeDeployfile(t *testing.T, src string) (path, dir string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "Deployfile")
	writeFile(t, path, strings.ReplaceAll(src, "$DIR", dir))
	return path, dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func load(t *testing.T, src string, opts ...func(*Options)) (*Project, string) {
	t.Helper()
	path, dir := writeDeployfile(t, src)
	o := Options{Version: "1.4.0", Recipes: recipes.Starlark()}
	for _, f := range opts {
		f(&o)
	}
	p, err := Load(context.Background(), path, o)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return p, dir
}

// loadErr loads src and returns the error, failing the test if there is none.
func loadErr(t *testing.T, src string) error {
	t.Helper()
	path, _ := writeDeployfile(t, src)
	_, err := Load(context.Background(), path, Options{Version: "1.4.0", Recipes: recipes.Starlark()})
	if err == nil {
		t.Fatal("load succeeded")
	}
	return err
}

// executor runs the project's tasks on its hosts with the local backend
// (every host is this machine).
func executor(t *testing.T, p *Project) (*tasks.Executor, *recorder) {
	t.Helper()
	pool := deploy.NewPool(func(ctx context.Context, h *deploy.Host) (deploy.Backend, error) {
		return local.New(""), nil
	})
	t.Cleanup(func() { pool.Close() })
	rec := &recorder{}
	return &tasks.Executor{
		Registry: p.Registry(),
		Vars:     p.Vars(),
		Hosts:    p.Hosts(),
		Pool:     pool,
		Local:    local.New(filepath.Dir(p.Path())),
		LocalDir: filepath.Dir(p.Path()),
		Sink:     rec,
	}, rec
}

// run loads src, selects stage (if not ""), and invokes task.
func run(t *testing.T, src, stage, task string) (*recorder, *Project, string, error) {
	t.Helper()
	p, dir := load(t, src)
	if stage != "" {
		if err := p.UseStage(stage); err != nil {
			t.Fatalf("stage: %v", err)
		}
	}
	ex, rec := executor(t, p)
	err := ex.Invoke(context.Background(), task)
	return rec, p, dir, err
}

func mustRun(t *testing.T, src, task string) (*recorder, *Project, string) {
	t.Helper()
	rec, p, dir, err := run(t, src, "", task)
	if err != nil {
		t.Fatalf("invoke %s: %v", task, err)
	}
	return rec, p, dir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tempPrefix matches the temporary directory before a test's Deployfile.
var tempPrefix = regexp.MustCompile(`/\S*/(Deployfile)`)

// contains checks err's message for each of wants, after shortening the
// test's temporary Deployfile path to "Deployfile" (as a user running davit
// in the project directory sees it).
func contains(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", wants)
	}
	msg := tempPrefix.ReplaceAllString(err.Error(), "$1")
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q:\n%s", w, msg)
		}
	}
}

func hostNames(hs []*deploy.Host) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.String())
	}
	slices.Sort(out)
	return out
}
