package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDavit runs this test binary as the davit CLI in dir.
func startDavit(t *testing.T, dir string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DAVIT_TEST_AS_MAIN=1", "NO_COLOR=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, &out
}

// waitForFile polls until path exists and returns its content.
func waitForFile(t *testing.T, path string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return strings.TrimSpace(string(b))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not appear within %s", path, within)
	return ""
}

// exitStatus waits for cmd and returns its exit status.
func exitStatus(t *testing.T, cmd *exec.Cmd, within time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("davit did not exit within %s of the interrupt", within)
		return -1
	}
}

func processAlive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

// Ctrl-C during a long command on the local backend stops the command,
// and davit exits 130.
func TestInterruptLocal(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "sleep.pid")
	deployfile := `
stage("local", lambda: server("localhost", roles = ["app"]))
def nap(ctx):
    on(roles("app"), lambda h: h.execute("sleep 60 & echo $! > ` + pidFile + `; wait"))
task("nap", nap)
`
	if err := os.WriteFile(filepath.Join(dir, "Deployfile"), []byte(deployfile), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, out := startDavit(t, dir, "--format", "plain", "local", "nap")
	pid, err := strconv.Atoi(waitForFile(t, pidFile, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	interruptAndCheck(t, cmd, out, pid)
	if !strings.Contains(out.String(), "interrupted") {
		t.Errorf("output does not say it was interrupted:\n%s", out)
	}
}

// interruptAndCheck sends davit the Ctrl-C signal and checks that it exits
// 130 and that the command it was running (pid) is gone.
func interruptAndCheck(t *testing.T, cmd *exec.Cmd, out *bytes.Buffer, pid int) {
	t.Helper()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := exitStatus(t, cmd, 10*time.Second); code != 130 {
		t.Fatalf("exit status %d, want 130; output:\n%s", code, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for processAlive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if processAlive(pid) {
		t.Errorf("the interrupted command (pid %d) still runs", pid)
	}
}

// A second Ctrl-C exits at once, even while the first one's undo waits on
// a host, and says what may be left behind and how to recover.
func TestSecondInterruptExitsAtOnce(t *testing.T) {
	dir := t.TempDir()
	app := filepath.Join(dir, "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(app, "index.html"), []byte("welcome\n"), 0o644)
	building, undoing := filepath.Join(dir, "building.pid"), filepath.Join(dir, "undoing.pid")
	deployfile := `
use("deploy")
set("application", "twice")
set("deploy_to", "` + filepath.Join(dir, "srv") + `")
set("scm", "copy")
set("copy_dir", "app")
stage("local", lambda: server("localhost", roles = ["app"]))
task("build", lambda ctx: on(roles("app"), lambda h: h.execute("sleep 60 & echo $! > ` + building + `; wait")))
after("deploy:updated", "build")
# The undo runs even after Ctrl-C, bounded; this hook makes it wait.
task("notify", lambda ctx: on(roles("app"), lambda h: h.execute("sleep 60 & echo $! > ` + undoing + `; wait")))
after("deploy:failed", "notify")
`
	if err := os.WriteFile(filepath.Join(dir, "Deployfile"), []byte(deployfile), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, out := startDavit(t, dir, "--format", "plain", "local", "deploy")
	waitForFile(t, building, 20*time.Second)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	waitForFile(t, undoing, 10*time.Second)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := exitStatus(t, cmd, 3*time.Second); code != 130 {
		t.Fatalf("exit status %d, want 130; output:\n%s", code, out)
	}
	for _, want := range []string{
		"interrupt again to exit at once",
		"interrupted again: exiting without waiting for the hosts",
		"may be left, on: localhost",
		"davit local deploy:unlock",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
