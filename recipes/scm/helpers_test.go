package scm

import (
	"context"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/backend/local"
	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/deploy/output/outputtest"
	"github.com/davit-deploy/davit/tasks"
)

// recorder keeps every event of a run.
type recorder struct{ outputtest.Recorder }

// commands returns the Command of every CommandStart event.
func (r *recorder) commands() []string {
	var out []string
	for _, ev := range r.Events() {
		if ev.Kind == output.CommandStart {
			out = append(out, ev.Command)
		}
	}
	return out
}

// messages returns the text of every Message event.
func (r *recorder) messages() []string {
	var out []string
	for _, ev := range r.Events() {
		if ev.Kind == output.Message {
			out = append(out, ev.Level+": "+ev.Line)
		}
	}
	return out
}

// recBackend wraps a backend and records the full rendered shell line of
// every command (what becomes sh -c's argument, or what sshd receives) and
// every upload's destination.
type recBackend struct {
	deploy.Backend
	mu      sync.Mutex
	lines   []string
	uploads []string
}

func (b *recBackend) Run(ctx context.Context, c *deploy.Command, stdout, stderr io.Writer) (*deploy.Result, error) {
	b.mu.Lock()
	b.lines = append(b.lines, c.String())
	if c.Stdin != nil {
		// Data streamed into a command is a transfer too.
		b.uploads = append(b.uploads, "stdin: "+c.String())
	}
	b.mu.Unlock()
	return b.Backend.Run(ctx, c, stdout, stderr)
}

func (b *recBackend) Upload(ctx context.Context, r io.Reader, remote string, mode fs.FileMode) error {
	b.mu.Lock()
	b.uploads = append(b.uploads, remote)
	b.mu.Unlock()
	return b.Backend.Upload(ctx, r, remote, mode)
}

func (b *recBackend) recorded() (lines, uploads []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.lines), slices.Clone(b.uploads)
}

// env is one simulated run: an executor whose control machine is the local
// backend working in project (the "Deployfile's directory") and whose
// hosts get backends from connect, each wrapped in a recBackend.
type env struct {
	t       *testing.T
	ex      *tasks.Executor
	rec     *recorder
	control *recBackend
	project string

	mu    sync.Mutex
	hosts map[string]*recBackend
}

// newEnv builds a run over hosts. A nil connect gives every host the
// local backend.
func newEnv(t *testing.T, hosts []*deploy.Host, connect deploy.Connect) *env {
	t.Helper()
	e := &env{t: t, rec: &recorder{}, project: t.TempDir(), hosts: map[string]*recBackend{}}
	if connect == nil {
		home := t.TempDir()
		connect = func(ctx context.Context, h *deploy.Host) (deploy.Backend, error) {
			return local.New(home), nil
		}
	}
	pool := deploy.NewPool(func(ctx context.Context, h *deploy.Host) (deploy.Backend, error) {
		b, err := connect(ctx, h)
		if err != nil {
			return nil, err
		}
		rb := &recBackend{Backend: b}
		e.mu.Lock()
		e.hosts[h.Name] = rb
		e.mu.Unlock()
		return rb, nil
	})
	t.Cleanup(func() { pool.Close() })
	e.control = &recBackend{Backend: local.New(e.project)}
	e.ex = &tasks.Executor{
		Registry: tasks.NewRegistry(),
		Vars:     tasks.NewVars(),
		Hosts:    hosts,
		Pool:     pool,
		Local:    e.control,
		Sink:     e.rec,
	}
	return e
}

func (e *env) ctx() *tasks.Context {
	return tasks.NewContext(context.Background(), e.ex, &tasks.Task{Name: "scm:test"})
}

func (e *env) set(name string, v any) { e.ex.Vars.Set(name, v, tasks.Position{}) }

func (e *env) host(name string) *recBackend {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hosts[name]
}

// allLines is every command line any backend ran.
func (e *env) allLines() []string {
	lines, _ := e.control.recorded()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range e.hosts {
		l, _ := b.recorded()
		lines = append(lines, l...)
	}
	return lines
}

// localHosts makes hosts that run on this machine through the local
// backend; the first is the app role's primary.
func localHosts(names ...string) []*deploy.Host {
	var hs []*deploy.Host
	for i, n := range names {
		hs = append(hs, &deploy.Host{Name: n, Backend: "local", Roles: []string{"app"}, Primary: i == 0})
	}
	return hs
}

