package output

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// eraseLine is the ANSI "erase to end of line" sequence: after a carriage
// return it clears the status line before something else is printed there.
const eraseLine = "\x1b[K"

// statusWidth is the width the status line is cut to when no Width is
// set: a status line that wrapped could not be redrawn in place.
const statusWidth = 80

// statusNameWidth bounds a command's name in the status line.
const statusNameWidth = 32

// PrettyOptions tunes the pretty format. The zero value is the plain
// Normal verbosity without colour, live status line or width limit.
type PrettyOptions struct {
	// Color adds ANSI colours; see ColorEnabled (off under NO_COLOR).
	Color bool
	// Verbosity is how much is shown; see Verbosity.
	Verbosity Verbosity
	// Live shows what is running in a status line at the bottom, redrawn
	// in place every second with its elapsed time; set it only when the
	// writer is a terminal. Call Close at the end of the run, which stops
	// the ticks and clears the line.
	Live bool
	// Width cuts every line to this many columns (the terminal's width);
	// 0 keeps lines whole. The run log always keeps them whole.
	Width int
	// Clock drives the status line and "still running" lines; nil is the
	// system clock. Tests pass a fake one.
	Clock Clock
	// LongAfter is when, without Live, a running command gets a "still
	// running" line (then one a minute); 0 is DefaultLongAfter, negative
	// never. Quiet prints none.
	LongAfter time.Duration
}

// Pretty is the terminal format: a header per task that shows something,
// one line per finished command named by its label, the user's commands'
// output as it arrives, and davit's own commands' output only when they
// fail, so a healthy deploy fits on a screen and a broken one shows why.
// With Live, a status line at the bottom says what runs and for how long.
//
//	== deploy:check
//	web1 ✔ check the layout (12ms)
//	web2 ✘ check the layout (3ms, exit 1)
//	    problem: /srv/app is not writable
//	== app:restart
//	web1 → ./restart.sh
//	web1 │ restarted pid 4242
//	web1 ✔ ./restart.sh (1.2s)
//	running: ./restart.sh on web2 (3s)
type Pretty struct {
	opts PrettyOptions
	verb Verbosity
	long time.Duration // when a "still running" line is due; <= 0 never

	mu        sync.Mutex
	w         io.Writer
	hostWidth int
	cmds      commands
	tasks     taskStack
	// header is the task whose "== name" line was printed last. Headers
	// are printed when a task first shows something, so the many tasks of
	// a flow that only group others (or are hook points) stay silent.
	header string
	hosts  hostTable
	tick   ticking
	status string // the status line on the screen now; "" when none
	drawn  bool   // a LiveWriter drawing is on the bottom line
	closed bool
}

// NewPretty returns the pretty format writing to w.
func NewPretty(w io.Writer, opts PrettyOptions) *Pretty {
	if opts.Clock == nil {
		opts.Clock = SystemClock()
	}
	p := &Pretty{opts: opts, w: w, verb: opts.Verbosity}
	if !opts.Live && p.verb >= Normal {
		p.long = longAfter(opts.LongAfter)
	}
	p.tick = ticking{clock: opts.Clock, fn: p.onTick}
	return p
}

// Emit implements Sink.
func (p *Pretty) Emit(e Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.opts.Clock.Now()
	p.hostWidth = max(p.hostWidth, displayWidth(e.Host))
	var lines []string
	if task := p.hosts.task; e.Kind != HostInfo && len(p.hosts.rows) > 0 {
		lines = p.headerFor(lines, task)
		lines = append(lines, tableLines(p.hosts.flush())...)
	}
	body := p.render(e, now)
	// A command's start shows its task's header at once, so the screen
	// says where the run is while the command runs.
	if (len(body) > 0 || e.Kind == CommandStart && p.verb >= Normal) && e.Kind != TaskStart && e.Kind != TaskEnd {
		lines = p.headerFor(lines, e.Task)
	}
	lines = append(lines, body...)
	p.updateTicking()
	p.write(lines, now)
}

