package capdeploy

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/davit-deploy/davit/tasks"
)

// A fleet Capistrano deployed (a bare mirror in repo/, two releases with
// REVISION files, an absolute current link, and on one host a relative
// one, Capistrano's revisions.log) is taken over by davit and rolled back
// to Capistrano's releases.
func TestSSHCapistranoTakeover(t *testing.T) {
	e := newSSHEnv(t, 3)
	c1 := git(t, e.repo, "rev-parse", "HEAD")
	c2 := e.commit("Welcome to v2")
	capLog := "Branch main (at " + c1 + ") deployed as release 20250101000000 by alice\n" +
		"Branch main (at " + c2 + ") deployed as release 20250102000000 by alice\n"
	for i := range e.n() {
		if out, err := exec.Command("git", "clone", "--mirror", "--quiet", e.repoURL, filepath.Join(e.dir(i), "repo")).CombinedOutput(); err != nil {
			t.Fatalf("git clone --mirror: %v\n%s", err, out)
		}
		for id, rev := range map[string]string{"20250101000000": c1, "20250102000000": c2} {
			e.write(i, "releases/"+id+"/index.html", "Welcome to capistrano's "+id+"\n")
			e.write(i, "releases/"+id+"/REVISION", rev+"\n")
			e.write(i, "releases/"+id+"/REVISION_TIME", "1735689600\n")
		}
		e.write(i, "revisions.log", capLog)
		e.write(i, "shared/config/database.yml", "production: {}\n")
		target := filepath.Join(e.deployTo, "releases", "20250102000000")
		if i == 2 {
			target = "releases/20250102000000" // made by hand, relative
		}
		if err := os.Symlink(target, filepath.Join(e.dir(i), "current")); err != nil {
			t.Fatal(err)
		}
	}
	extra := `set("linked_files", ["config/database.yml"])`

	rec, err := e.run(extra, nil, nil, "releases")
	if err != nil {
		t.Fatal(err)
	}
	table := rec.text()
	t.Log(table)
	for _, want := range []string{"20250102000000  " + c2[:12], "alice", "current  all"} {
		if !strings.Contains(table, want) {
			t.Errorf("releases table before the takeover lacks %q", want)
		}
	}

	c3 := e.commit("Welcome to v3")
	e.deploy(extra, nil)
	davit := e.newestRelease()
	e.wantCurrent(davit)
	e.wantReleases("20250101000000", "20250102000000", davit)
	for i := range e.n() {
		if got := strings.TrimSpace(e.read(i, "releases/"+davit+"/REVISION")); got != c3 {
			t.Errorf("%s: REVISION = %s, want %s", e.hostName(i), got, c3)
		}
		if log := e.read(i, "revisions.log"); !strings.HasPrefix(log, capLog) || !strings.Contains(log, "Branch main (at "+c3+") deployed as release "+davit+" by root\n") {
			t.Errorf("%s: revisions.log:\n%s", e.hostName(i), log)
		}
	}

	// Back to Capistrano's last release, then to its first.
	if _, err := e.run(extra, nil, nil, "rollback"); err != nil {
		t.Fatalf("rollback to capistrano's release: %v", err)
	}
	e.wantCurrent("20250102000000")
	if _, err := e.run(extra, nil, nil, "rollback"); err != nil {
		t.Fatalf("second rollback: %v", err)
	}
	e.wantCurrent("20250101000000")
	for i := range e.n() {
		// davit writes current as Capistrano does: absolute.
		if target, _ := os.Readlink(filepath.Join(e.dir(i), "current")); target != filepath.Join(e.deployTo, "releases", "20250101000000") {
			t.Errorf("%s: current -> %q", e.hostName(i), target)
		}
		if !strings.Contains(e.read(i, "revisions.log"), "root rolled back to release 20250101000000\n") {
			t.Errorf("%s: revisions.log lacks the rollback", e.hostName(i))
		}
	}
	rec, err = e.run(extra, nil, nil, "releases")
	if err != nil {
		t.Fatal(err)
	}
	table = rec.text()
	t.Log(table)
	// davit's release and Capistrano's 20250102000000 were rolled back from.
	for _, want := range []string{davit + "  " + c3[:12], "20250102000000  " + c2[:12]} {
		line := lineWith(table, want)
		if !strings.Contains(line, "bad") {
			t.Errorf("release row %q is not marked bad: %q", want, line)
		}
	}
	if line := lineWith(table, "20250101000000"); !strings.Contains(line, "current") || !strings.Contains(line, "alice") {
		t.Errorf("20250101000000 row: %q", line)
	}
}

func lineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// A release whose page fails the health check is rolled back on every
// host automatically (and the restart hooks run again on the old one);
// with health_check_rollback off it stays, and the deploy still fails.
func TestSSHHealthCheckRollsBack(t *testing.T) {
	e := newSSHEnv(t, 3)
	e.serveCurrent()
	extra := `set("health_check_url", "http://{host}:{http_port}/")
set("health_check_timeout", 1.5)
def restart(ctx):
    on(roles("app"), lambda h: h.execute("basename $(readlink ` + e.deployTo + `/current) >> ` + e.deployTo + `/restarts"))
task("app:restart", restart)
after("deploy:published", "app:restart")
`
	rec := e.deploy(extra, nil)
	first := e.newestRelease()
	if !strings.Contains(rec.text(), `answered "welcome"`) {
		t.Errorf("no health check reported:\n%s", rec.text())
	}

	e.commit("Oops: an error page")
	rec, err := e.run(extra, nil, nil, "deploy")
	var fe *FleetError
	if !errors.As(err, &fe) {
		t.Fatalf("deploy of a broken release: %v", err)
	}
	t.Log(err)
	second := fe.Release
	for _, want := range []string{`no answer containing "welcome" within 1.5s`, "body without", "host1: moved back to " + first + " (new release " + second + " removed)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
	e.wantCurrent(first)
	e.wantReleases(first)
	e.wantNoLock()
	for i := range e.n() {
		if got := strings.Fields(e.read(i, "restarts")); !slices.Equal(got, []string{first, second, first}) {
			t.Errorf("%s: restarts = %v", e.hostName(i), got)
		}
	}

	// Without automatic rollback the release stays, logged, unlocked,
	// and the deploy still fails.
	_, err = e.run(extra+`set("health_check_rollback", False)`, nil, nil, "deploy")
	if err == nil || !strings.Contains(err.Error(), "health_check_rollback is off") {
		t.Fatalf("deploy with health_check_rollback off: %v", err)
	}
	t.Log(err)
	third := e.newestRelease()
	e.wantCurrent(third)
	e.wantReleases(first, third)
	e.wantNoLock()
	if !strings.Contains(e.read(0, "revisions.log"), "deployed as release "+third) {
		t.Error("the release that stayed is not in revisions.log")
	}
}

// publish_batch publishes, restarts and health-checks one batch before
// the next; a batch failing its health check moves every host that
// switched back, and later batches never switch.
func TestSSHRollingPublish(t *testing.T) {
	e := newSSHEnv(t, 3)
	e.serveCurrent()
	var mu sync.Mutex
	var order []string
	record := func(what string) func(*tasks.Context) error {
		return func(c *tasks.Context) error {
			mu.Lock()
			defer mu.Unlock()
			var names []string
			for _, h := range c.Roles("app") {
				names = append(names, h.Name)
			}
			order = append(order, what+":"+strings.Join(names, ","))
			return nil
		}
	}
	goTasks := map[string]func(*tasks.Context) error{
		"test:switched":  record("switched"),
		"test:restarted": record("restarted"),
		"test:healthy":   record("healthy"),
	}
	extra := `set("health_check_url", "http://{host}:{http_port}/")
set("health_check_timeout", 1)
after("deploy:symlink:release", "test:switched")
after("deploy:published", "test:restarted")
after("deploy:health_check", "test:healthy")
`
	if _, err := e.run(extra, map[string]string{"publish_batch": "1"}, goTasks, "deploy"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"switched:host1", "restarted:host1", "healthy:host1",
		"switched:host2", "restarted:host2", "healthy:host2",
		"switched:host3", "restarted:host3", "healthy:host3",
	}
	if !slices.Equal(order, want) {
		t.Errorf("order = %v\nwant %v", order, want)
	}
	first := e.newestRelease()
	e.wantCurrent(first)

	// 34% of 3 hosts is 2 at a time; host3's page is broken.
	order = nil
	e.commit("Welcome to v2")
	e.broken.Store("host3", true)
	_, err := e.run(extra, map[string]string{"publish_batch": "34%"}, goTasks, "deploy")
	if err == nil || !strings.Contains(err.Error(), "batch 2 of 2 (host3)") {
		t.Fatalf("rolling deploy with host3 broken: %v", err)
	}
	t.Log(err)
	want = []string{"switched:host1,host2", "restarted:host1,host2", "healthy:host1,host2", "switched:host3", "restarted:host3", "restarted:host1,host2,host3"}
	if !slices.Equal(order, want) {
		t.Errorf("order = %v\nwant %v", order, want)
	}
	e.wantCurrent(first)
	e.wantReleases(first)
	e.wantNoLock()
}
