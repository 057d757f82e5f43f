package capdeploy

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/httpwait"
	"github.com/davit-deploy/davit/tasks"
)

func probe(current string, releases []string, marks map[string]string) *serverState {
	s := &serverState{currentID: current, releases: releases, marks: map[string]*mark{}}
	if current != "" {
		s.currentTarget = "/srv/app/releases/" + current
	}
	for id, st := range marks {
		s.marks[id] = &mark{values: map[string]string{"state": st}}
	}
	return s
}

func TestNextReleaseID(t *testing.T) {
	now := time.Date(2026, 11, 29, 1, 1, 1, 900_000_000, time.UTC)
	for _, c := range []struct {
		existing []string
		want     string
	}{
		{nil, "20261129010101"},
		{[]string{"20261129010100"}, "20261129010101"},
		{[]string{"20261129010101"}, "20261129010102"},
		{[]string{"20261129010101", "20261129010105", "20200101000000"}, "20261129010106"},
		{[]string{"20261231235959"}, "20270101000000"}, // a clock behind another host's
	} {
		if got := nextReleaseID(now, c.existing); got != c.want {
			t.Errorf("nextReleaseID(%v) = %s, want %s", c.existing, got, c.want)
		}
	}
	if got := nextReleaseID(now.In(time.FixedZone("x", 3600)), nil); got != "20261129010101" {
		t.Errorf("ids are not UTC: %s", got)
	}
}

func TestParseProbe(t *testing.T) {
	l := deploy.Layout{DeployTo: "/srv/app"}
	out := "noise\n@@ current\n/srv/app/releases/20250102000000\n@@ releases\n20250102000000\nnot-a-release\n20250101000000\n" +
		"@@ marks\n20250102000000:state=pending\n20250102000000:state=finished\njunk:state=bad\n" +
		"@@ lock\nuser=alice\nsince=2026-01-01T00:00:00Z\n" +
		"@@ revision\n20250102000000:abc\n" +
		"@@ log\nBranch main (at abc) deployed as release 20250102000000 by alice\n"
	s := parseProbe(out, l)
	if s.currentID != "20250102000000" || !slices.Equal(s.releases, []string{"20250101000000", "20250102000000"}) {
		t.Errorf("current %q, releases %v", s.currentID, s.releases)
	}
	if s.marks["20250102000000"].state() != stateFinished || s.marks["junk"] != nil {
		t.Errorf("marks %v", s.marks)
	}
	if s.lock == nil || !strings.HasPrefix(s.lock.String(), "deploy locked by alice since 2026-01-01 00:00:00 UTC") {
		t.Errorf("lock %v", s.lock)
	}
	if s.revisions["20250102000000"] != "abc" || s.logged["20250102000000"].user != "alice" {
		t.Errorf("revisions %v, logged %v", s.revisions, s.logged)
	}
	if s := parseProbe("@@ missing\n", l); !s.missing {
		t.Error("missing deploy_to not seen")
	}
}

func TestReleaseOf(t *testing.T) {
	l := deploy.Layout{DeployTo: "/srv/app"}
	for target, want := range map[string]string{
		"/srv/app/releases/20250102000000":   "20250102000000", // Capistrano's and davit's
		"releases/20250102000000":            "20250102000000", // relative
		"./releases/20250102000000/":         "20250102000000",
		"/srv/other/releases/20250102000000": "",
		"/srv/app/releases/latest":           "",
		"/srv/app/releases/2025/x":           "",
	} {
		if got := releaseOf(target, l); got != want {
			t.Errorf("releaseOf(%q) = %q, want %q", target, got, want)
		}
	}
}

func TestCleanupPlan(t *testing.T) {
	s := probe("20200103000000",
		[]string{"20200101000000", "20200102000000", "20200103000000", "20200104000000", "20200105000000", "20200106000000"},
		map[string]string{
			"20200102000000": statePending,  // failed
			"20200104000000": stateBad,      // rolled back from
			"20200105000000": stateFinished, // good
			"20200106000000": statePending,  // the deploy in progress
			"20190101000000": stateFinished, // orphan
		})
	rm, orphans := cleanupPlan(s, 2, "20200106000000", "20200106000000")
	if want := []string{"20200101000000", "20200102000000", "20200103000000", "20200104000000"}; !slices.Equal(rm, want) {
		t.Errorf("keep 2: remove %v, want %v", rm, want)
	}
	if !slices.Equal(orphans, []string{"20190101000000"}) {
		t.Errorf("orphans %v", orphans)
	}
	// Run by hand after a rollback: the newest good release is kept, and
	// current too, although that makes two.
	rm, _ = cleanupPlan(s, 1, "20200103000000", "")
	if want := []string{"20200101000000", "20200102000000", "20200104000000", "20200106000000"}; !slices.Equal(rm, want) {
		t.Errorf("keep 1 by hand: remove %v, want %v", rm, want)
	}
	rm, _ = cleanupPlan(s, 10, "20200103000000", "")
	if want := []string{"20200102000000", "20200104000000", "20200106000000"}; !slices.Equal(rm, want) {
		t.Errorf("keep 10: remove %v, want %v (failed and bad ones only)", rm, want)
	}
}

