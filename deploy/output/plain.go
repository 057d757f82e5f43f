package output

import (
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PlainOptions tunes the plain format. The zero value is Normal.
type PlainOptions struct {
	// Verbosity is how much is shown; see Verbosity.
	Verbosity Verbosity
	// LongAfter is when a running command gets a "running" line (then one
	// a minute), so a CI log shows a long command is not hung; 0 is
	// DefaultLongAfter, negative never. Quiet prints none. Call Close at
	// the end of the run.
	LongAfter time.Duration
	// Clock drives the "running" lines; nil is the system clock.
	Clock Clock
}

// Plain is the format for pipes and CI logs: no colour, nothing redrawn,
// and every line of a host starts with "[host] " so interleaved hosts can
// be told apart and grepped. It is about as short as pretty: a header per
// task that shows something, one line per finished command named by its
// label, the user's commands' output as it arrives, davit's own commands'
// output only when they fail (before the failed line), and the end of the
// task that was asked for.
//
//	== deploy:check
//	[web1] ok (12ms): check the layout
//	[web2] problem: /srv/app is not writable
//	[web2] failed (3ms, exit 1): check the layout
//	== deploy:check failed (15ms)
//	== deploy failed (20ms)
type Plain struct {
	verb  Verbosity
	long  time.Duration
	clock Clock

	mu     sync.Mutex
	w      io.Writer
	hosts  hostTable
	cmds   commands
	tasks  taskStack
	header string // the task whose "== name" line was printed last
	tick   ticking
	closed bool
}

// NewPlain returns the plain format writing to w, with Normal verbosity.
func NewPlain(w io.Writer) *Plain { return NewPlainWith(w, PlainOptions{}) }

// NewPlainWith returns the plain format writing to w.
func NewPlainWith(w io.Writer, opts PlainOptions) *Plain {
	if opts.Clock == nil {
		opts.Clock = SystemClock()
	}
	p := &Plain{verb: opts.Verbosity, clock: opts.Clock, w: w}
	if p.verb >= Normal {
		p.long = longAfter(opts.LongAfter)
	}
	p.tick = ticking{clock: opts.Clock, fn: p.onTick}
	return p
}

func hostPrefix(host string) string {
	if host == "" {
		return ""
	}
	return "[" + host + "] "
}

// Emit implements Sink.
func (p *Plain) Emit(e Event) {
	prefix := hostPrefix(e.Host)
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Kind == HostInfo {
		p.hosts.add(e)
		return
	}
	var lines []string
	if task := p.hosts.task; len(p.hosts.rows) > 0 {
		lines = p.headerFor(lines, task)
		lines = append(lines, tableLines(p.hosts.flush())...)
	}
	switch e.Kind {
	case TableKind:
		lines = p.headerFor(lines, e.Task)
		lines = append(lines, tableLines(e.Table.render())...)
	case TaskStart:
		p.tasks.started(e.Task)
		if p.verb >= VeryVerbose {
			lines = p.headerFor(lines, e.Task)
		}
	case TaskEnd:
		root := p.tasks.ended(e.Task)
		switch {
		case e.Error != "":
			// The error itself reaches the user once, from the CLI.
			lines = append(lines, prefix+"== "+e.Task+" failed ("+fmtDuration(e.Duration)+")")
		case root || p.verb >= VeryVerbose:
			lines = append(lines, prefix+"== "+e.Task+" done ("+fmtDuration(e.Duration)+")")
		}
	case CommandStart:
		c := newCommand(e, p.clock.Now())
		p.cmds.add(c)
		if p.verb >= Verbose {
			lines = p.headerFor(lines, e.Task)
			lines = append(lines, p.startLines(c)...)
		}
	case Output:
		c := p.cmds.get(cmdKey{e.Host, e.ID})
		switch {
		case c == nil && p.verb >= Normal, c != nil && p.verb.showsOutput(c.user):
			lines = p.headerFor(lines, e.Task)
			lines = append(lines, prefix+e.Line)
			if c != nil {
				c.outputShown = true
			}
		case c != nil:
			c.held.add(outLine{e.Stream, e.Line})
		}
	case CommandEnd:
		c := p.cmds.ended(e, p.clock.Now())
		bad := failed(e)
		if !bad && p.verb < Normal {
			break
		}
		lines = p.headerFor(lines, e.Task)
		if bad && !c.outputShown {
			if c.held.dropped > 0 {
				lines = append(lines, prefix+"["+strconv.Itoa(c.held.dropped)+" earlier lines dropped]")
			}
			c.held.each(func(l outLine) { lines = append(lines, prefix+l.line) })
		}
		word := "ok"
		if bad {
			word = "failed"
		} else if answeredNo(e) {
			word = "false"
		}
		lines = append(lines, prefix+word+" ("+endDetail(e)+"): "+c.shown())
	case Message:
		if !p.verb.showsMessage(e, p.tasks.root()) {
			break
		}
		lines = p.headerFor(lines, e.Task)
		for _, l := range messageLines(e.Line) {
			lines = append(lines, prefix+level(e)+": "+l)
		}
	}
	if p.cmds.len() > 0 && p.long > 0 && !p.closed {
		p.tick.start()
	} else {
		p.tick.stop()
	}
	if len(lines) > 0 {
		io.WriteString(p.w, strings.Join(lines, "\n")+"\n")
	}
}

// headerFor appends the "== task" line if the task is not the one whose
// header was printed last.
func (p *Plain) headerFor(lines []string, task string) []string {
	if task == "" || task == p.header {
		return lines
	}
	p.header = task
	return append(lines, "== "+task)
}

// startLines announce a command: "run:" and its name, and under
// VeryVerbose its script, a line of the log per line of the script.
func (p *Plain) startLines(c *command) []string {
	prefix := hostPrefix(c.key.host)
	lines := []string{prefix + "run: " + c.shown()}
	if p.verb >= VeryVerbose && c.script != "" && c.script != c.shown() {
		for i, l := range scriptLines(c.script) {
			sign := "$ "
			if i > 0 {
				sign = "> "
			}
			lines = append(lines, prefix+sign+l)
		}
	}
	return lines
}

// onTick prints the "running" lines that are due.
func (p *Plain) onTick(now time.Time, quit <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if stopped(quit) {
		return
	}
	var lines []string
	p.cmds.dueNotices(now, p.long, func(c *command, elapsed time.Duration) {
		lines = p.headerFor(lines, c.task)
		lines = append(lines, hostPrefix(c.key.host)+"running ("+fmtElapsed(elapsed)+"): "+c.shown())
	})
	if len(lines) > 0 {
		io.WriteString(p.w, strings.Join(lines, "\n")+"\n")
	}
}

// Close stops the ticks of the "running" lines and waits for them to
// end. Events after Close are still printed. It always returns nil.
func (p *Plain) Close() error {
	p.mu.Lock()
	p.closed = true
	p.tick.stop()
	p.mu.Unlock()
	p.tick.wait()
	return nil
}
