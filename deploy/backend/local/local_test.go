package local

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
)

var _ deploy.Backend = (*Backend)(nil)

func run(t *testing.T, b *Backend, c *deploy.Command) (string, string, *deploy.Result, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	res, err := b.Run(context.Background(), c, &out, &errOut)
	return out.String(), errOut.String(), res, err
}

func TestRunExitStatusAndStreams(t *testing.T) {
	b := New(t.TempDir())
	out, errOut, res, err := run(t, b, &deploy.Command{Args: []string{"echo out; echo err >&2; exit 3"}})
	if err != nil || res.ExitStatus != 3 {
		t.Fatalf("Run = %+v, %v; want exit 3 and no error", res, err)
	}
	if out != "out\n" || errOut != "err\n" {
		t.Errorf("stdout %q, stderr %q", out, errOut)
	}
	if res.Duration <= 0 {
		t.Errorf("duration %v", res.Duration)
	}
	_, _, res, err = run(t, b, &deploy.Command{Args: []string{"true"}})
	if err != nil || res.ExitStatus != 0 {
		t.Errorf("true: %+v, %v", res, err)
	}
	// Killed by a signal: the shell convention, 128+signal.
	_, _, res, err = run(t, b, &deploy.Command{Args: []string{"kill -KILL $$"}})
	if err != nil || res.ExitStatus != 137 {
		t.Errorf("killed: %+v, %v; want exit 137", res, err)
	}
	_, _, _, err = run(t, b, &deploy.Command{Args: []string{"a\x00"}})
	if err == nil {
		t.Error("invalid command ran")
	}
}

func TestRunDirEnvUmaskStdin(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "sub dir"), 0o755)
	b := New(root)
	c := &deploy.Command{
		Args:  []string{`pwd; printf '%s\n' "$GREETING"; umask; touch made; stat -c %a made; cat`},
		Dir:   "sub dir", // relative to the backend's Dir
		Env:   map[string]string{"GREETING": "it's \"quoted\" $HOME"},
		Umask: "077",
		Stdin: strings.NewReader("from stdin\n"),
	}
	out, errOut, res, err := run(t, b, c)
	if err != nil || res.ExitStatus != 0 {
		t.Fatalf("Run = %+v, %v (%s)", res, err, errOut)
	}
	want := filepath.Join(root, "sub dir") + "\nit's \"quoted\" $HOME\n0077\n600\nfrom stdin\n"
	if out != want {
		t.Errorf("stdout\n%q\nwant\n%q", out, want)
	}
	// Without Dir on either, the current directory.
	wd, _ := os.Getwd()
	if out, _, _, _ := run(t, New(""), &deploy.Command{Args: []string{"pwd"}}); out != wd+"\n" {
		t.Errorf("pwd = %q, want %q", out, wd)
	}
	// A missing directory fails the command, and it does not run.
	_, _, res, err = run(t, b, &deploy.Command{Args: []string{"touch ran"}, Dir: "missing"})
	if err != nil || res.ExitStatus == 0 {
		t.Errorf("missing dir: %+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(root, "ran")); err == nil {
		t.Error("command ran although cd failed")
	}
}

// alive reports whether pid is a live process, not a zombie: in a container
// nothing may reap the orphans a killed shell leaves.
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

func waitDead(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	for range 200 {
		data, _ := os.ReadFile(path)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no pid written")
	return 0
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	b := New(dir)
	start := time.Now()
	// A background child that would outlive a kill of the shell alone.
	_, _, res, err := run(t, b, &deploy.Command{
		Args:    []string{"sleep 30 & echo $! > child.pid; sleep 30"},
		Timeout: 300 * time.Millisecond,
	})
	var te *deploy.TimeoutError
	if !errors.Is(err, deploy.ErrTimeout) || !errors.As(err, &te) || te.Timeout != 300*time.Millisecond {
		t.Fatalf("error %v, want a TimeoutError of 300ms", err)
	}
	if err.Error() != "command timed out after 300ms" {
		t.Errorf("message %q", err)
	}
	if res == nil || res.ExitStatus != -1 {
		t.Errorf("result %+v, want exit -1", res)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v to time out", d)
	}
	waitDead(t, readPID(t, filepath.Join(dir, "child.pid")))
}

func TestTimeoutEscalatesToKill(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 2s grace period")
	}
	dir := t.TempDir()
	start := time.Now()
	// Ignored signals stay ignored across exec: neither the shell nor sleep
	// stops on SIGTERM, so only SIGKILL ends them.
	_, _, _, err := run(t, New(dir), &deploy.Command{
		Args:    []string{"trap '' TERM; sleep 30 & echo $! > child.pid; sleep 30"},
		Timeout: 100 * time.Millisecond,
	})
	if !errors.Is(err, deploy.ErrTimeout) {
		t.Fatalf("error %v", err)
	}
	if d := time.Since(start); d < 2*time.Second || d > 5*time.Second {
		t.Errorf("took %v, want the 2s grace then SIGKILL", d)
	}
	waitDead(t, readPID(t, filepath.Join(dir, "child.pid")))
}

