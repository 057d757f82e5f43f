package output

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// Shared helpers for the format tests.

func status(n int) *int { return &n }

var t0 = time.Date(2026, 11, 29, 2, 23, 0, 0, time.UTC)

// at is t0 plus ms milliseconds, so tests state times compactly.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// script is a small run on two hosts: web1 succeeds with output, web22
// fails with output on both streams, then messages and the task end.
func script() []Event {
	return []Event{
		{Time: at(0), Kind: TaskStart, Task: "deploy:check"},
		{Time: at(1), Kind: CommandStart, Task: "deploy:check", Host: "web1", ID: 1, Command: "mkdir -p /x"},
		{Time: at(2), Kind: CommandStart, Task: "deploy:check", Host: "web22", ID: 2, Command: "test -d /y"},
		{Time: at(3), Kind: Output, Task: "deploy:check", Host: "web1", ID: 1, Stream: Stdout, Line: "created /x"},
		{Time: at(4), Kind: Output, Task: "deploy:check", Host: "web22", ID: 2, Stream: Stderr, Line: "no such directory"},
		{Time: at(5), Kind: Output, Task: "deploy:check", Host: "web22", ID: 2, Stream: Stdout, Line: ""},
		{Time: at(13), Kind: CommandEnd, Task: "deploy:check", Host: "web1", ID: 1, Command: "mkdir -p /x", ExitStatus: status(0), Duration: 12 * time.Millisecond},
		{Time: at(14), Kind: CommandEnd, Task: "deploy:check", Host: "web22", ID: 2, Command: "test -d /y", ExitStatus: status(1), Duration: 3 * time.Millisecond},
		{Time: at(20), Kind: Message, Task: "deploy:check", Host: "web1", Level: "warn", Line: "disk almost full"},
		{Time: at(21), Kind: Message, Task: "deploy:check", Line: "two\nlines"},
		{Time: at(1500), Kind: TaskEnd, Task: "deploy:check", Error: "web22: exit 1", Duration: 1500 * time.Millisecond},
	}
}

func emitAll(s Sink, events []Event) {
	for _, e := range events {
		s.Emit(e)
	}
}

// checkOutput compares line by line, so a failure shows where they differ.
func checkOutput(t *testing.T, got, want string) {
	t.Helper()
	if got == want {
		return
	}
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			t.Errorf("line %d:\n got %q\nwant %q", i+1, gl, wl)
		}
	}
	t.Logf("got:\n%s", got)
}

func TestFmtDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                     "0s",
		1234 * time.Microsecond:               "1ms",
		999 * time.Millisecond:                "999ms",
		1234 * time.Millisecond:               "1.23s",
		59*time.Second + 994*time.Millisecond: "59.99s",
		65*time.Second + 600*time.Millisecond: "1m6s",
	} {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestMulti(t *testing.T) {
	var got []string
	rec := func(name string) Sink {
		return SinkFunc(func(e Event) { got = append(got, name+":"+e.Line) })
	}
	m := Multi(rec("a"), nil, rec("b"))
	m.Emit(Event{Kind: Message, Line: "x"})
	m.Emit(Event{Kind: Message, Line: "y"})
	if want := "a:x b:x a:y b:y"; strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", got, want)
	}
	one := rec("c")
	if Multi(nil, one) == nil {
		t.Error("Multi of one sink returned nil")
	}
	Multi().Emit(Event{}) // no sinks: a no-op, not a panic
}