func TestChooseRollback(t *testing.T) {
	rels := []string{"20200101000000", "20200102000000", "20200103000000"}
	hosts := func(ps ...*serverState) []hostProbe {
		var out []hostProbe
		for i, p := range ps {
			out = append(out, hostProbe{name: "web" + string(rune('1'+i)), probe: p})
		}
		return out
	}
	cases := []struct {
		name     string
		hosts    []hostProbe
		explicit string
		want     string
		err      string
	}{
		{"previous", hosts(probe("20200103000000", rels, nil), probe("20200103000000", rels, nil)), "", "20200102000000", ""},
		{"skips bad and failed", hosts(probe("20200103000000", rels, map[string]string{"20200102000000": stateBad}), probe("20200103000000", rels, nil)), "", "20200101000000", ""},
		{"skips pending", hosts(probe("20200103000000", rels, map[string]string{"20200102000000": statePending})), "", "20200101000000", ""},
		{"missing on one host", hosts(probe("20200103000000", rels, nil), probe("20200103000000", []string{"20200101000000", "20200103000000"}, nil)), "", "20200101000000", ""},
		{"single release", hosts(probe("20200101000000", rels[:1], nil)), "", "", "only one release (20200101000000)"},
		{"nothing good", hosts(probe("20200102000000", rels[:2], map[string]string{"20200101000000": stateBad})), "", "", "no release before 20200102000000"},
		{"no current", hosts(probe("", rels, nil)), "", "", "no host has a current release"},
		{"drifted fleet", hosts(probe("20200103000000", rels, nil), probe("20200102000000", rels, nil)), "", "20200102000000", ""},
		{"explicit", hosts(probe("20200103000000", rels, nil)), "20200101000000", "20200101000000", ""},
		{"explicit missing", hosts(probe("20200103000000", rels, nil), probe("20200103000000", rels[1:], nil)), "20200101000000", "", "release 20200101000000 is missing on web2"},
		{"explicit failed", hosts(probe("20200103000000", rels, map[string]string{"20200101000000": statePending})), "20200101000000", "", "never finished deploying on web1"},
		{"explicit current", hosts(probe("20200103000000", rels, nil)), "20200103000000", "", "already current on every host"},
	}
	for _, c := range cases {
		got, _, err := chooseRollback(c.hosts, c.explicit)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: err = %v, want %q", c.name, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%s: got %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

func TestBatches(t *testing.T) {
	var hosts []*deploy.Host
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		hosts = append(hosts, &deploy.Host{Name: n})
	}
	st := &runState{hosts: hosts}
	for spec, want := range map[string][]int{"": {5}, "0": {5}, "2": {2, 2, 1}, "5": {5}, "9": {5}, "25%": {2, 2, 1}, "20%": {1, 1, 1, 1, 1}, "100%": {5}} {
		v := tasks.NewVars()
		v.Set("publish_batch", spec, tasks.Position{})
		v.Set("publish_batch_wait", 0, tasks.Position{})
		c := tasks.NewContext(t.Context(), &tasks.Executor{Vars: v}, nil)
		bs, _, err := (&Recipe{}).batches(c, st)
		if err != nil {
			t.Errorf("%q: %v", spec, err)
			continue
		}
		var sizes []int
		for _, b := range bs {
			sizes = append(sizes, len(b))
		}
		if !slices.Equal(sizes, want) {
			t.Errorf("publish_batch %q: batches %v, want %v", spec, sizes, want)
		}
	}
	for _, bad := range []string{"x", "-1", "0%", "150%"} {
		v := tasks.NewVars()
		v.Set("publish_batch", bad, tasks.Position{})
		v.Set("publish_batch_wait", 0, tasks.Position{})
		c := tasks.NewContext(t.Context(), &tasks.Executor{Vars: v}, nil)
		if _, _, err := (&Recipe{}).batches(c, st); err == nil {
			t.Errorf("publish_batch %q accepted", bad)
		}
	}
}

func TestExpandURL(t *testing.T) {
	h := &deploy.Host{Name: "web1", Address: "127.0.0.9", User: "deploy", Props: map[string]any{"http_port": 8080}}
	got, err := httpwait.ExpandURL("http://{host}:{http_port}/health?n={name}&u={user}", h)
	if err != nil || got != "http://127.0.0.9:8080/health?n=web1&u=deploy" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := httpwait.ExpandURL("http://{host}:{port}/", h); err == nil || !strings.Contains(err.Error(), "{port}") {
		t.Errorf("unknown placeholder: %v", err)
	}
}

func TestValidLinkedPath(t *testing.T) {
	for _, p := range []string{"log", "config/database.yml", "public/system"} {
		if err := validLinkedPath(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range []string{"", "/etc/passwd", "../x", "a/../../x", ".", "a//b", "a/"} {
		if err := validLinkedPath(p); err == nil {
			t.Errorf("%q accepted", p)
		}
	}
}

// Every task Capistrano users hook is defined, and use("deploy") gives
// defaults a Deployfile's set() overrides.
func TestTasksAndDefaults(t *testing.T) {
	reg, vars := tasks.NewRegistry(), tasks.NewVars()
	vars.Set("application", "payroll", tasks.Position{})
	vars.Set("keep_releases", 3, tasks.Position{})
	if err := tasks.UseRecipe(New(), reg, vars); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"deploy", "rollback", "releases", "deploy:rollback", "deploy:setup", "deploy:check", "deploy:unlock", "deploy:cleanup",
		"deploy:starting", "deploy:started", "deploy:updating", "deploy:updated", "deploy:publishing", "deploy:published",
		"deploy:finishing", "deploy:finished", "deploy:failed", "deploy:reverting", "deploy:reverted", "deploy:finishing_rollback",
		"deploy:check:directories", "deploy:check:linked_files", "deploy:new_release_path", "deploy:set_current_revision",
		"deploy:symlink:shared", "deploy:symlink:release", "deploy:log_revision", "deploy:revert_release", "deploy:cleanup_rollback",
		"deploy:lock", "deploy:health_check", "deploy:resolve_revision",
		"git:check", "git:update", "git:create_release", "svn:create_release", "copy:create_release",
	} {
		if _, err := reg.Lookup(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, want := range map[string]any{
		"deploy_to": "/var/www/payroll", "keep_releases": 3, "scm": "git", "branch": "main",
		"health_check_expect": "welcome", "current_path": "/var/www/payroll/current", "release_path": "/var/www/payroll/current",
		"shared_path": "/var/www/payroll/shared", "health_check_rollback": true, "publish_batch": "",
	} {
		if got, err := vars.Fetch(name); err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", name, got, err, want)
		}
	}
}

// health_check_url as a dict checks each role's URL on that role's hosts;
// a bad template fails before anything runs.
func TestHealthTargets(t *testing.T) {
	web := &deploy.Host{Name: "web1", Address: "127.0.0.2", Roles: []string{"web", "app"}, Props: map[string]any{"port": 81}}
	job := &deploy.Host{Name: "job1", Address: "127.0.0.3", Roles: []string{"job"}}
	st := &runState{hosts: []*deploy.Host{web, job}}
	targets := func(url any, roles []any) ([]healthTarget, error) {
		v := tasks.NewVars()
		v.Set("health_check_url", url, tasks.Position{})
		v.Set("health_check_roles", roles, tasks.Position{})
		c := tasks.NewContext(t.Context(), &tasks.Executor{Vars: v}, nil)
		return (&Recipe{}).healthTargets(c, st)
	}
	got, err := targets(map[string]any{"web": "http://{host}:{port}/", "job": "http://{host}:9/status"}, nil)
	var urls []string
	for _, g := range got {
		urls = append(urls, g.host.Name+"="+g.url)
	}
	if err != nil || !slices.Equal(urls, []string{"job1=http://127.0.0.3:9/status", "web1=http://127.0.0.2:81/"}) {
		t.Errorf("dict: %v, %v", urls, err)
	}
	if got, err := targets("http://{host}/", []any{"web"}); err != nil || len(got) != 1 || got[0].host != web {
		t.Errorf("string with roles: %v, %v", got, err)
	}
	if got, err := targets("", nil); err != nil || got != nil {
		t.Errorf("off: %v, %v", got, err)
	}
	if _, err := targets("http://{host}:{port}/", []any{"all"}); err == nil || !strings.Contains(err.Error(), "job1 has no {port}") {
		t.Errorf("missing property: %v", err)
	}
}

// The releases table shows where hosts differ.
func TestReleasesTableDrift(t *testing.T) {
	a := probe("20200102000000", []string{"20200101000000", "20200102000000"}, nil)
	a.revisions = map[string]string{"20200101000000": "aaaaaaaaaaaaaaaa", "20200102000000": "bbbb"}
	b := probe("20200101000000", []string{"20200101000000"}, nil)
	b.revisions = map[string]string{"20200101000000": "aaaaaaaaaaaaaaaa"}
	b.logged = map[string]logEntry{"20200101000000": {user: "alice"}}
	table, _ := releasesTable([]hostProbe{{"web1", a}, {"web2", b}})
	out := table.String()
	t.Log("\n" + out)
	if l := lineWith(out, "20200102000000  bbbb"); !strings.Contains(l, "current") || !strings.Contains(l, "web1 (missing on web2)") {
		t.Errorf("row 2: %q", l)
	}
	if l := lineWith(out, "20200101000000  aaaaaaaaaaaa"); !strings.Contains(l, "current on web2") || !strings.Contains(l, "alice") || !strings.HasSuffix(l, "all") {
		t.Errorf("row 1: %q", l)
	}
}
