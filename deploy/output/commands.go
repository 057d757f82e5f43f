package output

import (
	"slices"
	"strings"
	"time"
)

// keepLines bounds the output held per running command: enough to show
// why a command failed, small enough that a noisy command cannot eat
// memory. Earlier lines are dropped and counted.
const keepLines = 200

// cmdKey identifies one command: IDs are unique per host at least.
type cmdKey struct {
	host string
	id   uint64
}

// command is what a format remembers of a running command.
type command struct {
	key    cmdKey
	task   string
	label  string
	script string // the event's Command
	// user is the user's own command (no label): its output is shown as
	// it arrives.
	user  bool
	start time.Time
	// startShown and outputShown say what was printed already: a start
	// line, output lines.
	startShown  bool
	outputShown bool
	held        tail // output not shown yet
	notices     int  // "still running" lines printed
}

func newCommand(e Event, now time.Time) *command {
	start := e.Time
	if start.IsZero() {
		start = now
	}
	return &command{key: cmdKey{e.Host, e.ID}, task: e.Task, label: e.Label, script: e.Command, user: e.Label == "", start: start}
}

// shown is how a command is named on one line: its label, else the first
// line of the command itself.
func (c *command) shown() string {
	if c.label != "" {
		return c.label
	}
	return firstLine(c.script)
}

// commands is the set of running commands of one format, in start order
// (the status line lists them so).
type commands struct {
	byKey map[cmdKey]*command
	order []*command
}

func (cs *commands) add(c *command) {
	if cs.byKey == nil {
		cs.byKey = map[cmdKey]*command{}
	}
	if old := cs.byKey[c.key]; old != nil {
		cs.remove(old.key)
	}
	cs.byKey[c.key] = c
	cs.order = append(cs.order, c)
}

func (cs *commands) get(k cmdKey) *command { return cs.byKey[k] }

// remove forgets a command and returns it (nil if it was not running).
func (cs *commands) remove(k cmdKey) *command {
	c := cs.byKey[k]
	if c == nil {
		return nil
	}
	delete(cs.byKey, k)
	cs.order = slices.DeleteFunc(cs.order, func(x *command) bool { return x == c })
	return c
}

func (cs *commands) len() int { return len(cs.order) }

// ended returns the running command an end event closes, or one made from
// the event itself when its start was never seen. The end event's label
// and command win over the start's when set.
func (cs *commands) ended(e Event, now time.Time) *command {
	c := cs.remove(cmdKey{e.Host, e.ID})
	if c == nil {
		c = newCommand(e, now)
	}
	if e.Label != "" {
		c.label, c.user = e.Label, false
	}
	if e.Command != "" {
		c.script = e.Command
	}
	return c
}

// firstLine keeps the first line of a multi-line command, marked as cut:
// a generated script's newlines would otherwise show as literal \n.
func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return strings.TrimSpace(s[:i]) + " …"
	}
	return s
}

// scriptLines splits a script into the lines -vv shows.
func scriptLines(s string) []string {
	return strings.Split(strings.TrimRight(strings.ReplaceAll(s, "\r\n", "\n"), "\n"), "\n")
}

type outLine struct {
	stream Stream
	line   string
}

// tail keeps the last keepLines lines of one command in a ring, both
// streams together in the order they arrived.
type tail struct {
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

// taskStack follows task nesting to know the task the user asked for (the
// root): its messages are the run's end, shown even under Quiet.
type taskStack struct {
	stack []string
}

func (t *taskStack) started(name string) { t.stack = append(t.stack, name) }

// ended pops name (and anything started inside it that did not end) and
// reports whether it was the root.
func (t *taskStack) ended(name string) bool {
	for i := len(t.stack) - 1; i >= 0; i-- {
		if t.stack[i] == name {
			t.stack = t.stack[:i]
			return i == 0
		}
	}
	return len(t.stack) == 0
}

func (t *taskStack) root() string {
	if len(t.stack) == 0 {
		return ""
	}
	return t.stack[0]
}
