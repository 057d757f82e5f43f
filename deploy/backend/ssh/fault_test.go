package ssh

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/output/outputtest"
	"github.com/davit-deploy/davit/deploy/sshtest"
)

// The bounds below are what the code promises; the tests allow generous
// slack on top and only check that a call returns at all within it, never
// how fast.
const slack = 10 * time.Second

// freeze freezes the server and has it resumed when the test ends, before
// the backend's own cleanup closes it: a regression then fails the test
// instead of hanging it in Close.
func freeze(t *testing.T, s *sshtest.Server) {
	t.Helper()
	s.Freeze()
	t.Cleanup(s.Resume)
}

// within runs fn and fails the test if it has not returned after bound.
// fn keeps running in the background then (the test is lost anyway).
func within(t *testing.T, bound time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(bound):
		t.Fatalf("%s did not return within %s", what, bound)
	}
}

// startRun runs line on b in the background and waits for its first line
// of output, so the command is known to be running on the host.
func startRun(t *testing.T, ctx context.Context, b *Backend, line string) <-chan error {
	t.Helper()
	out := &outputtest.Buffer{}
	done := make(chan error, 1)
	go func() {
		_, err := b.Run(ctx, &deploy.Command{Args: []string{line}}, out, nil)
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "started"); time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("%s ended early: %v", line, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no output", line)
		}
	}
	return done
}

// TestCancelOnFrozenHost is Ctrl-C during a command on a host whose sshd
// froze: the signal requests that stop the command are never answered.
// Run must give up within the answer bound (keepalives are off, so nothing
// else would end the wait), abandon the connection and say what may still
// be running; Close must return too, SFTP client and all.
func TestCancelOnFrozenHost(t *testing.T) {
	f, b := fleetBackend(t, sshtest.Options{}, func(o *Options) { o.KeepAlive = -1 })
	// An SFTP client is open, as after any upload.
	if err := b.Upload(context.Background(), strings.NewReader("x"), "/tmp/davit-frozen-upload", 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := startRun(t, ctx, b, "echo started; sleep 300")
	freeze(t, f.Servers[0])
	cancel()
	var err error
	within(t, DefaultAnswerTimeout+slack, "Run on a frozen host after cancel", func() { err = <-done })
	var na *NoAnswerError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &na) {
		t.Fatalf("got %v, want context.Canceled and a *NoAnswerError", err)
	}
	for _, want := range []string{"host1", "did not answer", markerVar + "=", "may still be running"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	within(t, slack, "Close of a frozen host's backend", func() { b.Close() })
	// The connection is gone for good, saying why.
	_, err = b.Run(context.Background(), &deploy.Command{Args: []string{"true"}}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("after abandoning: %v", err)
	}
}

// TestCloseFrozenHost closes an idle backend with an SFTP client open on a
// frozen host: closing the SFTP client first would wait for the server.
func TestCloseFrozenHost(t *testing.T) {
	f, b := fleetBackend(t, sshtest.Options{}, func(o *Options) { o.KeepAlive = -1 })
	var out bytes.Buffer
	if err := b.Download(context.Background(), "/etc/hostname", &out); err != nil {
		t.Fatal(err)
	}
	freeze(t, f.Servers[0])
	within(t, slack, "Close of a frozen host's backend", func() { b.Close() })
}

// TestCancelUploadOnFrozenHost cancels an SFTP upload in flight to a host
// that froze: the SFTP client waits for replies that never come.
func TestCancelUploadOnFrozenHost(t *testing.T) {
	f, b := fleetBackend(t, sshtest.Options{}, func(o *Options) {
		o.KeepAlive = -1
		o.AnswerTimeout = time.Second
	})
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Upload(ctx, pr, "/tmp/davit-frozen-upload", 0o600) }()
	// The first chunk arrives on the host: the upload is under way.
	if _, err := pw.Write(bytes.Repeat([]byte("x"), 64<<10)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	freeze(t, f.Servers[0])
	// More data goes out (into the socket's buffers) and waits for replies.
	go pw.Write(bytes.Repeat([]byte("y"), 256<<10))
	time.Sleep(200 * time.Millisecond)
	cancel()
	var err error
	within(t, time.Second+slack, "Upload to a frozen host after cancel", func() { err = <-done })
	var na *NoAnswerError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &na) || !strings.Contains(err.Error(), "host1") || !strings.Contains(err.Error(), "temporary file") {
		t.Fatalf("got %v", err)
	}
	within(t, slack, "Close", func() { b.Close() })
}

