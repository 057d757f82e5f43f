package capdeploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/davit-deploy/davit/tasks"
)

// First deploy, second deploy, releases, rollback, rollback to a named
// release, on three real sshd hosts with a private deploy tree each.
func TestSSHLifecycle(t *testing.T) {
	e := newSSHEnv(t, 3)
	extra := `set("linked_dirs", ["log"])
set("linked_files", ["config/secret.conf"])`
	for i := range e.n() {
		e.write(i, "shared/config/secret.conf", "s3cret\n")
	}
	rec := e.deploy(extra, nil)
	first := e.newestRelease()
	e.wantReleases(first)
	e.wantCurrent(first)
	e.wantNoLock()
	if n := e.resolves.Load(); n != 1 {
		t.Errorf("Resolve ran %d times for one deploy, want once", n)
	}
	t.Logf("commands per host: %v", rec.commands())

	sha2 := e.commit("Welcome to v2")
	e.deploy(extra, nil)
	second := e.newestRelease()
	e.wantReleases(first, second)
	e.wantCurrent(second)
	for i := range e.n() {
		if got := strings.TrimSpace(e.read(i, "releases/"+second+"/REVISION")); got != sha2 {
			t.Errorf("%s: REVISION = %q, want %s", e.hostName(i), got, sha2)
		}
		if got := strings.TrimSpace(e.read(i, "releases/"+second+"/index.html")); got != "Welcome to v2" {
			t.Errorf("%s: index.html = %q", e.hostName(i), got)
		}
		if !strings.Contains(e.read(i, "revisions.log"), "Branch main (at "+sha2+") deployed as release "+second+" by ") {
			t.Errorf("%s: revisions.log:\n%s", e.hostName(i), e.read(i, "revisions.log"))
		}
	}
	if n := e.resolves.Load(); n != 2 {
		t.Errorf("Resolve ran %d times for two deploys of three hosts, want twice", n)
	}

	rec, err := e.run(extra, nil, nil, "releases")
	if err != nil {
		t.Fatal(err)
	}
	table := rec.text()
	t.Log(table)
	for _, s := range []string{second + "  ", first + "  ", "current  all"} {
		if !strings.Contains(table, s) {
			t.Errorf("releases table lacks %q", s)
		}
	}

	if _, err := e.run(extra, nil, nil, "rollback"); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	e.wantCurrent(first)
	e.wantNoLock()
	for i := range e.n() {
		if !strings.Contains(e.read(i, ".davit/releases/"+second), "state=bad") {
			t.Errorf("%s: %s not marked bad", e.hostName(i), second)
		}
		if !strings.Contains(e.read(i, "revisions.log"), "rolled back to release "+first) {
			t.Errorf("%s: revisions.log lacks the rollback", e.hostName(i))
		}
	}

	// Nothing good before first: refused, nothing changed.
	if _, err := e.run(extra, nil, nil, "deploy:rollback"); err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("second rollback: %v", err)
	}
	e.wantCurrent(first)

	// A named release, even a bad one, when asked for by name.
	rec, err = e.run(extra, map[string]string{"release": second}, nil, "rollback")
	if err != nil {
		t.Fatalf("rollback release=%s: %v", second, err)
	}
	e.wantCurrent(second)
	if !strings.Contains(rec.text(), "rolled back from") {
		t.Errorf("no warning about going back to a bad release:\n%s", rec.text())
	}
	// A release missing on one host: refused, naming it.
	if _, err := e.run(extra, map[string]string{"release": "20200101000000"}, nil, "rollback"); err == nil ||
		!strings.Contains(err.Error(), "release 20200101000000 is missing on host1, host2, host3") {
		t.Fatalf("rollback to a missing release: %v", err)
	}
	e.wantCurrent(second)
	e.wantNoLock()
}

