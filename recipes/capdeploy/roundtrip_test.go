package capdeploy

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/tasks"
)

// labels lists the pretty labels of host's commands, in order.
func (r *recorder) labels(host string) []string {
	var out []string
	for _, ev := range r.Of(output.CommandStart) {
		if ev.Host == host {
			out = append(out, ev.Task+": "+ev.Label)
		}
	}
	return out
}

// A deploy with the git strategy and no hooks costs five commands per
// host, first deploy or not: check, lock, the whole update, the switch,
// the finish, all in one shell (one SSH session). A hook between two steps splits their command there, and
// every step still runs as a task of its own.
func TestSSHRoundTrips(t *testing.T) {
	e := newSSHEnv(t, 2)
	extra := `set("linked_dirs", ["log"])`
	for round, want := range []string{"clone the git mirror", "update the git mirror"} {
		sessions := strings.Count(e.fleet.Servers[0].Log(), "Starting session:")
		rec := e.deploy(extra, nil)
		// The five commands share one shell: one SSH session on the host.
		if n := strings.Count(e.fleet.Servers[0].Log(), "Starting session:") - sessions; n != 1 {
			t.Errorf("deploy %d opened %d SSH sessions on host1, want 1", round+1, n)
		}
		got := rec.labels("host1")
		t.Logf("deploy %d: %q", round+1, got)
		if len(got) != 5 {
			t.Errorf("deploy %d ran %d commands on host1, want 5: %q", round+1, len(got), got)
		}
		if !slices.ContainsFunc(got, func(l string) bool { return strings.HasPrefix(l, "git:update: "+want+", create release directory ") }) {
			t.Errorf("deploy %d: no command that does %q and the release: %q", round+1, want, got)
		}
	}

	// Without the shared shell, each command is a session of its own.
	sessions := strings.Count(e.fleet.Servers[0].Log(), "Starting session:")
	rec := e.deploy(extra+"\nset(\"host_shell\", False)", nil)
	if n, cmds := strings.Count(e.fleet.Servers[0].Log(), "Starting session:")-sessions, len(rec.labels("host1")); n != cmds || cmds != 5 {
		t.Errorf("host_shell off: %d sessions for %d commands, want 5 of each", n, cmds)
	}

	var ran []string
	hook := func(name string) func(*tasks.Context) error {
		return func(*tasks.Context) error { ran = append(ran, name); return nil }
	}
	rec, err := e.run(extra+`
after("git:update", "test:after_update")
before("deploy:log_revision", "test:before_log")`, nil, map[string]func(*tasks.Context) error{
		"test:after_update": hook("after_update"),
		"test:before_log":   hook("before_log"),
	}, "deploy")
	if err != nil {
		t.Fatal(err)
	}
	got := rec.labels("host1")
	t.Logf("with hooks: %q", got)
	for _, want := range []string{
		"git:update: update the git mirror",
		"git:create_release: create release directory ",
		// Nothing to clean up yet: the hook's side holds the rest.
		"deploy:log_revision: append to revisions.log, release the deploy lock",
	} {
		if !slices.ContainsFunc(got, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("no command %q", want)
		}
	}
	if !slices.Equal(ran, []string{"after_update", "before_log"}) {
		t.Errorf("hooks ran: %q", ran)
	}
	e.wantNoLock()

	// A rollback never reaches the repository, even though git:check
	// could have shared the layout check's command.
	rec, err = e.run(extra, nil, nil, "rollback")
	if err != nil {
		t.Fatal(err)
	}
	got = rec.labels("host1")
	t.Logf("rollback: %q", got)
	if len(got) != 4 || slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, "git") }) {
		t.Errorf("rollback commands: %q, want check, lock, switch, finish without git", got)
	}
}

// A step whose work ran in an earlier task's command still fails in its
// own name: the error names deploy:symlink:shared and its step, and the
// release is removed.
func TestLocalCombinedStepFailureNamesItsTask(t *testing.T) {
	e := newLocalEnv(t)
	e.deploy("", nil)
	first := e.newestRelease()
	// index.html is a file in the release, so the linked file's parent
	// directory cannot be made there.
	e.write(0, "shared/index.html/x", "x\n")
	_, err := e.run(`set("linked_files", ["index.html/x"])`, nil, nil, "deploy")
	if err == nil {
		t.Fatal("deploy succeeded")
	}
	t.Log(err)
	var fe *FleetError
	if !errors.As(err, &fe) {
		t.Fatalf("not a FleetError: %T", err)
	}
	var te *tasks.TaskError
	if !errors.As(fe.Err, &te) || te.Task != "deploy:symlink:shared" {
		t.Errorf("failing task: %v", fe.Err)
	}
	if msg := err.Error(); !strings.Contains(msg, "localhost: link shared files: command ") || !strings.Contains(msg, "File exists") ||
		!strings.Contains(msg, "localhost: still on "+first+" (new release "+fe.Release+" removed)") {
		t.Errorf("error does not name the step, its stderr and the outcome")
	}
	e.wantCurrent(first)
	e.wantReleases(first)
	e.wantNoLock()
}

