package output

import (
	"testing"
	"time"
)

// The status line shows what runs as it starts, is redrawn in place on
// each tick with the elapsed time, and is erased before any other line is
// printed, then drawn again below it.
func TestPrettyLiveStatusLine(t *testing.T) {
	clk := newFakeClock()
	term := &fakeTerminal{}
	p := NewPretty(term, PrettyOptions{Live: true, Width: 72, Clock: clk})
	p.Emit(Event{Time: at(0), Kind: TaskStart, Task: "app:bundle"})
	p.Emit(Event{Time: at(0), Kind: CommandStart, Task: "app:bundle", Host: "web1", ID: 1, Command: "cd /srv && bundle install", Label: "bundle install"})
	if got, want := term.String(), "== app:bundle\nrunning: bundle install on web1 (0s)"; got != want {
		t.Fatalf("at the start:\n got %q\nwant %q", got, want)
	}
	clk.tick(t, 2000)
	if got, want := term.String(), "== app:bundle\nrunning: bundle install on web1 (0s)\r\x1b[Krunning: bundle install on web1 (2s)"; got != want {
		t.Fatalf("after a tick:\n got %q\nwant %q", got, want)
	}
	// A tick that changes nothing writes nothing.
	before := term.String()
	clk.tick(t, 2400)
	if got := term.String(); got != before {
		t.Errorf("a tick in the same second wrote %q", got[len(before):])
	}

	// More hosts: one group per name, oldest first.
	clk.set(2500)
	p.Emit(Event{Time: at(2500), Kind: CommandStart, Task: "app:bundle", Host: "web2", ID: 1, Label: "bundle install"})
	p.Emit(Event{Time: at(2600), Kind: CommandStart, Task: "app:bundle", Host: "web3", ID: 1, Label: "bundle install"})
	p.Emit(Event{Time: at(2700), Kind: CommandStart, Task: "app:bundle", Host: "web4", ID: 1, Label: "bundle install"})
	p.Emit(Event{Time: at(2800), Kind: CommandStart, Task: "app:bundle", Host: "db1", ID: 1, Command: "./migrate.sh"})
	clk.tick(t, 63_000)
	if got, want := term.screen(), "== app:bundle\nrunning: bundle install on web1, web2, web3 +1 (1m3s) · ./migrate.sh o…▌"; got != want {
		t.Errorf("screen with five commands:\n got %q\nwant %q", got, want)
	}

	// A line printed meanwhile goes above the status line.
	clk.set(63_500)
	mark := len(term.String())
	p.Emit(Event{Time: at(63_500), Kind: Output, Task: "app:bundle", Host: "db1", ID: 1, Line: "migrated 3"})
	if got, want := term.String()[mark:], "\r\x1b[Kdb1  → ./migrate.sh\ndb1  │ migrated 3\n"+
		"running: bundle install on web1, web2, web3 +1 (1m3s) · ./migrate.sh o…"; got != want {
		t.Errorf("a line while the status shows:\n got %q\nwant %q", got, want)
	}

	for _, h := range []string{"web1", "web2", "web3", "web4"} {
		p.Emit(Event{Time: at(180_000), Kind: CommandEnd, Task: "app:bundle", Host: h, ID: 1, Label: "bundle install", ExitStatus: status(0), Duration: 3 * time.Minute})
	}
	clk.tick(t, 181_000)
	p.Emit(Event{Time: at(182_000), Kind: CommandEnd, Task: "app:bundle", Host: "db1", ID: 1, Command: "./migrate.sh", ExitStatus: status(0), Duration: 179 * time.Second})
	checkOutput(t, term.screen(), `== app:bundle
db1  → ./migrate.sh
db1  │ migrated 3
web1 ✔ bundle install (3m0s)
web2 ✔ bundle install (3m0s)
web3 ✔ bundle install (3m0s)
web4 ✔ bundle install (3m0s)
db1  ✔ ./migrate.sh (2m59s)
▌`)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if !clk.allStopped() {
		t.Error("a ticker is still running after Close")
	}
}

