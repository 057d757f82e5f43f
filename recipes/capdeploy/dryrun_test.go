package capdeploy

import (
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/backend/dryrun"
)

// dryRunEnv makes e a dry run whose reports (of hosts and of
// run_locally, whose reports start with "local: ") are returned by the
// func it gives.
func dryRunEnv(e *env) (reports func() []string, reset func()) {
	var mu sync.Mutex
	var got []string
	e.dryRun = true
	e.wrap = func(h *deploy.Host, _ deploy.Backend) deploy.Backend {
		prefix := ""
		if h.Name == runLocallyName {
			prefix = "local: "
		}
		return dryrun.New(func(msg string) {
			mu.Lock()
			got = append(got, prefix+msg)
			mu.Unlock()
		})
	}
	return func() []string {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(got)
		}, func() {
			mu.Lock()
			got = nil
			mu.Unlock()
		}
}

// localReports are the reports of commands run_locally would run.
func localReports(reports []string) []string {
	var out []string
	for _, r := range reports {
		if strings.HasPrefix(r, "local: ") {
			out = append(out, r)
		}
	}
	return out
}

// A dry run of the whole deploy walks every stage, reports every command
// each host would run, and changes nothing: the dry-run backend answers
// every command with one placeholder line and no step markers, so a
// command of several steps comes back with less output than it has
// steps (which once dereferenced a nil error), and nothing downstream may
// take that placeholder for real data.
func TestLocalDryRunDeploy(t *testing.T) {
	e := newLocalEnv(t)
	e.deploy("", nil) // a deployed host, so a rollback has something to go back to
	first := e.newestRelease()
	reports, reset := dryRunEnv(e)
	for _, task := range []string{"deploy", "deploy:check", "deploy:cleanup", "rollback", "deploy:setup", "deploy:unlock", "releases"} {
		reset()
		rec, err := e.run(`set("linked_dirs", ["log"])`, nil, nil, task)
		if err != nil {
			t.Fatalf("dry run of %s: %v\n%s", task, err, rec.text())
		}
		if len(reports()) == 0 {
			t.Errorf("dry run of %s reported no command", task)
		}
		if task == "deploy" || task == "rollback" {
			if !slices.ContainsFunc(reports(), func(r string) bool { return strings.Contains(r, "mv -T") }) {
				t.Errorf("dry run of %s reported no switch among %q", task, reports())
			}
		}
		switch task {
		case "deploy":
			// Nothing resolved the branch: not even git ls-remote ran on
			// this machine, and the revision says it is a placeholder.
			if l := localReports(reports()); len(l) > 0 {
				t.Errorf("dry run would run %q on this machine: a placeholder needs nothing", l)
			}
			if !strings.Contains(rec.text(), "dry run: would deploy release ") || !strings.Contains(rec.text(), "(<revision of branch main>)") {
				t.Errorf("dry run of deploy said:\n%s", rec.text())
			}
		case "rollback":
			if !strings.Contains(rec.text(), "would roll back to release <previous release>") {
				t.Errorf("dry run of rollback said:\n%s", rec.text())
			}
		case "releases":
			// No table of nothing: the placeholder is not a host's state.
			if strings.Contains(rec.text(), "no releases") || !strings.Contains(rec.text(), "dry run: each host's releases would be read") {
				t.Errorf("dry run of releases said:\n%s", rec.text())
			}
		}
	}
	if e.resolves.Load() != 2 { // the real deploy, and the dry one
		t.Errorf("Resolve ran %d times", e.resolves.Load())
	}
	e.wantCurrent(first)
	e.wantReleases(first)
	e.wantNoLock()
}

// Under a dry run each strategy resolves without running anything and
// builds nothing on this machine (the copy strategy's archive), the
// health check sends no request, and a rollback picks a placeholder.
func TestLocalDryRunStrategies(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Write([]byte("welcome"))
	}))
	defer srv.Close()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	e := newLocalEnv(t)
	svn := svnRepo(t, e)
	appDir := t.TempDir()
	if err := os.WriteFile(appDir+"/index.html", []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reports, reset := dryRunEnv(e)
	health := `set("health_check_url", "` + srv.URL + `/up")` + "\n"
	for _, c := range []struct{ name, extra, want string }{
		{"copy_dir", `set("scm", "copy")` + "\n" + `set("copy_dir", "` + appDir + `")`, "<content of directory " + appDir + ">"},
		{"copy of git", `set("scm", "copy")`, "<revision of branch main>"},
		{"git tag", `set("tag", "v1.0")`, "<revision of tag v1.0>"},
		{"svn", `set("scm", "svn")` + "\n" + `set("repo_url", "file://` + svn + `/trunk")`, "<last-changed revision of file://" + svn + "/trunk>"},
		{"svn revision", `set("scm", "svn")` + "\n" + `set("repo_url", "file://` + svn + `/trunk")` + "\n" + `set("revision", 1)`, "(trunk@r1 (1))"},
	} {
		reset()
		rec, err := e.run(health+c.extra, nil, nil, "deploy")
		if err != nil {
			t.Errorf("%s: dry run of deploy: %v\n%s", c.name, err, rec.text())
			continue
		}
		if !strings.Contains(rec.text(), c.want) {
			t.Errorf("%s: dry run does not say %q:\n%s", c.name, c.want, rec.text())
		}
		if !strings.Contains(rec.text(), "would GET "+srv.URL+"/up") {
			t.Errorf("%s: dry run does not report the health check:\n%s", c.name, rec.text())
		}
		if l := localReports(reports()); len(l) > 0 {
			t.Errorf("%s: dry run would run %q on this machine: a placeholder needs nothing", c.name, l)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("dry runs sent %d health check requests", n)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
		t.Errorf("dry runs left %d entries in TMPDIR", len(ents))
	}
	e.wantReleases()
	if _, err := os.Stat(e.deployTo); err == nil {
		t.Errorf("a dry run made deploy_to")
	}
}