// REVISION_TIME is when the revision was made: the commit's time for git
// (read from the mirror), the release's time for copy from a directory.
func TestLocalRevisionTime(t *testing.T) {
	e := newLocalEnv(t)
	commitAt := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	cmd := exec.Command("git", "commit", "--quiet", "--allow-empty", "-m", "dated")
	cmd.Dir = e.repo
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_COMMITTER_DATE="+commitAt.Format(time.RFC3339))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git commit: %v\n%s", err, out)
	}
	e.deploy("", nil)
	id := e.newestRelease()
	if got := strings.TrimSpace(e.read(0, "releases/"+id+"/REVISION_TIME")); got != fmt.Sprint(commitAt.Unix()) {
		t.Errorf("git: REVISION_TIME = %q, want the commit's time %d", got, commitAt.Unix())
	}

	// The copy strategy archiving the same commit on this machine knows
	// its time too.
	e.deploy(`set("scm", "copy")`, nil)
	id = e.newestRelease()
	if got := strings.TrimSpace(e.read(0, "releases/"+id+"/REVISION_TIME")); got != fmt.Sprint(commitAt.Unix()) {
		t.Errorf("copy from git: REVISION_TIME = %q, want the commit's time %d", got, commitAt.Unix())
	}

	// A directory has no one time: the release's.
	e.deploy(fmt.Sprintf(`set("scm", "copy")
set("copy_dir", %q)
set("copy_exclude", [".git"])`, e.repo), nil)
	id = e.newestRelease()
	rt, _ := time.Parse(deploy.ReleaseIDFormat, id)
	if got := strings.TrimSpace(e.read(0, "releases/"+id+"/REVISION_TIME")); got != fmt.Sprint(rt.Unix()) {
		t.Errorf("copy_dir: REVISION_TIME = %q, want the release's time %d", got, rt.Unix())
	}
}

// svn: REVISION_TIME is the last-changed date of the deployed revision.
func TestLocalSVNRevisionTime(t *testing.T) {
	e := newLocalEnv(t)
	repo := svnRepo(t, e)
	// Date r1 in the past (svn's own property; the hook allows it).
	if err := os.WriteFile(filepath.Join(repo, "hooks", "pre-revprop-change"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("svn", "propset", "--quiet", "--non-interactive", "--revprop", "-r", "1", "svn:date", "2021-02-03T04:05:06.000000Z", "file://"+repo).CombinedOutput(); err != nil {
		t.Fatalf("svn propset: %v\n%s", err, out)
	}
	e.deploy(`set("scm", "svn")
set("repo_url", "file://`+repo+`/trunk")`, nil)
	id := e.newestRelease()
	want := time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC).Unix()
	if got := strings.TrimSpace(e.read(0, "releases/"+id+"/REVISION_TIME")); got != fmt.Sprint(want) {
		t.Errorf("svn: REVISION_TIME = %q, want the last-changed date %d", got, want)
	}
}

// A step the Deployfile redefines runs on its own (its own body, not the
// recipe's work), splitting the stage's command around it; every other
// step still shares a command, and no task does another's work: the
// recipe's REVISION step never runs.
func TestLocalRedefinedStepSplitsTheCommand(t *testing.T) {
	e := newLocalEnv(t)
	rec, err := e.run(`set("linked_dirs", ["log"])
def mine(ctx):
    on(roles("app"), lambda h: h.execute("true"))
task("deploy:set_current_revision", mine)`, nil, nil, "deploy")
	if err != nil {
		t.Fatal(err)
	}
	got := rec.labels("localhost")
	t.Logf("commands: %q", got)
	for _, want := range []string{
		"git:update: clone the git mirror, create release directory ",
		"deploy:set_current_revision: ",
		"deploy:symlink:shared: link shared files",
	} {
		if !slices.ContainsFunc(got, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("no command %q", want)
		}
	}
	if slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, "write REVISION") }) {
		t.Errorf("the recipe's REVISION step ran although the Deployfile replaced it: %q", got)
	}
	if _, err := os.Stat(filepath.Join(e.dir(0), "releases", e.newestRelease(), "REVISION")); err == nil {
		t.Error("REVISION was written by a step the Deployfile replaced")
	}
}
