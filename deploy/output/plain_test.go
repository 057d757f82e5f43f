package output

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Plain is about as short as pretty: no start lines, the user's output as
// it arrives, one line per finished command, a failed task's end and the
// end of the task asked for.
func TestPlain(t *testing.T) {
	var buf bytes.Buffer
	p := NewPlain(&buf)
	emitAll(p, script())
	p.Emit(Event{Kind: TaskStart, Task: "deploy:lock"})
	p.Emit(Event{Kind: CommandEnd, Task: "deploy:lock", Host: "web1", Command: "sleep\n10", ExitStatus: status(-1), Duration: 5 * time.Second, Error: "command timed out after 5s"})
	p.Emit(Event{Kind: TaskEnd, Task: "deploy:lock", Duration: 20 * time.Millisecond})
	checkOutput(t, buf.String(), `== deploy:check
[web1] created /x
[web22] no such directory
[web22] 
[web1] ok (12ms): mkdir -p /x
[web22] failed (3ms, exit 1): test -d /y
[web1] warn: disk almost full
info: two
info: lines
== deploy:check failed (1.5s)
== deploy:lock
[web1] failed (5s, command timed out after 5s): sleep …
== deploy:lock done (20ms)
`)
	if strings.Contains(buf.String(), "\x1b") {
		t.Error("plain output has an escape code")
	}
}

// Davit's own commands by their label; their output only when they fail,
// before the failed line, both streams in the order they came.
func TestPlainLabelledCommands(t *testing.T) {
	var buf bytes.Buffer
	emitAll(NewPlain(&buf), labelled())
	checkOutput(t, buf.String(), `== deploy:lock
[web1] ok (5ms): take the deploy lock
[web1] problem: a
[web1] warning b
[web1] problem: c
[web1] failed (2ms, exit 1): check the layout
== deploy:lock failed (10ms)
`)
}

func TestPlainVerbosity(t *testing.T) {
	run := func(v Verbosity, events ...[]Event) string {
		var buf bytes.Buffer
		p := NewPlainWith(&buf, PlainOptions{Verbosity: v})
		p.Emit(Event{Kind: TaskStart, Task: "deploy"})
		for _, ev := range events {
			emitAll(p, ev)
		}
		p.Emit(Event{Kind: Message, Task: "deploy", Line: "deployed release 1"})
		p.Emit(Event{Kind: TaskEnd, Task: "deploy", Duration: time.Second})
		p.Close()
		return buf.String()
	}
	checkOutput(t, run(Quiet, script(), labelled()), `== deploy:check
[web22] no such directory
[web22] 
[web22] failed (3ms, exit 1): test -d /y
[web1] warn: disk almost full
== deploy:check failed (1.5s)
== deploy:lock
[web1] problem: a
[web1] warning b
[web1] problem: c
[web1] failed (2ms, exit 1): check the layout
== deploy:lock failed (10ms)
== deploy
info: deployed release 1
== deploy done (1s)
`)
	checkOutput(t, run(Verbose, labelled()), `== deploy:lock
[web1] run: take the deploy lock
[web1] ok (5ms): take the deploy lock
[web1] run: check the layout
[web1] problem: a
[web1] warning b
[web1] problem: c
[web1] failed (2ms, exit 1): check the layout
== deploy:lock failed (10ms)
== deploy
info: deployed release 1
== deploy done (1s)
`)
	checkOutput(t, run(VeryVerbose, labelled()), `== deploy
== deploy:lock
[web1] run: take the deploy lock
[web1] $ cd /srv && if mkdir .davit/lock; then echo '@@ locked'; fi
[web1] > echo '@@ marks'
[web1] @@ locked
[web1] @@ marks
[web1] ok (5ms): take the deploy lock
[web1] run: check the layout
[web1] $ for d in /srv/releases; do [ -w $d ] || echo problem: $d; done
[web1] problem: a
[web1] warning b
[web1] problem: c
[web1] failed (2ms, exit 1): check the layout
== deploy:lock failed (10ms)
== deploy
info: deployed release 1
== deploy done (1s)
`)
}