// onEach runs fn on every host of the run with a layout of its own under
// base (so local hosts, which share one filesystem, still have separate
// trees), in parallel.
func onEach(t *testing.T, e *env, base string, fn func(hc *tasks.HostContext, l deploy.Layout) error) error {
	t.Helper()
	c := e.ctx()
	return c.On(c.Roles("all"), nil, func(hc *tasks.HostContext) error {
		return fn(hc, deploy.Layout{DeployTo: filepath.Join(base, hc.Host.Name)})
	})
}

// run runs a command on the test machine and fails the test on error.
func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// tree lists every file under dir as "path: content" (directories as
// "path/", executables marked "(x)"), sorted, for comparing a release with its source.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			out = append(out, rel+"/")
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			x := ""
			if info.Mode()&0o100 != 0 {
				x = " (x)"
			}
			out = append(out, rel+": "+string(b)+x)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func mkdir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s %q lacks %q", what, s, sub)
		}
	}
}

// testRepo is a git repository with branches and tags for the tests.
type testRepo struct {
	dir  string
	url  string
	shas map[string]string // label -> commit
}

// newTestRepo builds:
//
//	c1 (tag v1.3.0, lightweight)
//	c2 (tag v1.4.0, annotated)
//	c3 (tag v1.4.2, annotated)  <- branch feature adds f1
//	c4 (tag v1.5.0-rc.1, lightweight)
//	c5 (tag v2.0.0, annotated)  <- main
func newTestRepo(t *testing.T) *testRepo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "origin")
	mkdir(t, dir)
	r := &testRepo{dir: dir, url: "file://" + dir, shas: map[string]string{}}
	run(t, dir, "git", "init", "--quiet", "-b", "main")
	commit := func(label string, files map[string]string) {
		writeFiles(t, dir, files)
		run(t, dir, "git", "add", "-A")
		run(t, dir, "git", "commit", "--quiet", "-m", label)
		r.shas[label] = run(t, dir, "git", "rev-parse", "HEAD")
	}
	commit("c1", map[string]string{
		"README":               "v1.3\n",
		"app/web/index.html":   "<h1>hi</h1>\n",
		"app/web/sub/page.txt": "page\n",
		"app/worker/job.txt":   "job\n",
		"lib/util.txt":         "util\n",
	})
	run(t, dir, "git", "tag", "v1.3.0")
	commit("c2", map[string]string{"README": "v1.4.0\n"})
	run(t, dir, "git", "tag", "-a", "-m", "release 1.4.0", "v1.4.0")
	commit("c3", map[string]string{"README": "v1.4.2\n"})
	run(t, dir, "git", "tag", "-a", "-m", "release 1.4.2", "v1.4.2")
	run(t, dir, "git", "checkout", "--quiet", "-b", "feature")
	commit("f1", map[string]string{"FEATURE": "yes\n"})
	run(t, dir, "git", "checkout", "--quiet", "main")
	commit("c4", map[string]string{"README": "v1.5.0-rc.1\n"})
	run(t, dir, "git", "tag", "v1.5.0-rc.1")
	commit("c5", map[string]string{"README": "v2.0.0\n"})
	run(t, dir, "git", "tag", "-a", "-m", "release 2.0.0", "v2.0.0")
	return r
}

// archiveTree lists what git archive of rev (a commit) holds, as tree does,
// by extracting it into a temporary directory with the real tools.
func archiveTree(t *testing.T, repo, rev, sub string) []string {
	t.Helper()
	dir := t.TempDir()
	line := "git archive " + rev + " | tar -x -f - -C " + dir
	if sub != "" {
		line = "git archive " + rev + " " + sub + " | tar -x -f - --strip-components=" + strconv.Itoa(strings.Count(sub, "/")+1) + " -C " + dir
	}
	run(t, repo, "sh", "-c", line)
	return tree(t, dir)
}

// checkProblems runs s.Check on every host of e and returns the problems
// of the last one.
func checkProblems(t *testing.T, e *env, s Strategy) []string {
	t.Helper()
	var problems []string
	err := onEach(t, e, t.TempDir(), func(hc *tasks.HostContext, l deploy.Layout) error {
		var err error
		problems, err = s.Check(hc, l)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return problems
}
