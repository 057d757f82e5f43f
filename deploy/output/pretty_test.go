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

// The user's commands (no label) show their output as it arrives, each
// command named once before its first line.
func TestPrettyPlainText(t *testing.T) {
	var buf bytes.Buffer
	emitAll(NewPretty(&buf, PrettyOptions{}), script())
	checkOutput(t, buf.String(), `== deploy:check
web1  → mkdir -p /x
web1  │ created /x
web22 → test -d /y
web22 │ no such directory
web22 │ 
web1  ✔ mkdir -p /x (12ms)
web22 ✘ test -d /y (3ms, exit 1)
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
		cyan + "web1" + reset + "  " + blue + "→" + reset + " mkdir -p /x\n" +
		cyan + "web1" + reset + "  " + dim + "│" + reset + " created /x\n" +
		cyan + "web22" + reset + " " + blue + "→" + reset + " test -d /y\n" +
		cyan + "web22" + reset + " " + dim + "│" + reset + " " + yel + "no such directory" + reset + "\n" +
		cyan + "web22" + reset + " " + dim + "│" + reset + " \n" +
		cyan + "web1" + reset + "  " + green + "✔" + reset + " mkdir -p /x " + dim + "(12ms)" + reset + "\n" +
		cyan + "web22" + reset + " " + red + "✘" + reset + " test -d /y " + red + "(3ms, exit 1)" + reset + "\n" +
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

// -v names every command as it starts.
func TestPrettyVerbose(t *testing.T) {
	var buf bytes.Buffer
	emitAll(NewPretty(&buf, PrettyOptions{Verbosity: Verbose}), script())
	// Host names pad to the widest seen so far: web1 came before web22.
	want := `== deploy:check
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
`
	checkOutput(t, buf.String(), want)
	// The former Verbose field means the same.
	buf.Reset()
	emitAll(NewPretty(&buf, PrettyOptions{Verbosity: Verbose}), script())
	checkOutput(t, buf.String(), want)
}

// Quiet shows failures with their output, warnings, and the messages of
// the task that was asked for; not successes or info of inner tasks.
func TestPrettyQuiet(t *testing.T) {
	var buf bytes.Buffer
	p := NewPretty(&buf, PrettyOptions{Verbosity: Quiet})
	p.Emit(Event{Kind: TaskStart, Task: "deploy"})
	emitAll(p, script())
	emitAll(p, labelled())
	p.Emit(Event{Kind: Message, Task: "deploy", Line: "deployed release 1"})
	p.Emit(Event{Kind: TaskEnd, Task: "deploy"})
	checkOutput(t, buf.String(), `== deploy:check
web22 ✘ test -d /y (3ms, exit 1)
    no such directory
    
web1  warn: disk almost full
== deploy:lock
web1  ✘ check the layout (2ms, exit 1)
    problem: a
    warning b
    problem: c
== deploy
info: deployed release 1
`)
}

// Davit's own commands show by their label; their output (the protocol
// with their scripts) only when they fail, both streams in the order they
// came.
func TestPrettyLabelledCommands(t *testing.T) {
	var buf bytes.Buffer
	emitAll(NewPretty(&buf, PrettyOptions{}), labelled())
	checkOutput(t, buf.String(), `== deploy:lock
web1 ✔ take the deploy lock (5ms)
web1 ✘ check the layout (2ms, exit 1)
    problem: a
    warning b
    problem: c
`)
	// -v adds the start lines, still no script and no protocol lines.
	buf.Reset()
	emitAll(NewPretty(&buf, PrettyOptions{Verbosity: Verbose}), labelled())
	checkOutput(t, buf.String(), `== deploy:lock
web1 → take the deploy lock
web1 ✔ take the deploy lock (5ms)
web1 → check the layout
web1 ✘ check the layout (2ms, exit 1)
    problem: a
    warning b
    problem: c
`)
}

// -vv shows the scripts, a line per line, and everything they print.
func TestPrettyVeryVerbose(t *testing.T) {
	var buf bytes.Buffer
	emitAll(NewPretty(&buf, PrettyOptions{Verbosity: VeryVerbose}), labelled())
	checkOutput(t, buf.String(), `== deploy:lock
web1 → take the deploy lock
web1 $ cd /srv && if mkdir .davit/lock; then echo '@@ locked'; fi
web1 > echo '@@ marks'
web1 │ @@ locked
web1 │ @@ marks
web1 ✔ take the deploy lock (5ms)
web1 → check the layout
web1 $ for d in /srv/releases; do [ -w $d ] || echo problem: $d; done
web1 │ problem: a
web1 │ warning b
web1 │ problem: c
web1 ✘ check the layout (2ms, exit 1)
`)
}

// Width cuts every line to its columns, the last an ellipsis: a tab
// reaches the next stop, CJK characters take two columns, colours none,
// and a cut coloured line ends with a reset.
func TestPrettyWidth(t *testing.T) {
	var buf bytes.Buffer
	p := NewPretty(&buf, PrettyOptions{Width: 20})
	p.Emit(Event{Kind: CommandStart, Task: "app:restart", Host: "web1", ID: 1, Command: "./restart.sh --all"})
	p.Emit(Event{Kind: Output, Task: "app:restart", Host: "web1", ID: 1, Line: "0123456789abcdefghijklmnop"})
	p.Emit(Event{Kind: Output, Task: "app:restart", Host: "web1", ID: 1, Line: "\tshort"})
	p.Emit(Event{Kind: Output, Task: "app:restart", Host: "web1", ID: 1, Line: "日本語のテキストです"})
	p.Emit(Event{Kind: CommandEnd, Task: "app:restart", Host: "web1", ID: 1, ExitStatus: status(0), Duration: 1200 * time.Millisecond})
	checkOutput(t, buf.String(), `== app:restart
web1 → ./restart.sh…
web1 │ 0123456789ab…
web1 │ 	short
web1 │ 日本語のテキ…
web1 ✔ ./restart… (…
`)
	// Where there is room, the name is cut and the duration kept.
	buf.Reset()
	p = NewPretty(&buf, PrettyOptions{Width: 26})
	p.Emit(Event{Kind: CommandEnd, Host: "web1", ID: 1, Command: "./restart.sh --all", ExitStatus: status(0), Duration: 1200 * time.Millisecond})
	if got, want := buf.String(), "web1 ✔ ./restart.s… (1.2s)\n"; got != want {
		t.Errorf("end line:\n got %q\nwant %q", got, want)
	}
	buf.Reset()
	p = NewPretty(&buf, PrettyOptions{Width: 13, Color: true})
	p.Emit(Event{Kind: Message, Host: "web1", Line: "a long message"})
	if got, want := buf.String(), "\x1b[36mweb1\x1b[0m \x1b[34minfo:\x1b[0m a…\x1b[0m\n"; got != want {
		t.Errorf("coloured cut:\n got %q\nwant %q", got, want)
	}
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
	// A multi-line command is named by its first line.
	p.Emit(Event{Kind: CommandEnd, Host: "h", ID: 9, Command: "\n  set -e\n  make\n", ExitStatus: status(0), Duration: time.Millisecond})
	checkOutput(t, buf.String(), `h → sleep 10
h │ z
h ✘ sleep 10 (5s, command timed out after 5s\nsecond line)
h ✔ true (1ms)
h │ loose
h ✔ set -e … (1ms)
`)
	if p.cmds.len() != 0 {
		t.Errorf("%d commands left after every command ended", p.cmds.len())
	}
}

func TestPrettySameIDOnTwoHosts(t *testing.T) {
	var buf bytes.Buffer
	p := NewPretty(&buf, PrettyOptions{})
	for _, h := range []string{"a", "b"} {
		p.Emit(Event{Kind: CommandStart, Host: h, ID: 1, Command: "c", Label: "step"})
		p.Emit(Event{Kind: Output, Host: h, ID: 1, Line: "from " + h})
	}
	p.Emit(Event{Kind: CommandEnd, Host: "b", ID: 1, ExitStatus: status(2)})
	p.Emit(Event{Kind: CommandEnd, Host: "a", ID: 1, ExitStatus: status(2)})
	checkOutput(t, buf.String(), `b ✘ step (0s, exit 2)
    from b
a ✘ step (0s, exit 2)
    from a
`)
}

func TestPrettyKeepsLastLines(t *testing.T) {
	var buf bytes.Buffer
	p := NewPretty(&buf, PrettyOptions{})
	p.Emit(Event{Kind: CommandStart, Host: "h", ID: 1, Command: "noisy", Label: "noisy"})
	const total = keepLines + 50
	for i := range total {
		p.Emit(Event{Kind: Output, Host: "h", ID: 1, Line: fmt.Sprint("line ", i)})
	}
	if n := len(p.cmds.get(cmdKey{"h", 1}).held.lines); n != keepLines {
		t.Fatalf("held %d lines, want %d", n, keepLines)
	}
	p.Emit(Event{Kind: CommandEnd, Host: "h", ID: 1, ExitStatus: status(1)})
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
				p.Emit(Event{Kind: CommandStart, Host: host, ID: id, Command: "script", Label: fmt.Sprint("cmd ", c)})
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

// Task headers appear only for tasks that show something: hook points and
// tasks that only invoke others stay silent. A task's header shows as its
// first command starts, not when it ends.
func TestPrettyHeadersOnlyForTasksWithOutput(t *testing.T) {
	var buf bytes.Buffer
	p := NewPretty(&buf, PrettyOptions{})
	p.Emit(Event{Kind: TaskStart, Task: "deploy"})
	p.Emit(Event{Kind: TaskStart, Task: "deploy:starting"})
	p.Emit(Event{Kind: TaskEnd, Task: "deploy:starting"})
	p.Emit(Event{Kind: TaskStart, Task: "deploy:check"})
	p.Emit(Event{Kind: CommandStart, Task: "deploy:check", Host: "web1", ID: 1, Command: "true"})
	if got := buf.String(); got != "== deploy:check\n" {
		t.Errorf("while the first command runs: %q", got)
	}
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