// render returns the lines an event prints, before any header.
func (p *Pretty) render(e Event, now time.Time) []string {
	var lines []string
	key := cmdKey{e.Host, e.ID}
	switch e.Kind {
	case HostInfo:
		p.hosts.add(e)
	case TableKind:
		lines = append(lines, tableLines(e.Table.render())...)
	case TaskStart:
		p.tasks.started(e.Task)
	case TaskEnd:
		// Silent: see header. A failure already showed on its command, and
		// a task's error reaches the user once, from the CLI.
		p.tasks.ended(e.Task)
	case CommandStart:
		c := newCommand(e, now)
		p.cmds.add(c)
		if p.verb >= Verbose {
			lines = p.startLines(c)
		}
	case Output:
		c := p.cmds.get(key)
		switch {
		case c == nil:
			// Output that belongs to no running command has nothing to
			// wait for.
			if p.verb >= Normal {
				lines = append(lines, p.streamed(e.Host, e.Stream, e.Line))
			}
		case p.verb.showsOutput(c.user):
			if !c.startShown {
				// Name the command its output belongs to, as it starts
				// to show, so lines of many hosts can be told apart.
				lines = p.startLines(c)
			}
			lines = append(lines, p.streamed(e.Host, e.Stream, e.Line))
			c.outputShown = true
		default:
			c.held.add(outLine{e.Stream, e.Line})
		}
	case CommandEnd:
		c := p.cmds.ended(e, now)
		bad := failed(e)
		if !bad && p.verb < Normal {
			break
		}
		mark := p.paint(ansiGreen, "✔")
		detail := p.paint(ansiDim, "("+endDetail(e)+")")
		if answeredNo(e) {
			mark = p.paint(ansiDim, "○")
		}
		if bad {
			mark = p.paint(ansiRed, "✘")
			detail = p.paint(ansiRed, "("+endDetail(e)+")")
		}
		lines = append(lines, p.nameLine(p.host(e.Host)+" "+mark+" ", c.shown(), " "+detail))
		if bad && !c.outputShown {
			if c.held.dropped > 0 {
				lines = append(lines, "    "+p.paint(ansiDim, fmt.Sprintf("[%d earlier lines dropped]", c.held.dropped)))
			}
			c.held.each(func(l outLine) { lines = append(lines, "    "+p.stream(l.stream, l.line)) })
		}
	case Message:
		if !p.verb.showsMessage(e, p.tasks.root()) {
			break
		}
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
			lines = append(lines, prefix+p.paint(color, level(e)+":")+" "+l)
		}
	}
	return lines
}

// headerFor appends the "== task" line if the task is not the one whose
// header was printed last.
func (p *Pretty) headerFor(lines []string, task string) []string {
	if task == "" || task == p.header {
		return lines
	}
	p.header = task
	return append(lines, p.paint(ansiBold, "== "+task))
}

// startLines announce a command: its name, and under VeryVerbose the
// script it runs when that says more than the name.
func (p *Pretty) startLines(c *command) []string {
	c.startShown = true
	lines := []string{p.host(c.key.host) + " " + p.paint(ansiBlue, "→") + " " + c.shown()}
	if p.verb >= VeryVerbose && c.script != "" && c.script != c.shown() {
		for i, l := range scriptLines(c.script) {
			sign := "$"
			if i > 0 {
				sign = ">"
			}
			lines = append(lines, p.host(c.key.host)+" "+p.paint(ansiDim, sign+" "+l))
		}
	}
	return lines
}

// nameLine joins a line that names a command, cutting the name rather
// than the duration after it when the line is too wide.
func (p *Pretty) nameLine(before, name, after string) string {
	if p.opts.Width > 0 {
		name = cutToWidth(name, max(p.opts.Width-displayWidth(before)-displayWidth(after), minNameWidth))
	}
	return before + name + after
}

// minNameWidth is the least a cut name keeps, however narrow the terminal.
const minNameWidth = 10

// streamed is one line of a command's output as it arrives, after its
// host: lines of many hosts interleave.
func (p *Pretty) streamed(host string, s Stream, line string) string {
	return p.host(host) + " " + p.paint(ansiDim, "│") + " " + p.stream(s, line)
}

// stream paints stderr yellow.
func (p *Pretty) stream(s Stream, line string) string {
	if s == Stderr {
		return p.paint(ansiYellow, line)
	}
	return line
}

