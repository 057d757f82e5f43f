package cli

import (
	"bytes"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy/sshtest"
)

// runDavit runs the CLI in-process and returns its exit status and output.
func runDavit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := runCLI(append([]string{"davit"}, args...), nil, &out, &out)
	return code, out.String()
}

// probeDeployfile exercises every host-handle method; the probe task leaves
// one result file per host in out/ on the control machine.
const probeDeployfile = `
stage("local", lambda: server("localhost", roles = ["app"]))
def remote():
    server("host1", roles = ["app"])
    server("host2", roles = ["app"])
stage("remote", remote)

def probe(ctx):
    def f(h):
        h.execute("rm", "-rf", "probe")
        h.execute("mkdir", "-p", "probe/sub dir")
        h.upload_string("uploaded 'content' $HOME\n", "probe/sub dir/up.txt")
        h.execute("printf '%s|%s\n' \"$A\" \"$B\" > env.txt", within = "probe/sub dir",
                  env = {"A": "it's \"quoted\"", "B": "two  spaces; $(not run)"})
        h.execute("cat up.txt env.txt > result.txt && umask > umask.txt", within = "probe/sub dir", umask = "027")
        h.execute("cat umask.txt >> result.txt", within = "probe/sub dir")
        if h.test("test", "-e", "probe/missing"):
            fail("missing file reported present")
        seen = h.capture("wc", "-l", "probe/sub dir/result.txt")
        h.execute("echo lines: %s >> 'probe/sub dir/result.txt'" % seen.split()[0])
        h.download("probe/sub dir/result.txt", "out/" + ("local" if h.name == "localhost" else "ssh") + "-" + h.name + ".txt")
    on(roles("app"), f)
task("probe", probe)

def nap(ctx):
    on(roles("app"), lambda h: h.execute("sleep 60 & echo $! > nap.pid; wait"))
task("nap", nap)
`

// The same task gives the same result on the local backend and over SSH.
func TestSameResultLocalAndSSH(t *testing.T) {
	fleet := sshtest.Start(t, sshtest.Options{N: 2})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Deployfile"), []byte(probeDeployfile), 0o644); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	df := filepath.Join(dir, "Deployfile")

	if code, out := runDavit(t, "-f", df, "--format", "plain", "local", "probe"); code != 0 {
		t.Fatalf("local probe: exit %d\n%s", code, out)
	}
	if code, out := runDavit(t, "-f", df, "--format", "plain", "--ssh-config", fleet.SSHConfigPath, "remote", "probe"); code != 0 {
		t.Fatalf("remote probe: exit %d\n%s", code, out)
	}
	want, err := os.ReadFile(filepath.Join(dir, "out", "local-localhost.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// $HOME stays literal: upload_string writes bytes, not shell.
	for _, s := range []string{"uploaded 'content' $HOME", `it's "quoted"|two  spaces; $(not run)`, "0027", "lines: 3"} {
		if !strings.Contains(string(want), s) {
			t.Errorf("local result lacks %q:\n%s", s, want)
		}
	}
	for _, h := range []string{"host1", "host2"} {
		got, err := os.ReadFile(filepath.Join(dir, "out", "ssh-"+h+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s over SSH gave\n%s\nlocal gave\n%s", h, got, want)
		}
	}
}

// Ctrl-C during a long command over SSH: davit exits 130 and the remote
// command is gone.
func TestInterruptSSH(t *testing.T) {
	fleet := sshtest.Start(t, sshtest.Options{N: 1})
	dir := t.TempDir()
	deployfile := strings.Replace(probeDeployfile, `server("host2", roles = ["app"])`, "", 1)
	if err := os.WriteFile(filepath.Join(dir, "Deployfile"), []byte(deployfile), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := fleet.Servers[0]
	cmd, out := startDavit(t, dir, "--format", "plain", "--ssh-config", fleet.SSHConfigPath, "remote", "nap")
	pidFile := filepath.Join(srv.IsolatedDir(homeOf(t, fleet)), "nap.pid")
	pid, err := strconv.Atoi(waitForFile(t, pidFile, 15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	interruptAndCheck(t, cmd, out, pid)
}

// homeOf is the login user's home directory as the servers see it.
func homeOf(t *testing.T, f *sshtest.Fleet) string {
	t.Helper()
	u, err := user.Lookup(f.User)
	if err != nil {
		t.Fatal(err)
	}
	return u.HomeDir
}