// labelled is a run of davit's own commands on one host: a lock script
// that succeeds printing its protocol lines, and a layout check that
// fails with stdout and stderr interleaved.
func labelled() []Event {
	const lock = "cd /srv && if mkdir .davit/lock; then echo '@@ locked'; fi\necho '@@ marks'"
	const check = "for d in /srv/releases; do [ -w $d ] || echo problem: $d; done"
	return []Event{
		{Time: at(0), Kind: TaskStart, Task: "deploy:lock"},
		{Time: at(1), Kind: CommandStart, Task: "deploy:lock", Host: "web1", ID: 1, Command: lock, Label: "take the deploy lock"},
		{Time: at(2), Kind: Output, Task: "deploy:lock", Host: "web1", ID: 1, Stream: Stdout, Line: "@@ locked"},
		{Time: at(3), Kind: Output, Task: "deploy:lock", Host: "web1", ID: 1, Stream: Stdout, Line: "@@ marks"},
		{Time: at(6), Kind: CommandEnd, Task: "deploy:lock", Host: "web1", ID: 1, Command: lock, Label: "take the deploy lock", ExitStatus: status(0), Duration: 5 * time.Millisecond},
		{Time: at(7), Kind: CommandStart, Task: "deploy:lock", Host: "web1", ID: 2, Command: check, Label: "check the layout"},
		{Time: at(8), Kind: Output, Task: "deploy:lock", Host: "web1", ID: 2, Stream: Stdout, Line: "problem: a"},
		{Time: at(8), Kind: Output, Task: "deploy:lock", Host: "web1", ID: 2, Stream: Stderr, Line: "warning b"},
		{Time: at(8), Kind: Output, Task: "deploy:lock", Host: "web1", ID: 2, Stream: Stdout, Line: "problem: c"},
		{Time: at(9), Kind: CommandEnd, Task: "deploy:lock", Host: "web1", ID: 2, Command: check, Label: "check the layout", ExitStatus: status(1), Duration: 2 * time.Millisecond},
		{Time: at(10), Kind: TaskEnd, Task: "deploy:lock", Error: "web1: exit 1", Duration: 10 * time.Millisecond},
	}
}

// fakeClock is a Clock whose time the test sets and whose ticks the test
// sends.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*fakeTicker
}

type fakeTicker struct {
	c       chan time.Time
	stopped atomic.Bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) NewTicker(time.Duration) (<-chan time.Time, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTicker{c: make(chan time.Time)}
	f.tickers = append(f.tickers, t)
	return t.c, func() { t.stopped.Store(true) }
}

// tick sets the time to t0+ms and delivers it to the running ticker, then
// waits until that tick was handled: the ticker goroutine takes a second
// send only once it is back from handling the first, and the second, at
// the same time, finds nothing new to show.
func (f *fakeClock) tick(t *testing.T, ms int) {
	t.Helper()
	f.mu.Lock()
	f.now = at(ms)
	var running *fakeTicker
	for _, tk := range f.tickers {
		if !tk.stopped.Load() {
			running = tk
		}
	}
	f.mu.Unlock()
	if running == nil {
		t.Fatalf("tick at %dms: no ticker running", ms)
	}
	for range 2 {
		select {
		case running.c <- at(ms):
		case <-time.After(5 * time.Second):
			t.Fatalf("tick at %dms: the ticker goroutine does not receive", ms)
		}
	}
}

func (f *fakeClock) set(ms int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = at(ms)
}

// allStopped reports whether every ticker made was stopped.
func (f *fakeClock) allStopped() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tk := range f.tickers {
		if !tk.stopped.Load() {
			return false
		}
	}
	return true
}

// fakeTerminal records what is written to it (safe for the ticker
// goroutine) and can tell what a terminal would show: it understands
// "\r", "\n" and erase-to-end-of-line, the only controls the status line
// uses.
type fakeTerminal struct {
	mu  sync.Mutex
	raw strings.Builder
}

func (f *fakeTerminal) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.raw.Write(p)
}

func (f *fakeTerminal) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.raw.String()
}

// screen is the text on the terminal: finished lines, then the line the
// cursor is on (the status line) marked with "▌" where it ends.
func (f *fakeTerminal) screen() string {
	raw := f.String()
	var done []string
	var cur []rune
	col := 0
	for i := 0; i < len(raw); {
		switch {
		case strings.HasPrefix(raw[i:], eraseLine):
			cur = cur[:col]
			i += len(eraseLine)
			continue
		case raw[i] == '\r':
			col = 0
		case raw[i] == '\n':
			done = append(done, string(cur))
			cur, col = nil, 0
		default:
			r, size := utf8.DecodeRuneInString(raw[i:])
			if col < len(cur) {
				cur[col] = r
			} else {
				cur = append(cur, r)
			}
			col++
			i += size
			continue
		}
		i++
	}
	return strings.Join(append(done, string(cur)+"▌"), "\n")
}
