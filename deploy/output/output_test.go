package output

import (
	"strings"
	"testing"
	"time"
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