// A before hook of an updating step fails on one host: no host switches,
// the new release is removed everywhere, the lock is released, and
// deploy:failed runs.
func TestSSHHookFailsDuringUpdating(t *testing.T) {
	e := newSSHEnv(t, 3)
	e.deploy("", nil)
	first := e.newestRelease()
	e.commit("Welcome to v2")

	failedRan := false
	extra := `
def boom(ctx):
    def f(h):
        if h.name == "host2":
            fail("boom on host2")
    on(roles("app"), f)
task("test:boom", boom)
before("deploy:symlink:shared", "test:boom")
after("deploy:failed", "test:failed")
`
	rec, err := e.run(extra, nil, map[string]func(*tasks.Context) error{
		"test:failed": func(*tasks.Context) error { failedRan = true; return nil },
	}, "deploy")
	if err == nil {
		t.Fatal("deploy succeeded")
	}
	msg := err.Error()
	t.Log(msg)
	var fe *FleetError
	if !errors.As(err, &fe) {
		t.Fatalf("error is not a FleetError: %T", err)
	}
	for _, want := range []string{"boom on host2", "host1: still on " + first + " (new release " + fe.Release + " removed)",
		"host2: still on " + first, "host3: still on " + first} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q", want)
		}
	}
	e.wantCurrent(first)
	e.wantReleases(first)
	e.wantNoLock()
	if !failedRan {
		t.Error("deploy:failed did not run")
	}
	for i := range e.n() {
		if strings.Count(e.read(i, "revisions.log"), "deployed as release") != 1 {
			t.Errorf("%s: revisions.log logged the failed deploy", e.hostName(i))
		}
	}
	_ = rec
}

// host2's sshd dies while publishing: every host had switched, and the
// restart hook then fails on host2. The others are moved back (and
// restarted again on the old release); the summary names host2, which
// could not be moved back and still holds the lock.
func TestSSHHostDiesDuringPublish(t *testing.T) {
	e := newSSHEnv(t, 3)
	extra := `
def restart(ctx):
    on(roles("app"), lambda h: h.execute("echo $(basename $(readlink ` + e.deployTo + `/current)) >> ` + e.deployTo + `/restarts"))
task("app:restart", restart)
after("deploy:published", "app:restart")
`
	e.deploy(extra, nil)
	first := e.newestRelease()
	e.commit("Welcome to v2")

	killed := false
	rec, err := e.run(extra+`after("deploy:publishing", "test:kill")`, nil, map[string]func(*tasks.Context) error{
		"test:kill": func(*tasks.Context) error { killed = true; return e.fleet.Servers[1].Stop() },
	}, "deploy")
	if err == nil || !killed {
		t.Fatalf("deploy: %v (killed: %v)", err, killed)
	}
	msg := err.Error()
	t.Log(msg)
	second := ""
	var fe *FleetError
	if errors.As(err, &fe) {
		second = fe.Release
	}
	for _, want := range []string{
		"host1: moved back to " + first + " (new release " + second + " removed)",
		"host3: moved back to " + first + " (new release " + second + " removed)",
		"host2: NOT moved back: may still be on " + second,
		"lock not released",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	for _, i := range []int{0, 2} {
		if got := e.currentOn(i); got != first {
			t.Errorf("%s: current = %s, want %s", e.hostName(i), got, first)
		}
		if got := e.releasesOn(i); !slices.Equal(got, []string{first}) {
			t.Errorf("%s: releases = %v", e.hostName(i), got)
		}
		// Restarted on first, on second, and on first again.
		if got := strings.Fields(e.read(i, "restarts")); !slices.Equal(got, []string{first, second, first}) {
			t.Errorf("%s: restarts = %v", e.hostName(i), got)
		}
		if _, err := os.Stat(filepath.Join(e.dir(i), ".davit", "lock")); err == nil {
			t.Errorf("%s: still locked", e.hostName(i))
		}
	}
	// host2 went down after switching: it is on the new release, locked.
	if got := e.currentOn(1); got != second {
		t.Errorf("host2: current = %s, want %s", got, second)
	}
	_ = rec
}

// A second deploy is refused while the first holds the lock, naming who
// holds it and since when; a lock refused on one host is released on the
// others; deploy:unlock removes a stale lock.
func TestSSHLock(t *testing.T) {
	e := newSSHEnv(t, 3)
	e.deploy("", nil)
	first := e.newestRelease()

	// A deploy runs a second deploy while it holds the lock.
	var inner error
	_, err := e.run(`after("deploy:lock", "test:second")`, nil, map[string]func(*tasks.Context) error{
		"test:second": func(*tasks.Context) error {
			_, inner = e.run("", nil, nil, "deploy")
			return nil
		},
	}, "deploy")
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	if inner == nil || !strings.Contains(inner.Error(), "deploy locked by root on ") || !strings.Contains(inner.Error(), " since ") {
		t.Fatalf("concurrent deploy: %v", inner)
	}
	t.Log(inner)
	second := e.newestRelease()
	e.wantReleases(first, second)
	e.wantNoLock()

	// Someone takes host2's lock between deploy:check and deploy:lock.
	stale := "user=mallory\ncontrol=laptop\nsince=2026-01-02T03:04:05Z\noperation=deploy\ntoken=feed\n"
	_, err = e.run(`before("deploy:lock", "test:grab")`, nil, map[string]func(*tasks.Context) error{
		"test:grab": func(*tasks.Context) error { e.write(1, ".davit/lock/info", stale); return nil },
	}, "deploy")
	if err == nil || !strings.Contains(err.Error(), "host2: deploy locked by mallory on laptop since 2026-01-02 03:04:05 UTC") {
		t.Fatalf("deploy against a held lock: %v", err)
	}
	t.Log(err)
	for _, i := range []int{0, 2} {
		if _, err := os.Stat(filepath.Join(e.dir(i), ".davit", "lock")); err == nil {
			t.Errorf("%s: the lock taken there was not released", e.hostName(i))
		}
	}
	if got := e.read(1, ".davit/lock/info"); got != stale {
		t.Errorf("host2's lock was changed:\n%s", got)
	}
	e.wantReleases(first, second)
	e.wantCurrent(second)

	// deploy:check reports it too; deploy:unlock removes it.
	if _, err := e.run("", nil, nil, "deploy:check"); err == nil || !strings.Contains(err.Error(), "deploy locked by mallory") {
		t.Errorf("deploy:check with a held lock: %v", err)
	}
	rec, err := e.run("", nil, nil, "deploy:unlock")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.text(), "host2: info: removed the deploy lock (deploy locked by mallory") {
		t.Errorf("deploy:unlock said:\n%s", rec.text())
	}
	e.wantNoLock()
	e.deploy("", nil)
}