// onTick redraws the status line and prints the "still running" lines
// that are due.
func (p *Pretty) onTick(now time.Time, quit <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if stopped(quit) {
		return
	}
	var lines []string
	p.cmds.dueNotices(now, p.long, func(c *command, elapsed time.Duration) {
		lines = p.headerFor(lines, c.task)
		lines = append(lines, p.nameLine(p.host(c.key.host)+" "+p.paint(ansiBlue, "⋯")+" ", c.shown(),
			" "+p.paint(ansiDim, "(running "+fmtElapsed(elapsed)+")")))
	})
	p.write(lines, now)
}

// updateTicking runs the ticks while a command runs and something needs
// them: the status line, or "still running" lines.
func (p *Pretty) updateTicking() {
	if p.cmds.len() > 0 && !p.closed && (p.opts.Live || p.long > 0) {
		p.tick.start()
	} else {
		p.tick.stop()
	}
}

// write prints lines, each cut to the width, above the status line: the
// status line is erased first and drawn again after them.
func (p *Pretty) write(lines []string, now time.Time) {
	status := p.statusLine(now)
	if len(lines) == 0 && status == p.status {
		return
	}
	var b strings.Builder
	if p.status != "" || p.drawn {
		b.WriteString("\r" + eraseLine)
		p.drawn = false
	}
	for _, l := range lines {
		b.WriteString(cutToWidth(l, p.opts.Width) + "\n")
	}
	b.WriteString(status)
	p.status = status
	io.WriteString(p.w, b.String())
}

// statusLine lists the running commands, those with the same name
// together, oldest first:
//
//	running: bundle install on web1, web2, web3 +9 (1m3s) · tar on db1 (2s)
func (p *Pretty) statusLine(now time.Time) string {
	if !p.opts.Live || p.closed || p.cmds.len() == 0 {
		return ""
	}
	type group struct {
		name  string
		hosts []string
		start time.Time
	}
	var groups []*group
	byName := map[string]*group{}
	for _, c := range p.cmds.order {
		g := byName[c.shown()]
		if g == nil {
			g = &group{name: c.shown(), start: c.start}
			byName[g.name] = g
			groups = append(groups, g)
		}
		if len(g.hosts) == 0 || g.hosts[len(g.hosts)-1] != c.key.host {
			g.hosts = append(g.hosts, c.key.host)
		}
		if c.start.Before(g.start) {
			g.start = c.start
		}
	}
	parts := make([]string, len(groups))
	for i, g := range groups {
		hosts := strings.Join(g.hosts[:min(len(g.hosts), 3)], ", ")
		if len(g.hosts) > 3 {
			hosts += fmt.Sprintf(" +%d", len(g.hosts)-3)
		}
		// A long name is cut so the hosts and the time stay in sight.
		parts[i] = fmt.Sprintf("%s on %s (%s)", cutToWidth(g.name, statusNameWidth), hosts, fmtElapsed(now.Sub(g.start)))
	}
	width := p.opts.Width
	if width <= 0 {
		width = statusWidth
	}
	// One column short of the width: writing the last column leaves some
	// terminals waiting to wrap, and the carriage return would then redraw
	// on the row below.
	return cutToWidth(p.paint(ansiDim, "running: "+strings.Join(parts, " · ")), width-1)
}

// Close stops the status line's ticks, waits for them to end and clears
// the line. Events emitted after Close are still printed, without a
// status line. It always returns nil; calling it again does nothing.
func (p *Pretty) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.tick.stop()
		p.write(nil, p.opts.Clock.Now())
	}
	p.mu.Unlock()
	p.tick.wait()
	return nil
}

// tableLines splits a rendered table into lines.
func tableLines(table string) []string {
	if table == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(table, "\n"), "\n")
}

// host pads the host name to the widest seen so far, so marks and commands
// line up once every host has spoken.
func (p *Pretty) host(h string) string {
	pad := p.hostWidth - displayWidth(h)
	return p.paint(ansiCyan, h) + strings.Repeat(" ", max(pad, 0))
}

func (p *Pretty) paint(code, s string) string {
	if !p.opts.Color || s == "" {
		return s
	}
	return code + s + ansiReset
}