// Close stops the ticks while a command still runs (an interrupted run),
// clears the status line and leaves no goroutine; later events print
// without a status line.
func TestPrettyLiveClose(t *testing.T) {
	clk := newFakeClock()
	term := &fakeTerminal{}
	p := NewPretty(term, PrettyOptions{Live: true, Clock: clk})
	p.Emit(Event{Time: at(0), Kind: CommandStart, Host: "web1", ID: 1, Label: "unpack"})
	clk.tick(t, 1000)
	p.Close()
	p.Close()
	if !clk.allStopped() {
		t.Fatal("ticker not stopped by Close")
	}
	p.Emit(Event{Time: at(1500), Kind: CommandEnd, Host: "web1", ID: 1, ExitStatus: status(-1), Error: "interrupted", Duration: 1500 * time.Millisecond})
	want := "running: unpack on web1 (0s)\r\x1b[Krunning: unpack on web1 (1s)\r\x1b[K" +
		"web1 ✘ unpack (1.5s, interrupted)\n"
	if got := term.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if len(clk.tickers) != 1 {
		t.Errorf("%d tickers started, want 1", len(clk.tickers))
	}
}

// The ticks run only while a command runs: once the last one ends the
// ticker stops by itself, and the next command starts a new one.
func TestPrettyTicksOnlyWhileRunning(t *testing.T) {
	clk := newFakeClock()
	p := NewPretty(&fakeTerminal{}, PrettyOptions{Live: true, Clock: clk})
	p.Emit(Event{Kind: CommandStart, Host: "h", ID: 1, Label: "a"})
	p.Emit(Event{Kind: CommandEnd, Host: "h", ID: 1, ExitStatus: status(0)})
	p.Emit(Event{Kind: CommandStart, Host: "h", ID: 2, Label: "b"})
	clk.tick(t, 1000) // reaches the second ticker
	p.Emit(Event{Kind: CommandEnd, Host: "h", ID: 2, ExitStatus: status(0)})
	p.tick.wait() // both ended without Close
	if !clk.allStopped() || len(clk.tickers) != 2 {
		t.Errorf("tickers: %d, all stopped %v", len(clk.tickers), clk.allStopped())
	}
}

// Without a terminal nothing is redrawn: a long command gets a "running"
// line at LongAfter, then one a minute.
func TestPrettyNotLiveLongCommand(t *testing.T) {
	clk := newFakeClock()
	term := &fakeTerminal{}
	p := NewPretty(term, PrettyOptions{Clock: clk})
	p.Emit(Event{Time: at(0), Kind: CommandStart, Task: "app:bundle", Host: "web1", ID: 1, Label: "bundle install"})
	clk.tick(t, 5000)
	clk.tick(t, 10_000)
	clk.tick(t, 11_000)
	clk.tick(t, 70_000)
	p.Emit(Event{Time: at(75_000), Kind: CommandEnd, Task: "app:bundle", Host: "web1", ID: 1, ExitStatus: status(0), Duration: 75 * time.Second})
	p.Close()
	checkOutput(t, term.String(), `== app:bundle
web1 ⋯ bundle install (running 10s)
web1 ⋯ bundle install (running 1m10s)
web1 ✔ bundle install (1m15s)
`)
	// Quiet prints none, and starts no ticker.
	clk = newFakeClock()
	term = &fakeTerminal{}
	p = NewPretty(term, PrettyOptions{Clock: clk, Verbosity: Quiet})
	p.Emit(Event{Time: at(0), Kind: CommandStart, Host: "web1", ID: 1, Label: "bundle install"})
	p.Close()
	if len(clk.tickers) != 0 || term.String() != "" {
		t.Errorf("quiet: %d tickers, output %q", len(clk.tickers), term.String())
	}
}

// A name too long for the status line is cut, so the host and the time
// stay in sight.
func TestPrettyStatusLineLongName(t *testing.T) {
	clk := newFakeClock()
	term := &fakeTerminal{}
	p := NewPretty(term, PrettyOptions{Live: true, Clock: clk})
	p.Emit(Event{Time: at(0), Kind: CommandStart, Host: "web9", ID: 1,
		Command: "echo bundling; sleep 3; echo 'Bundle complete! 12 Gemfile dependencies'"})
	clk.tick(t, 2000)
	if got, want := term.screen(), "running: echo bundling; sleep 3; echo 'B… on web9 (2s)▌"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	p.Close()
}