// Ctrl-C while the release is being built: the run stops, the partial
// release is removed and the lock released, with an uncanceled context
// for the cleanup.
func TestSSHInterruptDuringUpdating(t *testing.T) {
	e := newSSHEnv(t, 3)
	e.deploy("", nil)
	first := e.newestRelease()
	e.commit("Welcome to v2")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	extra := `
def slow(ctx):
    on(roles("app"), lambda h: h.execute("sleep 30"))
task("test:slow", slow)
before("deploy:symlink:shared", "test:cancel_soon")
before("deploy:symlink:shared", "test:slow")
`
	start := time.Now()
	_, err := e.runCtx(ctx, extra, nil, map[string]func(*tasks.Context) error{
		"test:cancel_soon": func(*tasks.Context) error {
			time.AfterFunc(300*time.Millisecond, cancel)
			return nil
		},
	}, "deploy")
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted deploy: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the interrupted deploy took %s", d)
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "removed)") {
		t.Errorf("summary does not say the release was removed:\n%v", err)
	}
	e.wantCurrent(first)
	e.wantReleases(first)
	e.wantNoLock()
}

// Missing linked files on some hosts and an unreachable repository: one
// error lists every host and every problem, and nothing changes.
func TestSSHCheckListsEveryProblem(t *testing.T) {
	e := newSSHEnv(t, 3)
	e.write(0, "shared/config/database.yml", "db\n")
	e.write(0, "shared/config/secrets.yml", "s\n")
	e.write(1, "shared/config/database.yml", "db\n")
	extra := `set("linked_files", ["config/database.yml", "config/secrets.yml"])`
	_, err := e.run(extra, nil, nil, "deploy")
	if err == nil {
		t.Fatal("deploy succeeded")
	}
	msg := err.Error()
	t.Log(msg)
	for _, want := range []string{
		"3 problems on 2 of 3 hosts",
		"host2:\n    - linked file " + e.deployTo + "/shared/config/secrets.yml does not exist",
		"host3:\n    - linked file " + e.deployTo + "/shared/config/database.yml does not exist\n    - linked file " + e.deployTo + "/shared/config/secrets.yml does not exist",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if strings.Contains(msg, "host1:\n") {
		t.Error("host1 has no problem but is listed")
	}
	e.wantReleases()
	e.wantNoLock()

	// Add an unreachable repository: still one error, every host.
	_, err = e.run(extra+"\nset(\"repo_url\", \"file:///nonexistent/repo.git\")", nil, nil, "deploy:check")
	if err == nil {
		t.Fatal("deploy:check passed")
	}
	msg = err.Error()
	t.Log(msg)
	if n := strings.Count(msg, "cannot read repo_url file:///nonexistent/repo.git"); n != 3 {
		t.Errorf("the unreachable repository is reported on %d hosts, want 3", n)
	}
	if !strings.Contains(msg, "6 problems on 3 of 3 hosts") {
		t.Errorf("error does not count every problem")
	}
}
