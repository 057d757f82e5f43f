package output

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"
)

// keepLines bounds the output Pretty holds per running command: enough to
// show why a command failed, small enough that a noisy command cannot eat
// memory. Earlier lines are dropped and counted.
const keepLines = 200

// PrettyOptions tunes the pretty format.
type PrettyOptions struct {
	// Color adds ANSI colours; see ColorEnabled.
	Color bool
	// Verbose streams every command's start and output as it happens,
	// instead of showing output only when a command fails.
	Verbose bool
}

// Pretty is the terminal format: a header per task and one line per
// finished command, with the command's output only when it failed, so a
// healthy deploy fits on a screen and a broken one shows why.
//
//	== deploy:check
//	web1 ✔ mkdir -p /x (12ms)
//	web2 ✘ test -d /y (3ms, exit 1)
//	    no such directory
type Pretty struct {
	opts PrettyOptions

	mu        sync.Mutex
	w         io.Writer
	hostWidth int
	cmds      map[cmdKey]*tail
	// header is the task whose "== name" line was printed last. Headers
	// are printed when a task first shows something, so the many tasks of
	// a flow that only group others (or are hook points) stay silent.
	header string
	hosts  hostTable
}

// cmdKey identifies one command: IDs are unique per host at least.
type cmdKey struct {
	host string
	id   uint64
}

// NewPretty returns the pretty format writing to w.
func NewPretty(w io.Writer, opts PrettyOptions) *Pretty {
	return &Pretty{opts: opts, w: w, cmds: map[cmdKey]*tail{}}
}

// Emit implements Sink.
func (p *Pretty) Emit(e Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := utf8.RuneCountInString(e.Host); n > p.hostWidth {
		p.hostWidth = n
	}
	var b strings.Builder
	if e.Kind != HostInfo {
		b.WriteString(p.hosts.flush())
	}
	if e.Kind != TaskStart && e.Kind != TaskEnd && e.Task != "" && e.Task != p.header && !p.buffered(e) {
		b.WriteString(p.paint(ansiBold, "== "+e.Task) + "\n")
		p.header = e.Task
	}
	key := cmdKey{e.Host, e.ID}
	switch e.Kind {
	case HostInfo:
		p.hosts.add(e.Server)
	case TaskStart, TaskEnd:
		// Silent: see header. A failure already showed on its command, and
		// a task's error reaches the user once, from the CLI.
	case CommandStart:
		if p.opts.Verbose {
			fmt.Fprintf(&b, "%s %s %s\n", p.host(e.Host), p.paint(ansiBlue, "→"), oneLine(shown(e)))
		} else {
			p.cmds[key] = &tail{command: shown(e)}
		}
	case Output:
		t := p.cmds[key]
		if p.opts.Verbose || e.ID == 0 {
			// Output that belongs to no command has nothing to wait for.
			p.outputLine(&b, true, e.Host, e.Stream, e.Line)
			break
		}
		if t == nil {
			t = &tail{}
			p.cmds[key] = t
		}
		t.add(outLine{e.Stream, e.Line})
	case CommandEnd:
		t := p.cmds[key]
		delete(p.cmds, key)
		command := shown(e)
		if command == "" && t != nil {
			command = t.command
		}
		mark := p.paint(ansiGreen, "✔")
		detail := p.paint(ansiDim, "("+endDetail(e)+")")
		bad := failed(e)
		if answeredNo(e) {
			mark = p.paint(ansiDim, "○")
		}
		if bad {
			mark = p.paint(ansiRed, "✘")
			detail = p.paint(ansiRed, "("+endDetail(e)+")")
		}
		fmt.Fprintf(&b, "%s %s %s %s\n", p.host(e.Host), mark, oneLine(command), detail)
		if bad && t != nil {
			if t.dropped > 0 {
				b.WriteString("    " + p.paint(ansiDim, fmt.Sprintf("[%d earlier lines dropped]", t.dropped)) + "\n")
			}
			t.each(func(l outLine) { p.outputLine(&b, false, "", l.stream, l.line) })
		}
	case Message:
		prefix := ""
		if e.Host != "" {
			prefix = p.host(e.Host) + " "
		}
		color := ansiBlue
		switch level(e) {
		case "warn":
			color = ansiYellow
		case "error":
			color = ansiRed
		}
		for _, l := range messageLines(e.Line) {
			b.WriteString(prefix + p.paint(color, level(e)+":") + " " + l + "\n")
		}
	}
	if b.Len() > 0 {
		io.WriteString(p.w, b.String())
	}
}

// outputLine writes one line of a command's output: after its host when
// streamed (lines of many hosts interleave), indented under the command's
// line otherwise. Stderr is yellow in colour.
func (p *Pretty) outputLine(b *strings.Builder, streamed bool, host string, s Stream, line string) {
	if streamed {
		b.WriteString(p.host(host) + " " + p.paint(ansiDim, "│") + " ")
	} else {
		b.WriteString("    ")
	}
	if s == Stderr {
		line = p.paint(ansiYellow, line)
	}
	b.WriteString(line + "\n")
}

// host pads the host name to the widest seen so far, so marks and commands
// line up once every host has spoken.
func (p *Pretty) host(h string) string {
	pad := p.hostWidth - utf8.RuneCountInString(h)
	return p.paint(ansiCyan, h) + strings.Repeat(" ", max(pad, 0))
}

func (p *Pretty) paint(code, s string) string {
	if !p.opts.Color || s == "" {
		return s
	}
	return code + s + ansiReset
}

type outLine struct {
	stream Stream
	line   string
}

// tail keeps the last keepLines lines of one command in a ring.
type tail struct {
	command string
	lines   []outLine
	next    int
	dropped int
}

func (t *tail) add(l outLine) {
	if len(t.lines) < keepLines {
		t.lines = append(t.lines, l)
		return
	}
	t.lines[t.next] = l
	t.next = (t.next + 1) % keepLines
	t.dropped++
}

func (t *tail) each(fn func(outLine)) {
	for i := range t.lines {
		fn(t.lines[(t.next+i)%len(t.lines)])
	}
}

// shown is how the pretty format names a command: its label when it has
// one (generated scripts are long), else the command itself.
func shown(e Event) string {
	if e.Label != "" {
		return e.Label
	}
	return e.Command
}

// buffered reports events that print nothing now: a command's start and
// output wait for its end unless verbose.
func (p *Pretty) buffered(e Event) bool {
	if p.opts.Verbose {
		return false
	}
	return e.Kind == CommandStart || (e.Kind == Output && e.ID != 0) || e.Kind == HostInfo
}
