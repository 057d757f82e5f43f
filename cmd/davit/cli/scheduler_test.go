package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy/output/outputtest"
	"github.com/davit-deploy/davit/tasks/deployfile"
)

// schedules loads a Deployfile of schedule() calls for task "t".
func schedules(t *testing.T, calls ...string) []*deployfile.Schedule {
	t.Helper()
	dir := t.TempDir()
	src := "task(\"t\", lambda: None)\n" + strings.Join(calls, "\n") + "\n"
	path := filepath.Join(dir, "Deployfile")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := deployfile.Load(context.Background(), path, deployfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Schedules()
}

var monday = time.Date(2024, 3, 4, 0, 0, 0, 0, time.UTC)

func at(h, m int) time.Time {
	return monday.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

func TestSchedPlanOrderAndSkipping(t *testing.T) {
	es := schedules(t,
		`schedule("*/10 * * * *", "t", tz = "UTC")`,
		`schedule("*/5 * * * *", "t", tz = "UTC")`,
		`schedule("0 8 * * 1-5", "t", tz = "UTC")`)
	p := newSchedPlan(es, at(7, 52))
	if w, _ := p.wake(); !w.Equal(at(7, 55)) {
		t.Fatalf("wake %s", w)
	}
	step := func(now time.Time, wantFire, wantSkip []int) {
		t.Helper()
		fire, skip := p.due(now)
		if !reflect.DeepEqual(fire, wantFire) || !reflect.DeepEqual(skip, wantSkip) {
			t.Fatalf("%s: fire %v skip %v, want %v %v", now.Format("15:04"), fire, skip, wantFire, wantSkip)
		}
	}
	step(at(7, 55), []int{1}, nil)
	// 08:00: all three are due, in declaration order; the every-5 one
	// still runs from 07:55 and is skipped.
	step(at(8, 0), []int{0, 2}, []int{1})
	p.finished(1)
	p.finished(0)
	if w, _ := p.wake(); !w.Equal(at(8, 5)) {
		t.Fatalf("wake %s", w)
	}
	step(at(8, 5), []int{1}, nil)
	p.finished(1)
	// Woken late (a suspended laptop): each due schedule fires once and
	// moves on to its first time after now.
	step(at(9, 13), []int{0, 1}, nil)
	if !p.next[0].Equal(at(9, 20)) || !p.next[1].Equal(at(9, 15)) || !p.next[2].Equal(at(32, 0)) {
		t.Fatalf("next %v", p.next)
	}
}

// fakeClock hands each timer the scheduler asks for to the test, which
// decides when it fires.
type fakeClock struct {
	now  time.Time
	reqs chan fakeTimer
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func (f *fakeClock) Now() time.Time { return f.now }
func (f *fakeClock) Timer(d time.Duration) (<-chan time.Time, func()) {
	tm := fakeTimer{at: f.now.Add(d), c: make(chan time.Time, 1)}
	f.reqs <- tm
	return tm.c, func() {}
}

func TestRunSchedulerWithFakeClock(t *testing.T) {
	es := schedules(t, `schedule("*/5 * * * *", "t", tz = "UTC", n = "a")`, `schedule("*/10 * * * *", "t", tz = "UTC", n = "b")`)
	clk := &fakeClock{now: at(8, 1), reqs: make(chan fakeTimer, 100)}
	events := make(chan string, 100)
	release := make(chan struct{})
	fire := func(ctx context.Context, e *deployfile.Schedule, when time.Time) {
		name := e.Vars["n"] + "@" + when.Format("15:04")
		events <- "fire " + name
		if name == "a@08:05" {
			// A long firing: it outlasts 08:10.
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		events <- "end " + name
	}
	skipped := func(e *deployfile.Schedule, when time.Time) {
		events <- "skip " + e.Vars["n"] + "@" + when.Format("15:04")
	}
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- runScheduler(ctx, newSchedPlan(es, clk.now), clk, fire, skipped) }()

	tick := func(want time.Time) {
		t.Helper()
		tm := <-clk.reqs
		if !tm.at.Equal(want) {
			t.Fatalf("timer for %s, want %s", tm.at.Format("15:04"), want.Format("15:04"))
		}
		clk.now = tm.at
		tm.c <- tm.at
	}
	expect := func(want ...string) {
		t.Helper()
		got := map[string]bool{}
		for range want {
			select {
			case e := <-events:
				got[e] = true
			case <-time.After(5 * time.Second):
				t.Fatalf("waiting for %v, got %v", want, got)
			}
		}
		for _, w := range want {
			if !got[w] {
				t.Fatalf("want %v, got %v", want, got)
			}
		}
	}
	tick(at(8, 5))
	expect("fire a@08:05")
	tick(at(8, 10))
	expect("skip a@08:10", "fire b@08:10", "end b@08:10")
	// The loop asks for 08:15, takes b's end and asks again; a still runs.
	<-clk.reqs
	<-clk.reqs
	close(release)
	expect("end a@08:05")
	// After a's end, a fresh timer: a fires again at 08:15.
	tick(at(8, 15))
	expect("fire a@08:15", "end a@08:15")

	cancel()
	select {
	case err := <-result:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("runScheduler did not return after cancel")
	}
}

// davit STAGE scheduler in a real process: firings with their own output,
// a firing still running at its next time skipped and said so, and
// SIGTERM lets the running firing end before a clean exit.
func TestSchedulerProcess(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "fired")
	deployfile := fmt.Sprintf(`
def nap(ctx):
    run_locally(lambda h: h.execute("echo nap " + fetch("word") + " >> %s; sleep 1.6"))
task("nap", nap)
def production():
    schedule("@every 1s", "nap", word = "hello")
stage("production", production)
`, marker)
	if err := os.WriteFile(filepath.Join(dir, "Deployfile"), []byte(deployfile), 0o644); err != nil {
		t.Fatal(err)
	}
	// The process writes while the test reads: a locked buffer.
	out := &outputtest.Buffer{}
	cmd := exec.Command(os.Args[0], "--format", "plain", "production", "scheduler")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DAVIT_TEST_AS_MAIN=1", "NO_COLOR=1")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	// The first firing (1.6 s) outlasts the next second: skipped. Signal
	// while the one after it runs.
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := out.String()
		if strings.Contains(s, "skipping nap word=hello") && strings.Contains(s, "finished in") &&
			strings.Count(s, "firing nap word=hello") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no skipped firing and second firing:\n%s", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := waitForFile(t, marker, 5*time.Second); !strings.HasPrefix(got, "nap hello") {
		t.Fatalf("marker %q", got)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitStatus(t, cmd, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, out)
	}
	text := out.String()
	// The second firing was running: interrupted, it ended before davit.
	for _, want := range []string{"finished in", "error: nap word=hello (@every 1s) failed", "context canceled", "scheduler stopped"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	logText, err := os.ReadFile(filepath.Join(dir, "log", "davit.log"))
	if err != nil || !strings.Contains(string(logText), "davit production nap word=hello") {
		t.Fatalf("run log lacks the firing's run (%v):\n%s", err, logText)
	}
}
