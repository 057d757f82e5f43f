package capdeploy

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/tasks"
)

// The whole life of an application on the local backend: first deploy,
// second deploy, releases, rollback, and a rollback with nothing left to
// roll back to.
func TestLocalLifecycle(t *testing.T) {
	e := newLocalEnv(t)
	// The copy strategy, archiving a git revision on this machine.
	extra := `set("scm", "copy")
set("linked_dirs", ["log", "tmp/pids"])
set("linked_files", ["config/secret.conf"])`
	// deploy:setup makes the layout, linked dirs and linked files' dirs.
	if _, err := e.run(extra, nil, nil, "deploy:setup"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"releases", "shared/log", "shared/tmp/pids", "shared/config", ".davit/releases"} {
		if st, err := os.Stat(filepath.Join(e.dir(0), d)); err != nil || !st.IsDir() {
			t.Errorf("deploy:setup did not make %s: %v", d, err)
		}
	}
	if _, err := e.run(extra, nil, nil, "deploy:check"); err == nil || !strings.Contains(err.Error(), "secret.conf does not exist") {
		t.Errorf("deploy:check without the linked file: %v", err)
	}
	e.write(0, "shared/config/secret.conf", "s3cret\n")
	if _, err := e.run(extra, nil, nil, "deploy:check"); err != nil {
		t.Errorf("deploy:check: %v", err)
	}

	rec := e.deploy(extra, nil)
	first := e.newestRelease()
	t.Log(rec.text())
	e.wantCurrent(first)
	e.wantNoLock()
	if got := strings.TrimSpace(e.read(0, "releases/"+first+"/index.html")); got != "Welcome to v1" {
		t.Errorf("index = %q", got)
	}
	rev := strings.TrimSpace(e.read(0, "releases/"+first+"/REVISION"))
	if len(rev) != 40 {
		t.Errorf("REVISION = %q", rev)
	}
	if _, err := os.Stat(filepath.Join(e.dir(0), "releases", first, "REVISION_TIME")); err != nil {
		t.Error(err)
	}
	target, _ := os.Readlink(filepath.Join(e.dir(0), "current"))
	if target != filepath.Join(e.deployTo, "releases", first) {
		t.Errorf("current -> %q, want the absolute release path", target)
	}
	for _, l := range []string{"log", "tmp/pids", "config/secret.conf"} {
		p := filepath.Join(e.dir(0), "releases", first, l)
		got, err := os.Readlink(p)
		if err != nil || got != filepath.Join(e.deployTo, "shared", l) {
			t.Errorf("%s -> %q, %v", l, got, err)
		}
	}
	log := e.read(0, "revisions.log")
	if !strings.Contains(log, "Branch main (at "+rev+") deployed as release "+first+" by ") {
		t.Errorf("revisions.log:\n%s", log)
	}

	// Rollback with a single release: a clear error, nothing changed.
	rec, err := e.run(extra, nil, nil, "rollback")
	if err == nil || !strings.Contains(err.Error(), "only one release ("+first+")") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("rollback with one release: %v", err)
	}
	e.wantCurrent(first)
	e.wantNoLock()

	e.commit("Welcome to v2")
	e.deploy(extra, nil)
	second := e.newestRelease()
	e.wantReleases(first, second)
	e.wantCurrent(second)

	rec, err = e.run(extra, nil, nil, "releases")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rec.text())

	rec, err = e.run(extra, nil, nil, "rollback")
	if err != nil {
		t.Fatalf("rollback: %v\n%s", err, rec.text())
	}
	e.wantCurrent(first)
	e.wantReleases(first, second)
	if m := e.read(0, ".davit/releases/"+second); !strings.Contains(m, "state=bad") {
		t.Errorf("mark of %s:\n%s", second, m)
	}
	if log := e.read(0, "revisions.log"); !strings.Contains(log, " rolled back to release "+first) {
		t.Errorf("revisions.log:\n%s", log)
	}
	rec, _ = e.run(extra, nil, nil, "releases")
	t.Log(rec.text())
}

