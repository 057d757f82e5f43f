package output

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPlain(t *testing.T) {
	var buf bytes.Buffer
	p := NewPlain(&buf)
	emitAll(p, script())
	p.Emit(Event{Kind: TaskStart, Task: "deploy:lock"})
	p.Emit(Event{Kind: CommandEnd, Host: "web1", Command: "sleep\n10", ExitStatus: status(-1), Duration: 5 * time.Second, Error: "command timed out after 5s"})
	p.Emit(Event{Kind: TaskEnd, Task: "deploy:lock", Duration: 20 * time.Millisecond})
	checkOutput(t, buf.String(), `== deploy:check
[web1] run: mkdir -p /x
[web22] run: test -d /y
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
[web1] failed (5s, command timed out after 5s): sleep\n10
== deploy:lock done (20ms)
`)
	if strings.Contains(buf.String(), "\x1b") {
		t.Error("plain output has an escape code")
	}
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