func TestCancel(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	res, err := New(dir).Run(ctx, &deploy.Command{Args: []string{"sleep 30 & echo $! > child.pid; wait"}}, io.Discard, io.Discard)
	if !errors.Is(err, context.Canceled) || errors.Is(err, deploy.ErrTimeout) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if res.ExitStatus != -1 || time.Since(start) > 2*time.Second {
		t.Errorf("result %+v after %v", res, time.Since(start))
	}
	waitDead(t, readPID(t, filepath.Join(dir, "child.pid")))

	// The run's own deadline is not the command's timeout.
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = New(dir).Run(ctx, &deploy.Command{Args: []string{"sleep 30"}, Timeout: time.Minute}, io.Discard, io.Discard)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, deploy.ErrTimeout) {
		t.Errorf("error %v, want the context's DeadlineExceeded", err)
	}
}

func TestCancelledBeforeRun(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 200 {
		_, err := New(dir).Run(ctx, &deploy.Command{Args: []string{"touch ran"}}, io.Discard, io.Discard)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("a command ran under a cancelled context")
	}
}

func TestConcurrentRuns(t *testing.T) {
	b := New(t.TempDir())
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			var out bytes.Buffer
			res, err := b.Run(context.Background(), &deploy.Command{Args: []string{"echo", strconv.Itoa(i)}}, &out, io.Discard)
			if err != nil || res.ExitStatus != 0 || out.String() != strconv.Itoa(i)+"\n" {
				t.Errorf("run %d: %q %+v %v", i, out.String(), res, err)
			}
		})
	}
	wg.Wait()
}

// gatedReader returns its first part, then blocks until released.
type gatedReader struct {
	first, rest string
	reading     chan struct{}
	release     chan struct{}
	state       int
}

func (g *gatedReader) Read(p []byte) (int, error) {
	switch g.state {
	case 0:
		g.state++
		return copy(p, g.first), nil
	case 1:
		g.state++
		close(g.reading)
		<-g.release
		return copy(p, g.rest), nil
	}
	return 0, io.EOF
}

