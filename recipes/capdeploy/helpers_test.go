package capdeploy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/backend/local"
	sshbackend "github.com/davit-deploy/davit/deploy/backend/ssh"
	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/deploy/output/outputtest"
	"github.com/davit-deploy/davit/deploy/sshtest"
	"github.com/davit-deploy/davit/recipes/scm"
	"github.com/davit-deploy/davit/tasks"
	"github.com/davit-deploy/davit/tasks/deployfile"
)

// isolated is the deploy path every simulated host has privately.
const isolated = "/srv/davit-test"

// recorder keeps every event of a run.
type recorder struct{ outputtest.Recorder }

// messages returns info and warn messages, "host: level: line".
func (r *recorder) messages() []string {
	var out []string
	for _, ev := range r.Of(output.Message) {
		out = append(out, ev.Host+": "+ev.Level+": "+ev.Line)
	}
	return out
}

func (r *recorder) text() string {
	lines := r.messages()
	for _, ev := range r.Of(output.TableKind) {
		lines = append(lines, ev.Table.String())
	}
	return strings.Join(lines, "\n")
}

// commands counts the commands each host ran.
func (r *recorder) commands() map[string]int {
	out := map[string]int{}
	for _, ev := range r.Of(output.CommandStart) {
		out[ev.Host]++
	}
	return out
}

// counting wraps a real strategy and counts Resolve calls, which must be
// one per run whatever the number of hosts.
type counting struct {
	scm.Strategy
	resolves *atomic.Int32
}

func (c counting) Resolve(tc *tasks.Context) (scm.Revision, error) {
	c.resolves.Add(1)
	return c.Strategy.Resolve(tc)
}

// scriptedTimer is what the git and svn strategies implement beyond
// Strategy; countingScripted keeps it visible through the wrapper, so the
// recipe runs their steps in its own commands as it does in production.
type scriptedTimer interface {
	scm.Scripted
	scm.RevisionTimer
}

type countingScripted struct {
	scriptedTimer
	resolves *atomic.Int32
}

func (c countingScripted) Resolve(tc *tasks.Context) (scm.Revision, error) {
	c.resolves.Add(1)
	return c.scriptedTimer.Resolve(tc)
}

// countingTimer keeps the copy strategy's RevisionTime visible.
type countingTimer struct {
	counting
	scm.RevisionTimer
}

// env is one test's fleet: sshd hosts with a private /srv/davit-test
// each, or this machine alone (local backend).
type env struct {
	t        testing.TB
	fleet    *sshtest.Fleet
	deployTo string
	// repo is a git working repository; repoURL its file:// URL, which
	// every host can read.
	repo, repoURL string
	resolves      atomic.Int32
	// clock, if set, pins the recipe's clock.
	clock func() time.Time
	// props adds keyword arguments to each server() (by host name).
	props     map[string]string
	localDir  string
	hostNames []string
	// broken holds the names of hosts whose application answers 500.
	broken sync.Map
	// limit, if set, declares only the fleet's first limit servers, so a
	// benchmark can use part of a fleet it started once.
	limit int
	// wrap, if set, stands between each host and its backend (a dry run,
	// a recording of what each host receives).
	wrap func(h *deploy.Host, b deploy.Backend) deploy.Backend
	// dryRun marks the executor's run as a dry run.
	dryRun bool
}

func newSSHEnv(t testing.TB, n int) *env {
	t.Helper()
	f := sshtest.Start(t, sshtest.Options{N: n, Isolate: []string{isolated}})
	e := &env{t: t, fleet: f, deployTo: isolated + "/app", props: map[string]string{}}
	for _, s := range f.Servers {
		e.hostNames = append(e.hostNames, s.Name)
	}
	e.initRepo()
	return e
}

// hostsDecl declares the env's servers: each by its ssh_config alias,
// with its loopback address (for health check URLs) and e.props.
func (e *env) hostsDecl() string {
	if e.fleet == nil {
		return `server("localhost", roles = ["app", "web"], primary = True` + e.props["localhost"] + `)`
	}
	var decl []string
	for i, s := range e.fleet.Servers[:e.n()] {
		primary := ""
		if i == 0 {
			primary = ", primary = True"
		}
		decl = append(decl, fmt.Sprintf(`server(%q, address = %q, roles = ["app", "web"]%s%s)`, s.Name, s.Host, primary, e.props[s.Name]))
	}
	return strings.Join(decl, "\n")
}

func newLocalEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, deployTo: filepath.Join(dir, "app"), localDir: dir, props: map[string]string{}, hostNames: []string{"localhost"}}
	e.initRepo()
	return e
}

