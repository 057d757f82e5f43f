package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/runner"
	"github.com/davit-deploy/davit/deploy/sshtest"
)

func TestParallelFiveHosts(t *testing.T) {
	f := sshtest.StartN(t, 5)
	d := newDialer(t, testOptions(f))
	pool := deploy.NewPool(d.Connect)
	defer pool.Close()
	var mu sync.Mutex
	seen := map[string]string{}
	// Every host's work waits until all five are connected and running: a
	// runner that ran them one after another never gets past the barrier.
	var arrived sync.WaitGroup
	arrived.Add(len(f.Servers))
	together := make(chan struct{})
	go func() { arrived.Wait(); close(together) }()
	err := runner.Parallel{}.Run(context.Background(), f.Hosts(), func(ctx context.Context, h *deploy.Host) error {
		b, err := pool.Get(ctx, h)
		if err != nil {
			return err
		}
		arrived.Done()
		select {
		case <-together:
		case <-time.After(30 * time.Second):
			return fmt.Errorf("%s: the other hosts never ran at the same time: not parallel", h.Name)
		}
		var out bytes.Buffer
		// SSH_CONNECTION's third field is the address the client reached.
		res, err := b.Run(ctx, &deploy.Command{Args: []string{`echo $SSH_CONNECTION`}}, &out, nil)
		if err != nil {
			return err
		}
		if res.ExitStatus != 0 {
			return fmt.Errorf("exit %d", res.ExitStatus)
		}
		mu.Lock()
		seen[h.Name] = strings.Fields(out.String())[2]
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range f.Servers {
		if seen[s.Name] != s.Host {
			t.Errorf("%s ran on %q, want %s", s.Name, seen[s.Name], s.Host)
		}
	}
}

// span is when one host's work ran, as seen by the runner.
type span struct {
	host       string
	start, end time.Time
}

// recordSpans runs a short command per host under r, recording each host's
// span and the largest number of hosts running at once.
func recordSpans(t *testing.T, r runner.Runner, f *sshtest.Fleet) ([]span, int) {
	t.Helper()
	d := newDialer(t, testOptions(f))
	pool := deploy.NewPool(d.Connect)
	defer pool.Close()
	var mu sync.Mutex
	var spans []span
	var running, peak atomic.Int32
	err := r.Run(context.Background(), f.Hosts(), func(ctx context.Context, h *deploy.Host) error {
		b, err := pool.Get(ctx, h)
		if err != nil {
			return err
		}
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		s := span{host: h.Name, start: time.Now()}
		_, err = b.Run(ctx, &deploy.Command{Args: []string{"sleep", "0.15"}}, nil, nil)
		s.end = time.Now()
		running.Add(-1)
		mu.Lock()
		spans = append(spans, s)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return spans, int(peak.Load())
}

func TestSequenceAndBatches(t *testing.T) {
	f := sshtest.StartN(t, 4)

	spans, peak := recordSpans(t, runner.Sequence{}, f)
	if peak != 1 {
		t.Errorf("sequence ran %d hosts at once", peak)
	}
	for i, s := range spans {
		if s.host != f.Servers[i].Name {
			t.Errorf("sequence step %d ran %s, want %s", i, s.host, f.Servers[i].Name)
		}
		if i > 0 && s.start.Before(spans[i-1].end) {
			t.Errorf("%s started before %s ended", s.host, spans[i-1].host)
		}
	}

	spans, peak = recordSpans(t, runner.Batches{Size: 2}, f)
	if peak != 2 {
		t.Errorf("batches of 2 ran %d hosts at once", peak)
	}
	batch := map[string]int{"host1": 0, "host2": 0, "host3": 1, "host4": 1}
	var firstEnd, secondStart time.Time
	for _, s := range spans {
		if batch[s.host] == 0 && s.end.After(firstEnd) {
			firstEnd = s.end
		}
		if batch[s.host] == 1 && (secondStart.IsZero() || s.start.Before(secondStart)) {
			secondStart = s.start
		}
	}
	if secondStart.Before(firstEnd) {
		t.Errorf("second batch started %s before the first ended", firstEnd.Sub(secondStart))
	}
}

// TestManyCommandsOneConnection runs more commands at once than sshd's
// MaxSessions allows on one connection: the extra ones must wait for a
// session, not fail, and all of them share the one connection.
func TestManyCommandsOneConnection(t *testing.T) {
	f, b := fleetBackend(t, sshtest.Options{}, nil)
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	outs := make([]string, n)
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			var out bytes.Buffer
			res, err := b.Run(context.Background(), &deploy.Command{Args: []string{"sleep 0.2; echo " + strconv.Itoa(i)}}, &out, nil)
			if err == nil && res.ExitStatus != 0 {
				err = fmt.Errorf("exit %d", res.ExitStatus)
			}
			errs[i], outs[i] = err, strings.TrimSpace(out.String())
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || outs[i] != strconv.Itoa(i) {
			t.Errorf("command %d: %q %v", i, outs[i], errs[i])
		}
	}
	// 20 commands, 10 at a time: at least two rounds of 0.2 s.
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Errorf("20 commands took only %s: more than 10 sessions ran at once", el)
	}
	if logins := strings.Count(f.Servers[0].Log(), "Accepted publickey"); logins != 1 {
		t.Errorf("%d logins, want 1 connection for all commands", logins)
	}
}

// TestServerBelowMaxSessions: a server configured with fewer sessions than
// ours refuses the extra channels; they wait for one to end instead.
func TestServerBelowMaxSessions(t *testing.T) {
	_, b := fleetBackend(t, sshtest.Options{SSHDConfig: []string{"MaxSessions 2"}}, nil)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 6 {
		wg.Go(func() {
			res, err := b.Run(context.Background(), &deploy.Command{Args: []string{"sleep 0.1"}}, nil, nil)
			if err != nil || res.ExitStatus != 0 {
				t.Errorf("%v %v", res, err)
				failed.Add(1)
			}
		})
	}
	wg.Wait()
}

func TestFailingCommand(t *testing.T) {
	_, b := fleetBackend(t, sshtest.Options{}, nil)
	var out, errb bytes.Buffer
	res, err := b.Run(context.Background(), &deploy.Command{Args: []string{"echo out; echo err >&2; exit 3"}}, &out, &errb)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitStatus != 3 || strings.TrimSpace(out.String()) != "out" || strings.TrimSpace(errb.String()) != "err" {
		t.Errorf("status %d, stdout %q, stderr %q", res.ExitStatus, out.String(), errb.String())
	}
	res, err = b.Run(context.Background(), &deploy.Command{Args: []string{"kill -9 $$"}}, nil, nil)
	if err != nil || res.ExitStatus != 128+9 {
		t.Errorf("killed command: %+v %v", res, err)
	}
	if _, err := b.Run(context.Background(), &deploy.Command{}, nil, nil); err == nil || !strings.Contains(err.Error(), "host1") {
		t.Errorf("empty command: %v", err)
	}
}

func TestDirEnvStdinPTY(t *testing.T) {
	_, b := fleetBackend(t, sshtest.Options{}, nil)
	dir := "/tmp/davit ssh test " + strconv.Itoa(time.Now().Nanosecond())
	output(t, b, "mkdir -p "+deploy.Quote(dir))
	t.Cleanup(func() { output(t, b, "rm -rf "+deploy.Quote(dir)) })

	env := map[string]string{"A": `it's "quoted"`, "B": "two  spaces $HOME `x` \\n"}
	var out bytes.Buffer
	res, err := b.Run(context.Background(), &deploy.Command{
		Args: []string{"sh", "-c", `pwd; printf '%s|%s\n' "$A" "$B"`},
		Dir:  dir,
		Env:  env,
	}, &out, nil)
	if err != nil || res.ExitStatus != 0 {
		t.Fatalf("%v %v", res, err)
	}
	want := dir + "\n" + env["A"] + "|" + env["B"] + "\n"
	if out.String() != want {
		t.Errorf("got %q\nwant %q", out.String(), want)
	}

	out.Reset()
	res, err = b.Run(context.Background(), &deploy.Command{Args: []string{"cat"}, Stdin: strings.NewReader("from stdin")}, &out, nil)
	if err != nil || out.String() != "from stdin" {
		t.Errorf("stdin: %q %v %v", out.String(), res, err)
	}

	if got := output(t, b, "tty || true"); got != "not a tty" {
		t.Errorf("without PTY: tty says %q", got)
	}
	out.Reset()
	res, err = b.Run(context.Background(), &deploy.Command{Args: []string{"tty"}, PTY: true}, &out, nil)
	if err != nil || res.ExitStatus != 0 || !strings.HasPrefix(out.String(), "/dev/pts/") {
		t.Errorf("with PTY: %q %v %v", out.String(), res, err)
	}
}

func TestSudoUser(t *testing.T) {
	if _, err := exec.LookPath("sudo"); err != nil {
		if CI() {
			t.Fatal("sudo is not installed (apt-get install sudo)")
		}
		t.Skip("sudo is not installed; apt-get install sudo to run this test")
	}
	_, b := fleetBackend(t, sshtest.Options{}, nil)
	var out, errb bytes.Buffer
	res, err := b.Run(context.Background(), &deploy.Command{
		Args: []string{"sh", "-c", `id -un; pwd; echo "$GREETING"`},
		Dir:  "/usr/share",
		Env:  map[string]string{"GREETING": "hello 'nobody'"},
		User: "nobody",
	}, &out, &errb)
	if err != nil || res.ExitStatus != 0 {
		t.Fatalf("%v %v: %s", res, err, errb.String())
	}
	if got := out.String(); got != "nobody\n/usr/share\nhello 'nobody'\n" {
		t.Errorf("got %q", got)
	}
}

// CI reports whether the tests run in CI, where skipping is failing.
func CI() bool { return os.Getenv("CI") == "true" }

func TestTimeout(t *testing.T) {
	_, b := fleetBackend(t, sshtest.Options{}, nil)
	start := time.Now()
	res, err := b.Run(context.Background(), &deploy.Command{Args: []string{"sleep 31.25"}, Timeout: 200 * time.Millisecond}, nil, nil)
	var te *deploy.TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, deploy.ErrTimeout) || te.Timeout != 200*time.Millisecond {
		t.Fatalf("got %v, %v", res, err)
	}
	if !strings.Contains(err.Error(), "host1") {
		t.Errorf("error does not name the host: %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("timeout returned after %s", el)
	}
	waitGone(t, b, "sleep 31.25")
}

func TestCancel(t *testing.T) {
	_, b := fleetBackend(t, sshtest.Options{}, func(o *Options) { o.KillGrace = 300 * time.Millisecond })
	for _, tc := range []struct{ line, proc string }{
		{"sleep 32.5", "sleep 32.5"},
		// A command that ignores SIGTERM is killed after KillGrace.
		{"trap '' TERM; sleep 33.5; sleep 1", "sleep 33.5"},
	} {
		line := tc.line
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		start := time.Now()
		_, err := b.Run(ctx, &deploy.Command{Args: []string{line}}, nil, nil)
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "host1") {
			t.Fatalf("%s: got %v", line, err)
		}
		if el := time.Since(start); el > 1500*time.Millisecond {
			t.Errorf("%s: cancel returned after %s", line, el)
		}
		waitGone(t, b, tc.proc)
	}
	// A context cancelled while waiting for a session returns too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Run(ctx, &deploy.Command{Args: []string{"true"}}, nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// waitGone checks that no process runs `sleep ARG` on the server.
func waitGone(t *testing.T, b *Backend, pattern string) {
	t.Helper()
	var out string
	for range 50 {
		out = output(t, b, "pgrep -f "+deploy.Quote("^"+pattern)+" || true")
		if out == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("%q still running on the server: pids %s", pattern, out)
}

func TestConnectionLost(t *testing.T) {
	f, b := fleetBackend(t, sshtest.Options{}, nil)
	done := make(chan error, 1)
	go func() {
		_, err := b.Run(context.Background(), &deploy.Command{Args: []string{"sleep 10"}}, nil, nil)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	f.Servers[0].Stop()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "host1") || !strings.Contains(err.Error(), "connection lost") {
			t.Errorf("got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not notice the server going away")
	}
	if _, err := b.Run(context.Background(), &deploy.Command{Args: []string{"true"}}, nil, nil); err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Errorf("after loss: %v", err)
	}
}

// TestKeepAliveDetectsHungServer freezes the server: the TCP connection
// stays up but nothing answers, which only keepalives can tell.
func TestKeepAliveDetectsHungServer(t *testing.T) {
	f, b := fleetBackend(t, sshtest.Options{}, func(o *Options) {
		o.KeepAlive = 100 * time.Millisecond
		o.KeepAliveCountMax = 2
	})
	output(t, b, "true")
	f.Servers[0].Freeze()
	defer f.Servers[0].Resume()
	start := time.Now()
	_, err := b.Run(context.Background(), &deploy.Command{Args: []string{"true"}}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "keepalive") || !strings.Contains(err.Error(), "host1") {
		t.Fatalf("got %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("dead connection noticed after %s", el)
	}
}

func TestCloseTwice(t *testing.T) {
	_, b := fleetBackend(t, sshtest.Options{}, nil)
	output(t, b, "true")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := b.Run(context.Background(), &deploy.Command{Args: []string{"true"}}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "host1") {
		t.Errorf("run after close: %v", err)
	}
}

// TestConnectTimeout: a server that accepts TCP but never answers (paused)
// fails the connection within ConnectTimeout, naming the host.
func TestConnectTimeout(t *testing.T) {
	f := sshtest.StartN(t, 1)
	f.Servers[0].Freeze()
	defer f.Servers[0].Resume()
	o := testOptions(f)
	o.ConnectTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err := newDialer(t, o).Connect(context.Background(), f.Servers[0].DeployHost())
	if err == nil || !strings.Contains(err.Error(), "timed out") || !strings.Contains(err.Error(), "host1") {
		t.Fatalf("got %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %s", el)
	}
	// Cancelling the context ends a connection attempt too.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	o.ConnectTimeout = time.Minute
	if _, err := newDialer(t, o).Connect(ctx, f.Servers[0].DeployHost()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}