// keep_releases with failed, bad, Capistrano-made and foreign entries
// present: failed and bad releases do not count toward the kept ones and
// are removed; current and the new release never are; names that are
// not release ids are never touched; orphaned marks go.
func TestLocalCleanupKeepsReleases(t *testing.T) {
	e := newLocalEnv(t)
	for id, mark := range map[string]string{
		"20200101000000": "",                                           // Capistrano's
		"20200102000000": "state=pending\n",                            // a deploy that died: failed
		"20200103000000": "state=pending\nstate=finished\n",            // good
		"20200104000000": "state=pending\nstate=finished\nstate=bad\n", // rolled back from
		"20200105000000": "state=pending\n",                            // failed
	} {
		e.write(0, "releases/"+id+"/index.html", id+"\n")
		if mark != "" {
			e.write(0, ".davit/releases/"+id, mark)
		}
	}
	e.write(0, "releases/not-a-release/keep.txt", "mine\n")
	e.write(0, ".davit/releases/20190101000000", "state=finished\n")
	if err := os.Symlink(filepath.Join(e.deployTo, "releases", "20200103000000"), filepath.Join(e.dir(0), "current")); err != nil {
		t.Fatal(err)
	}
	rec := e.deploy(`set("keep_releases", 2)`, nil)
	id := e.currentOn(0)
	t.Log(rec.text())
	if got, want := e.releasesOn(0), []string{"20200103000000", id, "not-a-release"}; !slices.Equal(got, want) {
		t.Errorf("releases after cleanup = %v, want %v", got, want)
	}
	ents, _ := os.ReadDir(filepath.Join(e.dir(0), ".davit", "releases"))
	var marks []string
	for _, m := range ents {
		marks = append(marks, m.Name())
	}
	if want := []string{"20200103000000", id}; !slices.Equal(marks, want) {
		t.Errorf("marks after cleanup = %v, want %v", marks, want)
	}
	e.wantCurrent(id)

	// keep_releases=1 by hand keeps only current.
	if _, err := e.run(`set("keep_releases", 1)`, nil, nil, "deploy:cleanup"); err != nil {
		t.Fatal(err)
	}
	if got, want := e.releasesOn(0), []string{id, "not-a-release"}; !slices.Equal(got, want) {
		t.Errorf("releases after deploy:cleanup = %v, want %v", got, want)
	}
	e.wantNoLock()
}

// Two deploys within the same second get different release ids, newer
// than any release on any host.
func TestLocalSameSecondReleaseIDs(t *testing.T) {
	e := newLocalEnv(t)
	now := time.Date(2026, 11, 29, 1, 1, 1, 500_000_000, time.UTC)
	e.clock = func() time.Time { return now }
	var ids []string
	for range 3 {
		e.deploy("", nil)
		ids = append(ids, e.newestRelease())
	}
	if want := []string{"20261129010101", "20261129010102", "20261129010103"}; !slices.Equal(ids, want) {
		t.Errorf("ids = %v, want %v", ids, want)
	}
	e.wantReleases(ids...)
	e.wantCurrent(ids[2])
}

// svn: a deploy exports one revision of a file:// repository.
func TestLocalSVN(t *testing.T) {
	e := newLocalEnv(t)
	repo := svnRepo(t, e)
	rec, err := e.run(`set("scm", "svn")
set("repo_url", "file://`+repo+`/trunk")`, nil, nil, "deploy")
	if err != nil {
		t.Fatalf("svn deploy: %v\n%s", err, rec.text())
	}
	id := e.newestRelease()
	e.wantCurrent(id)
	if got := strings.TrimSpace(e.read(0, "releases/"+id+"/REVISION")); got != "1" {
		t.Errorf("REVISION = %q, want 1", got)
	}
	if got := strings.TrimSpace(e.read(0, "releases/"+id+"/index.html")); got != "Welcome to v1" {
		t.Errorf("index.html = %q", got)
	}
	if log := e.read(0, "revisions.log"); !strings.Contains(log, "(at 1) deployed as release "+id) {
		t.Errorf("revisions.log:\n%s", log)
	}
}

// A branch with shell metacharacters is refused before anything changes.
func TestLocalBranchMetacharactersRefused(t *testing.T) {
	e := newLocalEnv(t)
	_, err := e.run("", map[string]string{"branch": "main;touch /tmp/davit-pwned"}, nil, "deploy")
	if err == nil || !strings.Contains(err.Error(), `contains ';'`) {
		t.Fatalf("deploy of a branch with ';': %v", err)
	}
	if _, err := os.Stat("/tmp/davit-pwned"); err == nil {
		t.Error("the branch name ran as a command")
	}
	e.wantReleases()
	e.wantNoLock()
}