// A long command gets a "running" line at LongAfter and one a minute
// after, under its task's header; the ticks stop with the last command.
func TestPlainLongCommand(t *testing.T) {
	clk := newFakeClock()
	var term fakeTerminal
	p := NewPlainWith(&term, PlainOptions{Clock: clk, LongAfter: 30 * time.Second})
	p.Emit(Event{Time: at(0), Kind: CommandStart, Task: "app:bundle", Host: "web1", ID: 1, Label: "bundle install"})
	p.Emit(Event{Time: at(1000), Kind: CommandStart, Task: "app:bundle", Host: "web2", ID: 1, Label: "bundle install"})
	clk.tick(t, 10_000)
	clk.tick(t, 30_000)
	clk.tick(t, 31_000)
	clk.tick(t, 95_000)
	p.Emit(Event{Time: at(100_000), Kind: CommandEnd, Task: "app:bundle", Host: "web1", ID: 1, ExitStatus: status(0), Duration: 100 * time.Second})
	p.Emit(Event{Time: at(101_000), Kind: CommandEnd, Task: "app:bundle", Host: "web2", ID: 1, ExitStatus: status(0), Duration: 100 * time.Second})
	p.tick.wait()
	if !clk.allStopped() {
		t.Error("ticker still running after the last command ended")
	}
	checkOutput(t, term.String(), `== app:bundle
[web1] running (30s): bundle install
[web2] running (30s): bundle install
[web1] running (1m35s): bundle install
[web2] running (1m34s): bundle install
[web1] ok (1m40s): bundle install
[web2] ok (1m40s): bundle install
`)
}

// TestPlainConcurrent checks that lines from many goroutines never tear.
func TestPlainConcurrent(t *testing.T) {
	var buf bytes.Buffer
	p := NewPlain(&buf)
	var wg sync.WaitGroup
	for h := range 8 {
		wg.Go(func() {
			for i := range 200 {
				p.Emit(Event{Kind: Output, Host: fmt.Sprint("h", h), Line: strings.Repeat("x", i)})
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 8*200 {
		t.Fatalf("%d lines, want %d", len(lines), 8*200)
	}
	for _, l := range lines {
		host, rest, ok := strings.Cut(l, "] ")
		if !ok || !strings.HasPrefix(host, "[h") || strings.Trim(rest, "x") != "" {
			t.Fatalf("torn line %q", l)
		}
	}
}

// A test command that answers no (h.test() returning False) is not a
// failure in any format.
func TestTestCommandAnsweredNo(t *testing.T) {
	no := Event{Kind: CommandEnd, Host: "web1", ID: 1, Command: "test -d /y", ExitStatus: status(1), Duration: 3 * time.Millisecond, Test: true}
	var plain, pretty bytes.Buffer
	NewPlain(&plain).Emit(no)
	NewPretty(&pretty, PrettyOptions{}).Emit(no)
	if got := plain.String(); got != "[web1] false (3ms, exit 1): test -d /y\n" {
		t.Errorf("plain: %q", got)
	}
	if got := pretty.String(); strings.Contains(got, "✘") || !strings.Contains(got, "○") {
		t.Errorf("pretty: %q", got)
	}
	if failed(no) {
		t.Error("failed() is true for a test that answered no")
	}
	lost := no
	lost.Error = "connection lost"
	if !failed(lost) {
		t.Error("failed() is false for a test command that could not run")
	}
}

// Close while a command runs (an interrupted run) stops the ticks and
// waits for them; no ticker starts after it.
func TestPlainCloseWhileRunning(t *testing.T) {
	clk := newFakeClock()
	var term fakeTerminal
	p := NewPlainWith(&term, PlainOptions{Clock: clk})
	p.Emit(Event{Time: at(0), Kind: CommandStart, Host: "web1", ID: 1, Label: "unpack"})
	clk.tick(t, 10_000)
	p.Close()
	p.Emit(Event{Time: at(11_000), Kind: CommandStart, Host: "web1", ID: 2, Label: "again"})
	if !clk.allStopped() || len(clk.tickers) != 1 {
		t.Errorf("tickers: %d, all stopped %v", len(clk.tickers), clk.allStopped())
	}
	if got, want := term.String(), "[web1] running (10s): unpack\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