func TestUploadAtomicWithMode(t *testing.T) {
	dir := t.TempDir()
	b := New(dir)
	dst := filepath.Join(dir, "config.yml")
	os.WriteFile(dst, []byte("old"), 0o644)

	g := &gatedReader{first: "new ", rest: "content", reading: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error)
	go func() { done <- b.Upload(context.Background(), g, "config.yml", 0o640) }()
	<-g.reading
	// Half-way: readers still see the whole old file.
	if data, _ := os.ReadFile(dst); string(data) != "old" {
		t.Errorf("mid-upload content %q", data)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(dst)
	fi, _ := os.Stat(dst)
	if string(data) != "new content" || fi.Mode().Perm() != 0o640 {
		t.Errorf("after upload: %q mode %v", data, fi.Mode())
	}
	checkNoTemp(t, dir)

	// An absolute path ignores Dir; the mode is exact, not masked by umask.
	abs := filepath.Join(t.TempDir(), "bin")
	if err := New("/nonexistent").Upload(context.Background(), strings.NewReader("#!/bin/sh\n"), abs, 0o777); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(abs); fi.Mode().Perm() != 0o777 {
		t.Errorf("mode %v, want 0777", fi.Mode())
	}
}

func TestUploadFailures(t *testing.T) {
	dir := t.TempDir()
	b := New(dir)
	dst := filepath.Join(dir, "f")
	os.WriteFile(dst, []byte("keep"), 0o644)

	if err := b.Upload(context.Background(), io.MultiReader(strings.NewReader("part"), errReader{}), "f", 0o644); err == nil {
		t.Error("failing reader: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Upload(ctx, strings.NewReader("x"), "f", 0o644); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled upload: %v", err)
	}
	if data, _ := os.ReadFile(dst); string(data) != "keep" {
		t.Errorf("failed uploads changed the file: %q", data)
	}
	if err := b.Upload(context.Background(), strings.NewReader("x"), "missing/f", 0o644); err == nil {
		t.Error("upload into a missing directory: no error")
	}
	os.Mkdir(filepath.Join(dir, "adir"), 0o755)
	os.WriteFile(filepath.Join(dir, "adir", "x"), nil, 0o644)
	if err := b.Upload(context.Background(), strings.NewReader("x"), "adir", 0o644); err == nil {
		t.Error("upload over a directory: no error")
	}
	checkNoTemp(t, dir)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func checkNoTemp(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".davit-upload-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestDownload(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "REVISION"), []byte("abc123\n"), 0o644)
	b := New(dir)
	var w bytes.Buffer
	if err := b.Download(context.Background(), "REVISION", &w); err != nil || w.String() != "abc123\n" {
		t.Errorf("Download = %q, %v", w.String(), err)
	}
	w.Reset()
	if err := New("").Download(context.Background(), filepath.Join(dir, "REVISION"), &w); err != nil || w.String() != "abc123\n" {
		t.Errorf("absolute Download = %q, %v", w.String(), err)
	}
	if err := b.Download(context.Background(), "missing", &w); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Download(ctx, "REVISION", io.Discard); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled download: %v", err)
	}
	if err := b.Close(); err != nil || b.Close() != nil {
		t.Error("Close")
	}
}

// testUser returns an unprivileged account to run as, creating it when the
// test runs as root (as CI does); elsewhere the test is skipped, since only
// root can sudo to another user without a password.
func testUser(t *testing.T) *user.User {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs the tests as root; this one needs root to sudo to another user")
		}
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("sudo"); err != nil {
		t.Fatalf("sudo: %v", err)
	}
	const name = "davit-local-test"
	if u, err := user.Lookup(name); err == nil {
		return u
	}
	home := filepath.Join(os.TempDir(), name+"-home")
	if out, err := exec.Command("useradd", "-d", home, "-m", "-s", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestForHostRunsAsTheHostsUser(t *testing.T) {
	u := testUser(t)
	b, err := ForHost(&deploy.Host{Name: "localhost", User: u.Username})
	if err != nil {
		t.Fatal(err)
	}
	if b.User != u.Username || b.Dir != u.HomeDir {
		t.Fatalf("ForHost = %+v; want user %s in %s", b, u.Username, u.HomeDir)
	}
	out, errOut, res, err := run(t, b, &deploy.Command{Args: []string{"id -un; pwd"}})
	if err != nil || res.ExitStatus != 0 {
		t.Fatalf("run: %v %+v %s", err, res, errOut)
	}
	if want := u.Username + "\n" + u.HomeDir + "\n"; out != want {
		t.Errorf("ran as/in %q; want %q", out, want)
	}
	// A command naming its own user keeps it.
	out, _, _, err = run(t, b, &deploy.Command{Args: []string{"id -un"}, User: "root"})
	if err != nil || out != "root\n" {
		t.Errorf("explicit user: %q, %v", out, err)
	}

	// Files travel as the user too: owned by it, with the mode asked for.
	dir := filepath.Join(u.HomeDir, "uploads")
	if _, _, _, err := run(t, b, &deploy.Command{Args: []string{"mkdir", "-p", dir}}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "it's a file")
	if err := b.Upload(context.Background(), strings.NewReader("hello"), dst, 0o640); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if uid := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)); uid != u.Uid || fi.Mode().Perm() != 0o640 {
		t.Errorf("uploaded file uid %s mode %v; want %s and 0640", uid, fi.Mode().Perm(), u.Uid)
	}
	var got bytes.Buffer
	if err := b.Download(context.Background(), dst, &got); err != nil || got.String() != "hello" {
		t.Errorf("download = %q, %v", got.String(), err)
	}
	// The user cannot write where it has no right: the error says so.
	if err := b.Upload(context.Background(), strings.NewReader("x"), "/root/davit-denied", 0o644); err == nil || !strings.Contains(err.Error(), "as "+u.Username) {
		t.Errorf("upload to /root as %s = %v; want a refusal naming the user", u.Username, err)
	}
}

func TestForHostCurrentUserNeedsNoSudo(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	b, err := ForHost(&deploy.Host{Name: "localhost", User: me.Username})
	if err != nil || b.User != "" || b.Dir != me.HomeDir {
		t.Fatalf("ForHost(current user) = %+v, %v; want no user, home %s", b, err, me.HomeDir)
	}
	if _, err := ForHost(&deploy.Host{Name: "localhost", User: "no-such-user-davit"}); err == nil || !strings.Contains(err.Error(), "no-such-user-davit") {
		t.Errorf("unknown user: %v", err)
	}
}
