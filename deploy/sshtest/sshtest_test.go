package sshtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/davit-deploy/davit/deploy/output/outputtest"
)

// dial logs in to s the way any client would: the fleet's key, host keys
// checked against the fleet's known_hosts.
func dial(t *testing.T, f *Fleet, s *Server) *ssh.Client {
	t.Helper()
	cb, err := knownhosts.New(f.KnownHostsPath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:            s.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(f.ClientSigner)},
		HostKeyCallback: cb,
		Timeout:         5 * time.Second,
	})
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func run(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	out, err := output(c, cmd)
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return out
}

func output(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

func TestFleetLogin(t *testing.T) {
	f := StartN(t, 3)
	if len(f.Servers) != 3 {
		t.Fatalf("got %d servers", len(f.Servers))
	}
	for i, s := range f.Servers {
		if want := "127.0.0." + string(rune('2'+i)); s.Host != want {
			t.Errorf("server %d host = %s, want %s", i, s.Host, want)
		}
		c := dial(t, f, s)
		// SSH_CONNECTION's third field is the server address the client reached.
		out := run(t, c, `echo "$USER $SSH_CONNECTION"`)
		fields := strings.Fields(out)
		if len(fields) != 5 || fields[0] != f.User || fields[3] != s.Host {
			t.Errorf("%s: got %q", s.Name, out)
		}
		if h := s.DeployHost(); h.Address != s.Host || h.Port != s.Port || h.Name != s.Name {
			t.Errorf("DeployHost = %+v", h)
		}
	}
	// The known_hosts file uses the bracketed form for non-22 ports.
	kh, _ := os.ReadFile(f.KnownHostsPath)
	if !strings.Contains(string(kh), "[127.0.0.2]:") || strings.Count(string(kh), "\n") != 3 {
		t.Errorf("known_hosts:\n%s", kh)
	}
	st, err := os.Stat(f.Dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("fleet dir mode: %v %v", st.Mode(), err)
	}
}

func TestStockLimits(t *testing.T) {
	f := StartN(t, 1)
	out, err := exec.Command(f.sshd, "-T", "-f", filepath.Join(f.Servers[0].Dir, "sshd_config")).CombinedOutput()
	if err != nil {
		t.Fatalf("sshd -T: %v\n%s", err, out)
	}
	for _, want := range []string{"maxsessions 10", "maxstartups 10:30:100", "acceptenv LANG", "acceptenv LC_*", "strictmodes yes", "passwordauthentication no"} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("sshd -T lacks %q", want)
		}
	}
}

// TestOpenSSHClient checks that the ssh_config and known_hosts files work
// for OpenSSH itself, with strict host key checking.
func TestOpenSSHClient(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("no ssh client")
	}
	f := StartN(t, 2)
	for _, s := range f.Servers {
		out, err := exec.Command(sshBin, "-F", f.SSHConfigPath, s.Name, "echo", "hello from", s.Name).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "hello from "+s.Name {
			t.Errorf("ssh %s: %v: %s", s.Name, err, out)
		}
	}
}

func TestHostKeyTypes(t *testing.T) {
	f := Start(t, Options{HostKeyTypes: []string{"ecdsa", "ed25519"}})
	s := f.Servers[0]
	if len(s.HostKeys) != 2 || s.HostKey.Type() != ssh.KeyAlgoECDSA256 || s.HostKeys[1].Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("host keys: %v", s.HostKeys)
	}
	if n := len(s.KnownHostsLines()); n != 2 {
		t.Errorf("%d known_hosts lines", n)
	}
	dial(t, f, s)
}

func TestNoSFTP(t *testing.T) {
	f := Start(t, Options{NoSFTP: true})
	c := dial(t, f, f.Servers[0])
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.RequestSubsystem("sftp"); err == nil {
		t.Fatal("sftp subsystem available on a NoSFTP server")
	}
}

func TestStopRestart(t *testing.T) {
	f := StartN(t, 1)
	s := f.Servers[0]
	c := dial(t, f, s)
	// A command of the session must die with the server.
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	// A sleep no other test runs, so the check below sees only this one
	// (tests of other packages run at the same time and leave sleeps of
	// their own on purpose, as abandoned commands).
	sleep := fmt.Sprintf("sleep 300.%d", os.Getpid())
	if err := sess.Start(sleep); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	before := len(descendants(s.cmd.Process.Pid))
	if before < 3 {
		t.Errorf("expected listener, connection and session processes, got %d", before)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("session still open after Stop")
	}
	if _, err := output(c, "true"); err == nil {
		t.Fatal("connection survived Stop")
	}
	if out, _ := exec.Command("pgrep", "-f", "^"+regexp.QuoteMeta(sleep)+"$").Output(); len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("remote command survived Stop: pids %s", out)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	c2 := dial(t, f, s)
	if out := run(t, c2, "echo back"); strings.TrimSpace(out) != "back" {
		t.Errorf("after restart: %q", out)
	}
}

