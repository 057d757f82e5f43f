package output

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPrettyPlainText(t *testing.T) {
	var buf bytes.Buffer
	emitAll(NewPretty(&buf, PrettyOptions{}), script())
	checkOutput(t, buf.String(), `== deploy:check
web1  ✔ mkdir -p /x (12ms)
web22 ✘ test -d /y (3ms, exit 1)
    no such directory
    
web1  warn: disk almost full
info: two
info: lines
`)
}

func TestPrettyColor(t *testing.T) {
	var buf bytes.Buffer
	emitAll(NewPretty(&buf, PrettyOptions{Color: true}), script())
	const (
		reset = "\x1b[0m"
		bold  = "\x1b[1m"
		dim   = "\x1b[2m"
		red   = "\x1b[31m"
		green = "\x1b[32m"
		yel   = "\x1b[33m"
		blue  = "\x1b[34m"
		cyan  = "\x1b[36m"
	)
	want := bold + "== deploy:check" + reset + "\n" +
		cyan + "web1" + reset + "  " + green + "✔" + reset + " mkdir -p /x " + dim + "(12ms)" + reset + "\n" +
		cyan + "web22" + reset + " " + red + "✘" + reset + " test -d /y " + red + "(3ms, exit 1)" + reset + "\n" +
		"    " + yel + "no such directory" + reset + "\n" +
		"    \n" +
		cyan + "web1" + reset + "  " + yel + "warn:" + reset + " disk almost full\n" +
		blue + "info:" + reset + " two\n" +
		blue + "info:" + reset + " lines\n"
	checkOutput(t, buf.String(), want)
	// Without colour, not a single escape code.
	buf.Reset()
	emitAll(NewPretty(&buf, PrettyOptions{}), script())
	if strings.Contains(buf.String(), "\x1b") {
		t.Errorf("escape code without Color: %q", buf.String())
	}
}

func TestPrettyVerbose(t *testing.T) {
	var buf bytes.Buffer
	emitAll(NewPretty(&buf, PrettyOptions{Verbose: true}), script())
	// Host names pad to the widest seen so far: web1 came before web22.
	checkOutput(t, buf.String(), `== deploy:check
web1 → mkdir -p /x
web22 → test -d /y
web1  │ created /x
web22 │ no such directory
web22 │ 
web1  ✔ mkdir -p /x (12ms)
web22 ✘ test -d /y (3ms, exit 1)
web1  warn: disk almost full
info: two
info: lines
`)
}

func TestPrettyErrorAndUnknownCommand(t *testing.T) {
	var buf bytes.Buffer
	p := NewPretty(&buf, PrettyOptions{})
	p.Emit(Event{Kind: CommandStart, Host: "h", ID: 7, Command: "sleep 10"})
	p.Emit(Event{Kind: Output, Host: "h", ID: 7, Line: "z"})
	// The end event may leave Command empty: the start's is used.
	p.Emit(Event{Kind: CommandEnd, Host: "h", ID: 7, ExitStatus: status(-1), Duration: 5 * time.Second,
		Error: "command timed out after 5s\nsecond line"})
	// An end without a start, and output outside any command.
	p.Emit(Event{Kind: CommandEnd, Host: "h", ID: 8, Command: "true", Duration: time.Millisecond})
	p.Emit(Event{Kind: Output, Host: "h", Line: "loose"})
	checkOutput(t, buf.String(), `h ✘ sleep 10 (5s, command timed out after 5s\nsecond line)
    z
h ✔ true (1ms)
h │ loose
`)
	if len(p.cmds) != 0 {
		t.Errorf("%d command buffers left after every command ended", len(p.cmds))
	}
}

func TestPrettySameIDOnTwoHosts(t *testing.T) {
	var buf bytes.Buffer
	p := NewPretty(&buf, PrettyOptions{})
	for _, h := range []string{"a", "b"} {
		p.Emit(Event{Kind: CommandStart, Host: h, ID: 1, Command: "c"})
		p.Emit(Event{Kind: Output, Host: h, ID: 1, Line: "from " + h})
	}
	p.Emit(Event{Kind: CommandEnd, Host: "b", ID: 1, ExitStatus: status(2)})
	p.Emit(Event{Kind: CommandEnd, Host: "a", ID: 1, ExitStatus: status(2)})
	checkOutput(t, buf.String(), `b ✘ c (0s, exit 2)
    from b
a ✘ c (0s, exit 2)
    from a
`)
}

