package cli

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// deployProject writes a Deployfile using the deploy recipe with the copy
// strategy (./src on this machine) and a localhost server, plus extra
// lines, and returns its directory and deploy_to.
func deployProject(t *testing.T, extra string) (dir, deployTo string) {
	t.Helper()
	dir = t.TempDir()
	deployTo = filepath.Join(dir, "srv", "app")
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "src", "index.html"), []byte("Welcome\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	df := `use("deploy")
set("application", "cli")
set("deploy_to", "` + deployTo + `")
set("scm", "copy")
set("copy_dir", "src")
stage("local", lambda: server("localhost", roles = ["app"]))
` + extra
	if err := os.WriteFile(filepath.Join(dir, "Deployfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, deployTo
}

func releaseDirs(t *testing.T, deployTo string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(deployTo, "releases"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// The deploy recipe through the CLI: deploy, deploy, releases, rollback.
func TestDeployCLI(t *testing.T) {
	dir, deployTo := deployProject(t, "")
	t.Setenv("HOME", t.TempDir())
	df := filepath.Join(dir, "Deployfile")
	for i := range 2 {
		if code, out := runDavit(t, "-f", df, "--format", "plain", "local", "deploy"); code != 0 {
			t.Fatalf("deploy %d: exit %d\n%s", i+1, code, out)
		}
	}
	rels := releaseDirs(t, deployTo)
	if len(rels) != 2 {
		t.Fatalf("releases: %v", rels)
	}
	code, out := runDavit(t, "-f", df, "--format", "plain", "local", "releases")
	if code != 0 || !strings.Contains(out, rels[1]) || !strings.Contains(out, "current") {
		t.Fatalf("releases: exit %d\n%s", code, out)
	}
	if code, out := runDavit(t, "-f", df, "--format", "plain", "local", "rollback"); code != 0 {
		t.Fatalf("rollback: exit %d\n%s", code, out)
	}
	target, _ := os.Readlink(filepath.Join(deployTo, "current"))
	if filepath.Base(target) != rels[0] {
		t.Errorf("current -> %s after rollback, want %s", target, rels[0])
	}
	code, out = runDavit(t, "-f", df, "-T")
	for _, task := range []string{"deploy ", "rollback ", "releases ", "deploy:check ", "deploy:unlock ", "deploy:setup ", "deploy:cleanup "} {
		if !strings.Contains(out, "davit "+task) {
			t.Errorf("-T lacks %q:\n%s", task, out)
		}
	}
}

// Ctrl-C (a real SIGINT) while the release is being built: davit exits
// 130, the hook's command is gone, the partial release is removed and the
// lock released.
func TestDeployInterruptedBySignal(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "slow.pid")
	dir, deployTo := deployProject(t, `
def slow(ctx):
    on(roles("app"), lambda h: h.execute("sleep 60 & echo $! > `+pidFile+`; wait"))
task("test:slow", slow)
before("deploy:symlink:shared", "test:slow")
`)
	cmd, out := startDavit(t, dir, "--format", "plain", "local", "deploy")
	pid, err := strconv.Atoi(waitForFile(t, pidFile, 15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if rels := releaseDirs(t, deployTo); len(rels) != 1 {
		t.Fatalf("while updating, releases = %v", rels)
	}
	interruptAndCheck(t, cmd, out, pid)
	if rels := releaseDirs(t, deployTo); len(rels) != 0 {
		t.Errorf("the partial release is still there: %v\n%s", rels, out)
	}
	if _, err := os.Stat(filepath.Join(deployTo, ".davit", "lock")); err == nil {
		t.Errorf("the deploy lock is still held\n%s", out)
	}
	// It says it was interrupted, where, and what each host was left
	// with, in words: not Go's "context canceled" once per host.
	if !strings.Contains(out.String(), "davit: interrupted in task test:slow (of deploy)\ndeploy of release ") {
		t.Errorf("output does not say where it was interrupted:\n%s", out)
	}
	if strings.Contains(out.String(), "context canceled") {
		t.Errorf("output shows Go's cancellation error:\n%s", out)
	}
	if !strings.Contains(out.String(), "removed)") {
		t.Errorf("output does not report the removal:\n%s", out)
	}
}