// initRepo makes the application's git repository (branch main) with a
// first commit, "Welcome to v1".
func (e *env) initRepo() {
	e.t.Helper()
	e.repo = filepath.Join(e.t.TempDir(), "repo")
	if err := os.MkdirAll(e.repo, 0o755); err != nil {
		e.t.Fatal(err)
	}
	git(e.t, e.repo, "init", "--quiet", "--initial-branch=main")
	e.repoURL = "file://" + e.repo
	e.commit("Welcome to v1")
}

// commit changes the application's index page and commits it, returning
// the commit's sha.
func (e *env) commit(index string) string {
	e.t.Helper()
	for p, content := range map[string]string{
		"index.html":          index + "\n",
		"config/app.conf":     "index=" + index + "\n",
		"log/.keep":           "",
		"public/assets/a.css": "body{}\n",
	} {
		full := filepath.Join(e.repo, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	git(e.t, e.repo, "add", "-A")
	git(e.t, e.repo, "commit", "--quiet", "-m", index)
	return git(e.t, e.repo, "rev-parse", "HEAD")
}

// dir is where host i's deploy_to is, as the test sees it.
func (e *env) dir(i int) string {
	if e.fleet == nil {
		return e.deployTo
	}
	return filepath.Join(e.fleet.Servers[i].IsolatedDir(isolated), "app")
}

func (e *env) n() int {
	switch {
	case e.fleet == nil:
		return 1
	case e.limit > 0:
		return min(e.limit, len(e.fleet.Servers))
	}
	return len(e.fleet.Servers)
}

func (e *env) hostName(i int) string { return e.hostNames[i] }

// run loads a Deployfile (the env's servers, use("deploy"), deploy_to,
// then extra) and invokes taskNames in order, with Go tasks from goTasks
// defined next to the Deployfile's, as the CLI would.
func (e *env) run(extra string, overrides map[string]string, goTasks map[string]func(*tasks.Context) error, taskNames ...string) (*recorder, error) {
	return e.runCtx(context.Background(), extra, overrides, goTasks, taskNames...)
}

func (e *env) runCtx(ctx context.Context, extra string, overrides map[string]string, goTasks map[string]func(*tasks.Context) error, taskNames ...string) (*recorder, error) {
	t := e.t
	t.Helper()
	dir := t.TempDir()
	src := fmt.Sprintf("use(%q)\nset(\"application\", \"app\")\nset(\"deploy_to\", %q)\nset(\"repo_url\", %q)\n%s\n%s\n",
		"deploy", e.deployTo, e.repoURL, e.hostsDecl(), extra)
	path := filepath.Join(dir, "Deployfile")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := deployfile.Load(ctx, path, deployfile.Options{
		GoRecipes: map[string]func() tasks.Recipe{"deploy": e.newRecipe},
		Overrides: overrides,
	})
	if err != nil {
		t.Fatalf("load Deployfile: %v\n%s", err, src)
	}
	for name, fn := range goTasks {
		if err := p.Registry().Define(&tasks.Task{Name: name, Run: fn}); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recorder{}
	var connect deploy.Connect
	if e.fleet != nil {
		d, err := sshbackend.NewDialer(sshbackend.Options{ConfigFile: e.fleet.SSHConfigPath})
		if err != nil {
			t.Fatal(err)
		}
		connect = func(ctx context.Context, h *deploy.Host) (deploy.Backend, error) { return d.Connect(ctx, h) }
	} else {
		connect = func(ctx context.Context, h *deploy.Host) (deploy.Backend, error) { return local.New(e.localDir), nil }
	}
	if e.wrap != nil {
		inner := connect
		connect = func(ctx context.Context, h *deploy.Host) (deploy.Backend, error) {
			b, err := inner(ctx, h)
			if err != nil {
				return nil, err
			}
			return e.wrap(h, b), nil
		}
	}
	pool := deploy.NewPool(connect)
	defer pool.Close()
	var localBackend deploy.Backend = local.New(dir)
	if e.wrap != nil && e.dryRun {
		// A dry run's run_locally only reports too, as the CLI's does.
		localBackend = e.wrap(&deploy.Host{Name: runLocallyName}, localBackend)
	}
	ex := &tasks.Executor{
		Registry: p.Registry(),
		Vars:     p.Vars(),
		Hosts:    p.Hosts(),
		Pool:     pool,
		Local:    localBackend,
		Sink:     rec,
		DryRun:   e.dryRun,
	}
	for _, name := range taskNames {
		if err := ex.Invoke(ctx, name); err != nil {
			return rec, err
		}
	}
	return rec, nil
}

// runLocallyName is the host name a dry run's wrap is given for the
// backend of run_locally (the control machine).
const runLocallyName = "(run_locally)"

func (e *env) newRecipe() tasks.Recipe {
	r := New().(*Recipe)
	real := r.newStrategy
	r.newStrategy = func(name string) (scm.Strategy, error) {
		s, err := real(name)
		if err != nil {
			return nil, err
		}
		switch x := s.(type) {
		case scriptedTimer:
			return countingScripted{x, &e.resolves}, nil
		case scm.RevisionTimer:
			return countingTimer{counting{s, &e.resolves}, x}, nil
		}
		return counting{s, &e.resolves}, nil
	}
	if e.clock != nil {
		r.now = e.clock
	}
	return r
}

// deploy runs a deploy that must succeed.
func (e *env) deploy(extra string, overrides map[string]string) *recorder {
	e.t.Helper()
	rec, err := e.run(extra, overrides, nil, "deploy")
	if err != nil {
		e.t.Fatalf("deploy: %v\nmessages:\n%s", err, rec.text())
	}
	return rec
}

// releasesOn lists host i's release ids.
func (e *env) releasesOn(i int) []string {
	e.t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.dir(i), "releases"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		e.t.Fatal(err)
	}
	var out []string
	for _, ent := range ents {
		out = append(out, ent.Name())
	}
	sort.Strings(out)
	return out
}

// currentOn is the release id host i's current points at ("" if none).
func (e *env) currentOn(i int) string {
	e.t.Helper()
	target, err := os.Readlink(filepath.Join(e.dir(i), "current"))
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return filepath.Base(target)
}

// currentsAll asserts every host is on want.
func (e *env) wantCurrent(want string) {
	e.t.Helper()
	for i := range e.n() {
		if got := e.currentOn(i); got != want {
			e.t.Errorf("%s: current = %q, want %q", e.hostName(i), got, want)
		}
	}
}

func (e *env) wantReleases(want ...string) {
	e.t.Helper()
	for i := range e.n() {
		if got := e.releasesOn(i); !slices.Equal(got, want) {
			e.t.Errorf("%s: releases = %v, want %v", e.hostName(i), got, want)
		}
	}
}

func (e *env) wantNoLock() {
	e.t.Helper()
	for i := range e.n() {
		if _, err := os.Stat(filepath.Join(e.dir(i), ".davit", "lock")); err == nil {
			e.t.Errorf("%s: the deploy lock is still held", e.hostName(i))
		}
	}
}

func (e *env) read(i int, rel string) string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir(i), rel))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

