package capdeploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/davit-deploy/davit/tasks"
	"github.com/davit-deploy/davit/tasks/run"
)

// checkRun loads src as a Deployfile, selects stage (if any) and runs the
// run's Check, as the CLI does before the first command.
func checkRun(t *testing.T, src, stage string, overrides map[string]string, taskNames ...string) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Deployfile")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := run.Load(context.Background(), run.Config{
		Deployfile: path,
		GoRecipes:  map[string]func() tasks.Recipe{"deploy": New},
		Overrides:  overrides,
	})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if stage != "" {
		if err := r.UseStage(context.Background(), stage); err != nil {
			t.Fatalf("stage %s: %v", stage, err)
		}
	}
	return r.Check(taskNames...)
}

const varsBase = `
use("deploy")
set("application", "app")
set("repo_url", "https://git.example.com/app.git")
stage("production", lambda: server("web1", roles = ["app"]))
`

// Every wrong variable of the recipe is reported at once, before anything
// runs, each with where it was set; a value the recipe accepts is not.
func TestCheckVarsReportsEveryProblemAtOnce(t *testing.T) {
	src := varsBase + `
set("keep_releases", "three")
set("health_check_timeout", 0)
set("publish_batch", "half")
set("scm", "gti")
set("health_check_url", "localhost:8080/up")
set("linked_dirs", ["log", "/etc"])
set("linked_files", ["../secrets.yml"])
set("health_check_rollback", "maybe")
set("publish_batch_wait", "soon")
set("deploy_to", "relative/path")
`
	err := checkRun(t, src, "production", nil, "deploy")
	var ve *tasks.VarsError
	if !errors.As(err, &ve) {
		t.Fatalf("Check = %v; want a *tasks.VarsError", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "10 problems") {
		t.Errorf("Check's error does not count 10 problems:\n%s", msg)
	}
	// One line per problem, naming the variable first and where it was
	// set last.
	for _, want := range []string{
		`keep_releases: want an integer, have "three"`,
		`health_check_timeout is 0s; it must be more than 0 seconds`,
		`publish_batch "half": want a host count or a percentage`,
		`scm: unknown scm "gti" (did you mean git?)`,
		`health_check_url: "localhost:8080/up": want an http:// or https:// URL`,
		`linked_dirs: "/etc" is absolute`,
		`linked_files: "../secrets.yml" is not a clean relative path`,
		`health_check_rollback: want true or false, have "maybe"`,
		`publish_batch_wait "soon": want seconds or a duration`,
		`deploy_to`,
	} {
		line := problemLine(msg, want)
		if line == "" {
			t.Errorf("Check's error lacks %q:\n%s", want, msg)
		} else if !regexp.MustCompile(`\(set at .*Deployfile:\d+:\d+\)$`).MatchString(line) {
			t.Errorf("problem %q does not say where it was set", line)
		}
	}
}

// Command-line values are strings: the ones the recipe's reads accept
// pass, the others are reported as given on the command line.
func TestCheckVarsOverrides(t *testing.T) {
	good := map[string]string{"keep_releases": "3", "health_check_timeout": "90s", "publish_batch": "25%",
		"health_check_rollback": "no", "host_shell": "false", "publish_batch_wait": "2", "branch": "hotfix", "release": "20260102030405"}
	if err := checkRun(t, varsBase, "production", good, "deploy"); err != nil {
		t.Errorf("Check with good overrides: %v", err)
	}
	bad := map[string]string{"keep_releases": "0", "branch": "main;rm -rf /", "release": "yesterday", "scm": "svm"}
	err := checkRun(t, varsBase, "production", bad, "deploy")
	if err == nil {
		t.Fatal("Check with bad overrides passed")
	}
	for _, want := range []string{
		"keep_releases is 0; it must be at least 1",
		`release="yesterday" is not a release id`,
		`scm: unknown scm "svm" (did you mean svn?)`,
	} {
		if line := problemLine(err.Error(), want); !strings.HasSuffix(line, "(given on the command line)") {
			t.Errorf("Check's error lacks %q given on the command line:\n%s", want, err)
		}
	}
	// The scm is unknown, so its variables (branch) are not checked
	// against the wrong strategy; with the right one they are.
	err = checkRun(t, varsBase, "production", map[string]string{"branch": "main;rm -rf /"}, "deploy")
	if err == nil || !strings.HasSuffix(problemLine(err.Error(), `branch "main;rm -rf /": contains ';'`), "(given on the command line)") {
		t.Errorf("Check with a bad branch: %v", err)
	}
}

// The strategy's own variables are checked by form; one that must be set
// but is not (repo_url) is left to deploy:check, so a deploy:setup before
// the repository exists still runs. A stage's set() counts.
func TestCheckVarsStrategyAndStage(t *testing.T) {
	src := `
use("deploy")
set("application", "app")
set("scm", "copy")
set("copy_exclude", ["log/", "[bad"])
def production():
    server("web1", roles = ["app"])
    set("keep_releases", -1)
stage("production", production)
stage("staging", lambda: server("s1", roles = ["app"]))
`
	err := checkRun(t, src, "production", nil, "deploy:setup")
	if err == nil {
		t.Fatal("Check passed")
	}
	for _, want := range []string{"copy_exclude", "[bad", "keep_releases is -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check's error lacks %q:\n%s", want, err)
		}
	}
	if strings.Contains(err.Error(), "repo_url") {
		t.Errorf("Check reported the unset repo_url:\n%s", err)
	}
	// svn: a revision that is not one; two git selectors at once.
	svn := varsBase + `set("scm", "svn")` + "\n"
	if err := checkRun(t, svn, "production", map[string]string{"revision": "r12x"}, "deploy"); err == nil ||
		!strings.Contains(err.Error(), `revision "r12x": want an svn revision number`) {
		t.Errorf("svn revision: %v", err)
	}
	both := varsBase + `set("tag", "v1.0")` + "\n" + `set("version", "^1.0")` + "\n"
	if err := checkRun(t, both, "production", nil, "deploy"); err == nil || !strings.Contains(err.Error(), "tag and version are both set") {
		t.Errorf("tag and version: %v", err)
	}
}

// problemLine is the line of a VarsError's text that starts with the
// problem start, or "".
func problemLine(msg, start string) string {
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimPrefix(strings.TrimSpace(l), "- "); strings.HasPrefix(l, start) {
			return l
		}
	}
	return ""
}

// A valid Deployfile passes, and so does one that uses the recipe without
// setting what only deploying needs (no application, so no deploy_to):
// its other tasks still run.
func TestCheckVarsValid(t *testing.T) {
	src := varsBase + `
set("keep_releases", 3)
set("health_check_url", {"web": "http://{host}:{http_port}/up", "app": "https://{name}.example.com/"})
set("health_check_timeout", 1.5)
set("publish_batch", 2)
set("linked_dirs", ["log", "tmp/pids"])
set("linked_files", ["config/database.yml"])
`
	if err := checkRun(t, src, "production", nil, "deploy"); err != nil {
		t.Errorf("Check of a valid Deployfile: %v", err)
	}
	bare := `
use("deploy")
task("uptime", lambda ctx: None)
`
	if err := checkRun(t, bare, "", nil, "uptime"); err != nil {
		t.Errorf("Check without application: %v", err)
	}
}