// TestKeepAliveFrozenWhileRunning: keepalives (1 s × 2, from ssh_config)
// find a host that froze under a running command, and the command fails
// naming the host, with no context ending.
func TestKeepAliveFrozenWhileRunning(t *testing.T) {
	f := sshtest.StartN(t, 1)
	b := keepAliveBackend(t, f, 1, 2)
	done := startRun(t, context.Background(), b, "echo started; sleep 300")
	freeze(t, f.Servers[0])
	var err error
	within(t, 3*time.Second+slack, "Run on a host that froze", func() { err = <-done })
	var na *NoAnswerError
	if !errors.As(err, &na) || !strings.Contains(err.Error(), "host1") || !strings.Contains(err.Error(), "stopped answering keepalives") {
		t.Fatalf("got %v", err)
	}
	within(t, slack, "Close", func() { b.Close() })
}

// TestKeepAliveFrozenWhileIdle: an idle connection to a host that froze is
// found dead without anything being run on it, and the next command fails
// at once saying why.
func TestKeepAliveFrozenWhileIdle(t *testing.T) {
	f := sshtest.StartN(t, 1)
	b := keepAliveBackend(t, f, 1, 2)
	output(t, b, "true")
	freeze(t, f.Servers[0])
	within(t, 3*time.Second+slack, "keepalives to notice the frozen host", func() { <-b.conn.done })
	_, err := b.Run(context.Background(), &deploy.Command{Args: []string{"true"}}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "host1") || !strings.Contains(err.Error(), "stopped answering keepalives") {
		t.Fatalf("got %v", err)
	}
}

// keepAliveBackend connects to f's first server by its alias through an
// ssh_config that sets ServerAliveInterval and ServerAliveCountMax.
func keepAliveBackend(t *testing.T, f *sshtest.Fleet, interval, countMax int) *Backend {
	t.Helper()
	fleetCfg, err := os.ReadFile(f.SSHConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "ssh_config")
	writeFile(t, cfg, "Host host1\n  ServerAliveInterval "+strconv.Itoa(interval)+"\n  ServerAliveCountMax "+strconv.Itoa(countMax)+"\n\n"+string(fleetCfg))
	o := testOptions(f)
	o.ConfigFile = cfg
	d := newDialer(t, o)
	return connect(t, d, f.Servers[0].AliasHost())
}

// TestConnectSilentServer: a host that accepts TCP and never sends its
// banner fails the connection within ConnectTimeout, naming the host.
func TestConnectSilentServer(t *testing.T) {
	s := sshtest.StartSilent(t)
	f := sshtest.StartN(t, 1) // for the client key and known_hosts
	o := testOptions(f)
	o.ConnectTimeout = 500 * time.Millisecond
	var err error
	within(t, o.ConnectTimeout+slack, "Connect to a silent server", func() {
		_, err = newDialer(t, o).Connect(context.Background(), s.DeployHost())
	})
	if err == nil || !strings.Contains(err.Error(), "silent") || !strings.Contains(err.Error(), s.Addr) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("got %v", err)
	}
	if s.Accepted() == 0 {
		t.Error("the silent server saw no connection")
	}
}

// TestKilledMidUpload: sshd killed while an upload streams fails the
// upload naming the host and saying the connection was lost.
func TestKilledMidUpload(t *testing.T) {
	f, b := fleetBackend(t, sshtest.Options{}, func(o *Options) { o.KeepAlive = -1 })
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan error, 1)
	go func() { done <- b.Upload(context.Background(), pr, "/tmp/davit-killed-upload", 0o600) }()
	if _, err := pw.Write(bytes.Repeat([]byte("x"), 64<<10)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	f.Servers[0].Stop()
	go pw.Write(bytes.Repeat([]byte("y"), 64<<10))
	var err error
	within(t, slack, "Upload to a killed host", func() { err = <-done })
	if err == nil || !strings.Contains(err.Error(), "host1") || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("got %v", err)
	}
}

func TestGateDropsLateWrites(t *testing.T) {
	var buf bytes.Buffer
	g := &gate{}
	w := g.writer(&buf)
	w.Write([]byte("early "))
	g.close()
	if n, err := w.Write([]byte("late")); n != 4 || err != nil {
		t.Errorf("late write: %d, %v", n, err)
	}
	if buf.String() != "early " {
		t.Errorf("buffer holds %q", buf.String())
	}
	if g.writer(nil) != nil {
		t.Error("a nil writer was wrapped")
	}
}