func (e *env) write(i int, rel, content string) {
	e.t.Helper()
	p := filepath.Join(e.dir(i), rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// onlyRelease returns the single release every host has, failing
// otherwise.
func (e *env) newestRelease() string {
	e.t.Helper()
	rs := e.releasesOn(0)
	if len(rs) == 0 {
		e.t.Fatal("no releases")
	}
	return rs[len(rs)-1]
}

// serveCurrent starts, on each host's own loopback address, an HTTP
// server that answers with the index.html of that host's current
// release: a stand-in for the application, so the health check sees
// which release each host runs. Each server() gets its port as the
// property http_port. Hosts in e.broken answer 500 whatever they run.
func (e *env) serveCurrent() {
	e.t.Helper()
	for i := range e.n() {
		addr := "127.0.0.1"
		if e.fleet != nil {
			addr = e.fleet.Servers[i].Host
		}
		ln, err := net.Listen("tcp", addr+":0")
		if err != nil {
			e.t.Fatal(err)
		}
		root := e.dir(i)
		name := e.hostName(i)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, broken := e.broken.Load(name); broken {
				http.Error(w, "broken", http.StatusInternalServerError)
				return
			}
			// current is an absolute link inside the host's own
			// namespace; follow it by hand from the test's side.
			target, err := os.Readlink(filepath.Join(root, "current"))
			var b []byte
			if err == nil {
				b, err = os.ReadFile(filepath.Join(root, "releases", filepath.Base(target), "index.html"))
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			w.Write(b)
		})}
		go srv.Serve(ln)
		e.t.Cleanup(func() { srv.Close() })
		e.props[e.hostName(i)] += fmt.Sprintf(", http_port = %d", ln.Addr().(*net.TCPAddr).Port)
	}
}

// git runs git in dir for tests that build repositories.
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}