// Layout problems are listed together: a file where shared/ must be, a
// current that is a real directory (running as root, "not writable"
// cannot be provoked; mkdir's own failure stands for it).
func TestLocalCheckLayoutProblems(t *testing.T) {
	e := newLocalEnv(t)
	e.write(0, "shared", "not a directory\n")
	if err := os.MkdirAll(filepath.Join(e.dir(0), "current"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := e.run(`set("linked_dirs", ["log"])`, nil, nil, "deploy")
	if err == nil {
		t.Fatal("deploy succeeded")
	}
	t.Log(err)
	for _, want := range []string{"3 problems on 1 of 1 host", "shared", "File exists", "current is not a symlink", "nothing was changed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
	e.wantReleases()
}

// svnRepo makes a Subversion repository whose trunk holds the env's
// index.html, and returns its path (file://PATH/trunk is the URL).
func svnRepo(t *testing.T, e *env) string {
	t.Helper()
	if _, err := exec.LookPath("svnadmin"); err != nil {
		// As with sshd: CI must not pass by skipping.
		if os.Getenv("CI") == "true" {
			t.Fatalf("svnadmin not installed: %v", err)
		}
		t.Skip("no svnadmin")
	}
	repo := filepath.Join(t.TempDir(), "svnrepo")
	if out, err := exec.Command("svnadmin", "create", repo).CombinedOutput(); err != nil {
		t.Fatalf("svnadmin: %v\n%s", err, out)
	}
	if out, err := exec.Command("svn", "import", "--quiet", "--non-interactive", "-m", "import", e.repo+"/index.html", "file://"+repo+"/trunk/index.html").CombinedOutput(); err != nil {
		t.Fatalf("svn import: %v\n%s", err, out)
	}
	return repo
}

// A copy deploy names its source for what it is, a directory and its
// content digest, in revisions.log and the closing summary; and every
// command the recipe runs (on the host and on this machine) carries a
// label, since the output formats show an unlabelled command's output as
// the user's own.
func TestLocalCopyNamesAndLabels(t *testing.T) {
	e := newLocalEnv(t)
	app := filepath.Join(t.TempDir(), "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "index.html"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, extra := range []string{
		`set("scm", "copy")` + "\n" + `set("copy_dir", "` + app + `")`,
		`set("scm", "copy")`, // from the git repository, on this machine
		``,                   // git
	} {
		rec := e.deploy(extra+"\n"+`set("linked_dirs", ["log"])`, nil)
		for _, ev := range rec.Of(output.CommandStart) {
			if ev.Label == "" {
				t.Errorf("%q: a command without a label: %s", extra, ev.Command)
			}
		}
		if strings.Contains(extra, "copy_dir") {
			id := e.newestRelease()
			log := e.read(0, "revisions.log")
			if !regexp.MustCompile(`(?m)^Directory ` + regexp.QuoteMeta(app) + ` \(content [0-9a-f]{16}\) deployed as release ` + id + ` by `).MatchString(log) {
				t.Errorf("revisions.log:\n%s", log)
			}
			if !regexp.MustCompile(`deployed release ` + id + ` \(directory ` + regexp.QuoteMeta(app) + `, content [0-9a-f]{12}\)`).MatchString(rec.text()) {
				t.Errorf("the summary does not name the directory:\n%s", rec.text())
			}
		}
	}
	// The releases table reads the copy's line back like Capistrano's.
	p := parseProbe("@@ releases\n20260101000000\n@@ log\nDirectory app (content c53e2e96a1b0c3d4) deployed as release 20260101000000 by ann\n", deploy.Layout{DeployTo: "/srv/app"})
	if got := p.logged["20260101000000"]; got.revision != "c53e2e96a1b0c3d4" || got.branch != "app" || got.user != "ann" {
		t.Errorf("parsed log entry %+v", got)
	}
}

// A first deploy that fails after current moved (its restart hook fails)
// removes current and the new release, says there was no release before
// rather than "moved back to no release", and runs no restart hook again:
// there is no release for it to bring back.
func TestLocalFailedFirstDeploy(t *testing.T) {
	e := newLocalEnv(t)
	var restarts atomic.Int32
	hooks := map[string]func(*tasks.Context) error{
		"app:restart": func(*tasks.Context) error {
			restarts.Add(1)
			return errors.New("the app would not start")
		},
	}
	rec, err := e.run(`after("deploy:published", "app:restart")`, nil, hooks, "deploy")
	var fe *FleetError
	if !errors.As(err, &fe) {
		t.Fatalf("deploy: %v\n%s", err, rec.text())
	}
	if n := restarts.Load(); n != 1 {
		t.Errorf("the restart hook ran %d times, want once (not again after the undo)", n)
	}
	if len(fe.Hosts) != 1 || !strings.HasPrefix(fe.Hosts[0].State, "removed the new release ") ||
		!strings.HasSuffix(fe.Hosts[0].State, "; there was no release before") {
		t.Errorf("summary: %+v", fe.Hosts)
	}
	if strings.Contains(err.Error(), "moved back to no release") || len(fe.Notes) > 0 {
		t.Errorf("error:\n%v", err)
	}
	e.wantCurrent("")
	e.wantReleases()
	e.wantNoLock()

	// A later deploy that fails the same way moves back, and restarts.
	restarts.Store(0)
	e.deploy("", nil)
	first := e.newestRelease()
	rec, err = e.run(`after("deploy:published", "app:restart")`, nil, hooks, "deploy")
	if err == nil || !strings.Contains(err.Error(), "moved back to "+first) {
		t.Fatalf("second deploy: %v\n%s", err, rec.text())
	}
	if n := restarts.Load(); n != 2 {
		t.Errorf("the restart hook ran %d times, want twice (the new release, then the old)", n)
	}
	e.wantCurrent(first)
	e.wantReleases(first)
}