// TestFreezeResume freezes a server with a command running on an
// established connection: the command stops too (its processes are in
// state T), new requests go unanswered, and Resume brings all of it back.
func TestFreezeResume(t *testing.T) {
	f := StartN(t, 1)
	s := f.Servers[0]
	c := dial(t, f, s)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	// The loop prints a line every 20 ms while it runs.
	out := &outputtest.Buffer{}
	sess.Stdout = out
	if err := sess.Start("while :; do echo tick; sleep 0.02; done"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the loop's first line", func() bool { return out.Len() > 0 })
	s.Freeze()
	if !s.Frozen() {
		t.Fatal("Frozen() = false after Freeze")
	}
	// Every process of the server, the loop's shell included, is stopped.
	for _, p := range descendants(s.cmd.Process.Pid) {
		if runs(p) {
			t.Errorf("pid %d still runs after Freeze: %v", p, procStat(p))
		}
	}
	time.Sleep(100 * time.Millisecond) // output in flight arrives
	frozenAt := out.Len()
	res := make(chan error, 1)
	go func() { _, err := output(c, "true"); res <- err }()
	select {
	case err := <-res:
		t.Fatalf("frozen server answered: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if n := out.Len(); n != frozenAt {
		t.Errorf("the frozen command wrote %d more bytes", n-frozenAt)
	}
	s.Resume()
	if s.Frozen() {
		t.Fatal("Frozen() = true after Resume")
	}
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("after resume: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer after resume")
	}
	waitFor(t, "the loop to go on after Resume", func() bool { return out.Len() > frozenAt })
}

// TestFreezeThenStop: a frozen server can still be stopped.
func TestFreezeThenStop(t *testing.T) {
	f := StartN(t, 1)
	s := f.Servers[0]
	c := dial(t, f, s)
	s.Freeze()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("connection to a frozen server survived Stop")
	}
}

// TestSilentServer accepts the TCP connection and then says nothing, not
// even to a client that speaks first.
func TestSilentServer(t *testing.T) {
	s := StartSilent(t)
	if s.Host != SilentHost || s.Port == 0 {
		t.Fatalf("listening on %s", s.Addr)
	}
	c, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("SSH-2.0-test\r\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var b [1]byte
	n, err := c.Read(b[:])
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read %d bytes, %v; want a timeout", n, err)
	}
	waitFor(t, "the connection to be counted", func() bool { return s.Accepted() == 1 })
	s.Close()
	s.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(b[:]); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("after Close the connection is still open: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestIsolate gives two hosts the same path with separate contents.
func TestIsolate(t *testing.T) {
	shared := filepath.Join(t.TempDir(), "srv", "app")
	f := Start(t, Options{N: 2, Isolate: []string{shared, "/tmp"}})
	for _, s := range f.Servers {
		c := dial(t, f, s)
		run(t, c, "mkdir -p "+shared+"/releases && echo "+s.Name+" > "+shared+"/marker")
		// /tmp keeps its sticky, world-writable mode, privately.
		// Each sees only its own files there (host2 does not see host1's).
		if out := run(t, c, "stat -c %a /tmp; ls -A /tmp | grep -c host; touch /tmp/"+s.Name); strings.TrimSpace(out) != "1777\n0" {
			t.Errorf("%s: private /tmp: %q", s.Name, out)
		}
	}
	for _, s := range f.Servers {
		c := dial(t, f, s)
		if out := run(t, c, "cat "+shared+"/marker"); strings.TrimSpace(out) != s.Name {
			t.Errorf("%s sees marker %q", s.Name, out)
		}
		b, err := os.ReadFile(filepath.Join(s.IsolatedDir(shared), "marker"))
		if err != nil || strings.TrimSpace(string(b)) != s.Name {
			t.Errorf("%s private dir: %q %v", s.Name, b, err)
		}
	}
	if _, err := os.Stat("/tmp/host1"); err == nil {
		t.Error("a file in a server's private /tmp reached the real /tmp")
	}
	if ents, _ := os.ReadDir(shared); len(ents) != 0 {
		t.Errorf("the test's own view of %s is not empty: %v", shared, ents)
	}
}

// TestIsolateAvoidsFleetDir isolates the directory the first fleet's files
// are in; the second fleet must keep its own files elsewhere, where its
// sshd still sees them.
func TestIsolateAvoidsFleetDir(t *testing.T) {
	f := StartN(t, 1)
	parent := filepath.Dir(f.Dir)
	g := Start(t, Options{Isolate: []string{parent}})
	if within(g.Dir, parent) {
		t.Fatalf("fleet dir %s is inside isolated %s", g.Dir, parent)
	}
	dial(t, g, g.Servers[0])
}

func TestSecureForSSHD(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "open")
	if err := os.Mkdir(bad, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(bad, 0o777)
	inner := filepath.Join(bad, "inner")
	os.Mkdir(inner, 0o700)
	if secureForSSHD(inner, os.Getuid(), "/nonexistent") {
		t.Error("a world-writable parent passed")
	}
	if !secureForSSHD("/", os.Getuid(), "/nonexistent") {
		t.Error("/ failed")
	}
}

func TestPrivateHome(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("private homes need root")
	}
	f := StartN(t, 2)
	home, _ := os.UserHomeDir()
	if within(f.Dir, home) {
		t.Fatalf("fleet dir %s is inside the isolated home", f.Dir)
	}
	for _, s := range f.Servers {
		c := dial(t, f, s)
		run(t, c, "echo "+s.Name+" > ~/whoami")
		if out := run(t, c, "ls -A ~"); strings.TrimSpace(out) != "whoami" {
			t.Errorf("%s: home holds %q", s.Name, out)
		}
	}
	for _, s := range f.Servers {
		b, err := os.ReadFile(filepath.Join(s.IsolatedDir(home), "whoami"))
		if err != nil || strings.TrimSpace(string(b)) != s.Name {
			t.Errorf("%s: %q %v", s.Name, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(home, "whoami")); err == nil {
		t.Error("a file written to the server's home reached the real home")
	}
}

func TestAuthorizeKey(t *testing.T) {
	f := StartN(t, 1)
	key, _ := GenerateHostKey("ed25519")
	signer, _ := ssh.NewSignerFromKey(key)
	if err := f.AuthorizeKey(signer.PublicKey()); err != nil {
		t.Fatal(err)
	}
	cb, _ := knownhosts.New(f.KnownHostsPath)
	c, err := ssh.Dial("tcp", f.Servers[0].Addr, &ssh.ClientConfig{User: f.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: cb})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