func TestPrettyKeepsLastLines(t *testing.T) {
	var buf bytes.Buffer
	p := NewPretty(&buf, PrettyOptions{})
	p.Emit(Event{Kind: CommandStart, Host: "h", ID: 1, Command: "noisy"})
	const total = keepLines + 50
	for i := range total {
		p.Emit(Event{Kind: Output, Host: "h", ID: 1, Line: fmt.Sprint("line ", i)})
	}
	if n := len(p.cmds[cmdKey{"h", 1}].lines); n != keepLines {
		t.Fatalf("buffered %d lines, want %d", n, keepLines)
	}
	p.Emit(Event{Kind: CommandEnd, Host: "h", ID: 1, Command: "noisy", ExitStatus: status(1)})
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2+keepLines {
		t.Fatalf("%d lines printed, want %d", len(lines), 2+keepLines)
	}
	if lines[1] != "    [50 earlier lines dropped]" {
		t.Errorf("drop notice = %q", lines[1])
	}
	if lines[2] != "    line 50" || lines[len(lines)-1] != fmt.Sprint("    line ", total-1) {
		t.Errorf("kept lines run from %q to %q", lines[2], lines[len(lines)-1])
	}
}

// TestPrettyConcurrent has many hosts report at once; every failed
// command's output must come out whole, right under its own line.
func TestPrettyConcurrent(t *testing.T) {
	var buf bytes.Buffer
	p := NewPretty(&buf, PrettyOptions{})
	const hosts, cmds, lines = 16, 20, 5
	var wg sync.WaitGroup
	for h := range hosts {
		wg.Go(func() {
			host := fmt.Sprintf("h%02d", h)
			for c := range cmds {
				id := uint64(c + 1)
				p.Emit(Event{Kind: CommandStart, Host: host, ID: id, Command: fmt.Sprint("cmd ", c)})
				for l := range lines {
					p.Emit(Event{Kind: Output, Host: host, ID: id, Line: fmt.Sprintf("%s/%d/%d", host, c, l)})
				}
				p.Emit(Event{Kind: CommandEnd, Host: host, ID: id, ExitStatus: status(c % 2)})
			}
		})
	}
	wg.Wait()
	out := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if want := hosts * (cmds + cmds/2*lines); len(out) != want {
		t.Fatalf("%d lines, want %d", len(out), want)
	}
	head := regexp.MustCompile(`^(h\d\d) ✘ cmd (\d+) \(0s, exit 1\)$`)
	for i, l := range out {
		m := head.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		for j := range lines {
			if want := fmt.Sprintf("    %s/%s/%d", m[1], m[2], j); out[i+1+j] != want {
				t.Fatalf("line %d = %q, want %q", i+2+j, out[i+1+j], want)
			}
		}
	}
}

// A labelled command shows its label in pretty output; the JSON format
// keeps both.
func TestPrettyLabel(t *testing.T) {
	var buf bytes.Buffer
	p := NewPretty(&buf, PrettyOptions{})
	p.Emit(Event{Kind: CommandStart, Host: "web1", ID: 7, Command: "mkdir /srv/.davit/lock && echo user=me > ...", Label: "take the deploy lock"})
	p.Emit(Event{Kind: CommandEnd, Host: "web1", ID: 7, Command: "mkdir /srv/.davit/lock && echo user=me > ...", Label: "take the deploy lock", ExitStatus: status(0), Duration: time.Millisecond})
	if got := buf.String(); got != "web1 ✔ take the deploy lock (1ms)\n" {
		t.Errorf("pretty: %q", got)
	}
	var js bytes.Buffer
	NewJSON(&js).Emit(Event{Kind: CommandStart, Host: "web1", ID: 7, Command: "mkdir x", Label: "take the deploy lock"})
	if !strings.Contains(js.String(), `"command":"mkdir x"`) || !strings.Contains(js.String(), `"label":"take the deploy lock"`) {
		t.Errorf("json: %s", js.String())
	}
}

// Task headers appear only for tasks that show something: hook points and
// tasks that only invoke others stay silent.
func TestPrettyHeadersOnlyForTasksWithOutput(t *testing.T) {
	var buf bytes.Buffer
	p := NewPretty(&buf, PrettyOptions{})
	p.Emit(Event{Kind: TaskStart, Task: "deploy"})
	p.Emit(Event{Kind: TaskStart, Task: "deploy:starting"})
	p.Emit(Event{Kind: TaskEnd, Task: "deploy:starting"})
	p.Emit(Event{Kind: TaskStart, Task: "deploy:check"})
	p.Emit(Event{Kind: CommandStart, Task: "deploy:check", Host: "web1", ID: 1, Command: "true"})
	p.Emit(Event{Kind: CommandEnd, Task: "deploy:check", Host: "web1", ID: 1, Command: "true", ExitStatus: status(0), Duration: time.Millisecond})
	p.Emit(Event{Kind: CommandStart, Task: "deploy:check", Host: "web1", ID: 2, Command: "true"})
	p.Emit(Event{Kind: CommandEnd, Task: "deploy:check", Host: "web1", ID: 2, Command: "true", ExitStatus: status(0), Duration: time.Millisecond})
	p.Emit(Event{Kind: TaskEnd, Task: "deploy:check"})
	p.Emit(Event{Kind: Message, Task: "deploy", Line: "done"})
	want := "== deploy:check\nweb1 ✔ true (1ms)\nweb1 ✔ true (1ms)\n== deploy\ninfo: done\n"
	if got := buf.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
