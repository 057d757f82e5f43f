package tasks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/output"
)

// Step is one piece of shell work that can share a command with others
// (see HostContext.RunSteps). Over SSH every command is a session and a
// shell on the server, which on a fleet costs more than the small things
// a deploy step does; steps let a recipe keep its steps separate in code
// and in errors while paying for one command.
type Step struct {
	// Name says what the step does ("take the deploy lock"); a failing
	// steps command names the failing step by it.
	Name string
	// Script is the step's shell text: a constant (a recipe embeds it
	// from a file), never text built from values. It runs as the body of
	// a shell function, so it reads its values as positional parameters
	// ("$1", "$@"), fails with return N (exit would end the whole
	// command), and must not rely on the directory or variables an
	// earlier step of the command left (each cds where it works and sets
	// what it reads).
	Script string
	// Args are the step's positional parameters, quoted by deploy.Quote.
	Args []string
	// Env is exported for the whole command (the steps of one command
	// must not disagree on a value).
	Env map[string]string
	// Stdin is fed to this step (a password for --password-from-stdin);
	// at most one step of a command may have one, and the others then
	// read /dev/null, so none of them can swallow it.
	Stdin io.Reader
}

// StepError is a steps command that stopped at one of its steps: the
// step's name, and the command error narrowed to that step (its name and
// arguments, the exit status it returned, the stderr tail of the command,
// which ends with the failing step's own).
type StepError struct {
	// Index is the failing step's position in the command.
	Index int
	Step  string
	Err   *CommandError
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }

func (e *StepError) Unwrap() error { return e.Err }

// StepsScript is the shell text RunSteps sends for steps, with mark as the
// marker that announces each step: every step a shell function defined
// from its constant script (step0, step1, ...), then the calls, in order,
// with their quoted arguments, each after its marker, stopping at the
// first that fails. A function call costs no fork or exec on the host,
// unlike a subshell or an sh -c per step. One step needs no marker.
func StepsScript(steps []Step, mark string) string {
	reader := -1 // the step that reads stdin, if any
	for i, s := range steps {
		if s.Stdin != nil {
			reader = i
		}
	}
	var b strings.Builder
	for i, s := range steps {
		fmt.Fprintf(&b, "step%d() {\n%s\n}\n", i, strings.TrimRight(s.Script, "\n"))
	}
	for i, s := range steps {
		if len(steps) > 1 {
			fmt.Fprintf(&b, "echo %s%d\n", mark, i)
		}
		b.WriteString("step" + strconv.Itoa(i))
		for _, a := range s.Args {
			b.WriteString(" " + deploy.Quote(a))
		}
		// Only the step that has stdin may read it: a command of another
		// step reading it would swallow what was meant for that one.
		if reader >= 0 && i != reader {
			b.WriteString(" </dev/null")
		}
		if i < len(steps)-1 {
			// exit without a status is the failing step's status.
			b.WriteString(" || exit")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// RunSteps runs steps, in order, as ONE command on the host and returns
// each step's stdout (without trailing newlines): one entry per step when
// the command succeeded (a step that printed nothing, or a dry run's
// backend that ran nothing, gives ""), one per started step when it
// failed. It stops at the first step that returns non-zero and returns a
// *StepError naming it; the steps after it do not run. A command that
// could not finish (a lost connection) is a *StepError for the step it was
// in. opts applies to the whole command; an empty opts.Label becomes the
// steps' names, so the pretty output says what the command does instead
// of showing its script.
func (h *HostContext) RunSteps(steps []Step, opts CommandOptions) ([]string, error) {
	return h.runSteps(steps, opts, nil)
}

func (h *HostContext) runSteps(steps []Step, opts CommandOptions, sh *Shell) ([]string, error) {
	if len(steps) == 0 {
		return nil, nil
	}
	var names []string
	for _, s := range steps {
		if strings.TrimSpace(s.Script) == "" {
			return nil, fmt.Errorf("step %q: empty script", s.Name)
		}
		names = append(names, s.Name)
		if len(s.Env) > 0 {
			if opts.Env == nil {
				opts.Env = map[string]string{}
			} else {
				opts.Env = maps.Clone(opts.Env)
			}
			maps.Copy(opts.Env, s.Env)
		}
		if s.Stdin != nil {
			if opts.Stdin != nil {
				return nil, errors.New("steps: more than one step reads stdin")
			}
			opts.Stdin = s.Stdin
		}
	}
	if opts.Label == "" {
		opts.Label = strings.Join(names, ", ")
	}
	// Each step announces itself on stdout with a marker no output can
	// forge (a random token), so the output splits into the steps', and
	// the last marker seen tells which step failed.
	mark := ""
	if len(steps) > 1 {
		tok := make([]byte, 8)
		if _, err := rand.Read(tok); err != nil {
			return nil, err
		}
		mark = "@@davit-step-" + hex.EncodeToString(tok) + "-"
	}
	var buf strings.Builder
	var cerr *CommandError
	if sh != nil {
		cerr = h.runInShell(sh, StepsScript(steps, mark), opts, mark, &buf)
	} else {
		_, cerr = h.run([]string{StepsScript(steps, mark)}, opts, runMode{capture: &buf, marker: mark})
	}
	var outs []string
	if len(steps) == 1 {
		outs = []string{strings.TrimRight(buf.String(), "\r\n")}
	} else {
		outs = splitSteps(buf.String(), mark, len(steps))
	}
	if cerr != nil {
		i := max(len(outs)-1, 0)
		return outs, stepError(i, steps[i], cerr)
	}
	for len(outs) < len(steps) {
		outs = append(outs, "")
	}
	return outs, nil
}

// splitSteps cuts a steps command's stdout at its markers: one entry per
// step that started.
func splitSteps(out, mark string, n int) []string {
	var outs []string
	for i := range n {
		m := mark + strconv.Itoa(i) + "\n"
		j := strings.Index(out, m)
		if j < 0 {
			break
		}
		if i > 0 {
			outs[i-1] = strings.TrimRight(out[:j], "\r\n")
		}
		out = out[j+len(m):]
		outs = append(outs, "")
	}
	if len(outs) > 0 {
		outs[len(outs)-1] = strings.TrimRight(out, "\r\n")
	}
	return outs
}

// stepError narrows a steps command's error to step s: its name and
// arguments stand for the command, so the message says what failed
// rather than quoting the whole command.
func stepError(i int, s Step, cerr *CommandError) *StepError {
	e := *cerr
	words := []string{"step" + strconv.Itoa(i)}
	for _, a := range s.Args {
		words = append(words, deploy.Quote(a))
	}
	e.Command = strings.Join(words, " ")
	return &StepError{Index: i, Step: s.Name, Err: &e}
}

// Shell is one shell kept open on a host for several steps commands, run
// one after another in it (HostContext.RunStepsIn). Over SSH every
// command is a session, and every session a fork of sshd and a login
// shell with its startup files on the host; a flow that talks to each
// host five times with fleet-wide barriers in between (check, lock,
// update, switch, finish) pays that once per host instead of five times.
// Each command still runs in a subshell of its own, with its own
// directory, environment and exit, and still emits its own events, so
// logs and errors read as before. The zero value is ready to use; Close
// ends it. A Shell serves one host.
type Shell struct {
	mu     sync.Mutex // one command at a time
	state  int        // shellNew, shellOpen, shellDead, shellUnsupported
	closed bool
	stdin  *io.PipeWriter
	lines  chan shellLine
	ended  chan struct{} // closed when the shell's command returned
	err    error         // why it ended, once ended is closed
	cancel context.CancelFunc
	end    string // the marker that ends each command's output
	n      int    // commands run, for the marker
}

const (
	shellNew = iota
	shellOpen
	shellDead
	// shellUnsupported: the backend ran the shell's command without
	// keeping it open (a dry run's reports it and returns), so commands
	// run on their own.
	shellUnsupported
)

// shellLine is a line of the shell's stdout or stderr.
type shellLine struct {
	stderr bool
	text   string
}

// open starts the shell on h's host: sh reading commands from stdin,
// exec'd by the login shell so that only one shell stays.
func (s *Shell) open(h *HostContext) error {
	be, err := h.getBackend()
	if err != nil {
		return err
	}
	tok := make([]byte, 8)
	if _, err := rand.Read(tok); err != nil {
		return err
	}
	s.end = "@@davit-end-" + hex.EncodeToString(tok) + "-"
	ctx, cancel := context.WithCancel(h.ctx)
	pr, pw := io.Pipe()
	s.stdin, s.cancel = pw, cancel
	s.lines = make(chan shellLine, 1024)
	s.ended = make(chan struct{})
	send := func(stderr bool) *output.LineWriter {
		return output.NewLineWriter(func(l string) { s.lines <- shellLine{stderr, l} })
	}
	stdout, stderr := send(false), send(true)
	clean := false
	go func() {
		_, err := be.Run(ctx, &deploy.Command{Args: []string{"exec sh -s"}, Stdin: pr}, stdout, stderr)
		stdout.Flush()
		stderr.Flush()
		if err == nil {
			clean, err = true, errors.New("the host's shell ended")
		}
		s.err = err
		pr.CloseWithError(err) // a write after the end fails instead of blocking
		close(s.ended)
	}()
	// The shell answers before it gets its first command; a backend that
	// does not keep it open ends it cleanly instead.
	ready := s.end + "0"
	if _, err := io.WriteString(pw, "echo "+ready+"\n"); err != nil {
		<-s.ended
		if clean {
			s.state = shellUnsupported
			return nil
		}
		s.state = shellDead
		return s.err
	}
	for {
		select {
		case l := <-s.lines:
			if !l.stderr && strings.Contains(l.text, ready) {
				s.state = shellOpen
				return nil
			}
		case <-s.ended:
			for len(s.lines) > 0 {
				<-s.lines
			}
			if clean {
				s.state = shellUnsupported
				return nil
			}
			s.state = shellDead
			return s.err
		case <-h.ctx.Done():
			cancel()
			s.state = shellDead
			return h.ctx.Err()
		}
	}
}

// Close ends the shell: its input ends, so it exits; one that does not
// within a few seconds is stopped.
func (s *Shell) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = shellDead
	if s.stdin == nil || s.closed { // never started, or closed
		return nil
	}
	s.closed = true
	s.stdin.Close()
	select {
	case <-s.ended:
	case <-time.After(5 * time.Second):
	}
	s.cancel()
	<-s.ended
	return nil
}

// RunStepsIn is RunSteps in sh, the host's shell for a flow, started on
// first use. Steps that need what a shell reading its commands from stdin
// cannot give them (stdin, a pty, a timeout), a dry run and a nil sh run
// as their own command, as RunSteps does.
func (h *HostContext) RunStepsIn(sh *Shell, steps []Step, opts CommandOptions) ([]string, error) {
	if sh == nil || h.Context.Executor.DryRun || opts.Stdin != nil || opts.PTY || opts.Timeout > 0 ||
		slices.ContainsFunc(steps, func(s Step) bool { return s.Stdin != nil }) {
		return h.RunSteps(steps, opts)
	}
	return h.runSteps(steps, opts, sh)
}

// runInShell runs script, with opts, as one command in sh: the same
// events and errors as run, but written to the shell's stdin as
//
//	(
//	LINE
//	) </dev/null
//	echo END<n> $?; echo END<n> >&2
//
// where LINE is the rendered command (cd, umask, env, the script) and the
// END lines tell where its output ends and how it exited.
func (h *HostContext) runInShell(sh *Shell, script string, opts CommandOptions, mark string, capture *strings.Builder) *CommandError {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c, err := h.command([]string{script}, opts)
	if err == nil && sh.state == shellNew {
		err = sh.open(h)
	}
	if err == nil && sh.state == shellUnsupported {
		_, cerr := h.run([]string{script}, opts, runMode{capture: capture, marker: mark})
		return cerr
	}
	if err == nil && sh.state != shellOpen {
		err = errors.New("the host's shell was closed")
	}
	if err != nil {
		return &CommandError{Host: h.Host.String(), Command: script, ExitStatus: -1, Err: err}
	}
	id := h.Context.Executor.share().nextID.Add(1)
	disp := display(c)
	h.emit(output.Event{Kind: output.CommandStart, ID: id, Command: disp, Label: opts.Label})
	start := time.Now()
	sh.n++
	end := sh.end + strconv.Itoa(sh.n)
	in := "(\n" + c.String() + "\n) </dev/null\necho " + end + " $?; echo " + end + " >&2\n"
	status, err := -1, error(nil)
	if _, werr := io.WriteString(sh.stdin, in); werr != nil {
		err = werr
	}
	stderrTail := &tail{n: stderrTailLines}
	var lines []string
	outDone, errDone := false, false
	for err == nil && !(outDone && errDone) {
		var l shellLine
		select {
		case l = <-sh.lines:
		case <-sh.ended:
			select {
			case l = <-sh.lines: // what arrived before the end
			default:
				err = sh.err
				continue
			}
		case <-h.ctx.Done():
			err = h.ctx.Err()
			sh.state = shellDead
			sh.cancel()
			continue
		}
		text := l.text
		if i := strings.Index(text, end); i >= 0 {
			rest := strings.TrimSpace(text[i+len(end):])
			text = text[:i]
			if l.stderr {
				errDone = true
			} else {
				outDone = true
				status, _ = strconv.Atoi(rest)
			}
			if text == "" {
				continue
			}
		}
		if l.stderr {
			stderrTail.add(text)
			h.emit(output.Event{Kind: output.Output, ID: id, Stream: output.Stderr, Line: text})
			continue
		}
		lines = append(lines, text)
		if mark != "" {
			if i := strings.Index(text, mark); i >= 0 {
				if text = text[:i]; text == "" {
					continue
				}
			}
		}
		h.emit(output.Event{Kind: output.Output, ID: id, Stream: output.Stdout, Line: text})
	}
	if err != nil {
		status = -1
		if sh.state == shellOpen {
			sh.state = shellDead
			sh.cancel()
		}
	}
	for _, l := range lines {
		capture.WriteString(l + "\n")
	}
	ev := output.Event{Kind: output.CommandEnd, ID: id, Command: disp, Label: opts.Label, Duration: time.Since(start)}
	ev.ExitStatus = &status
	if err != nil {
		ev.Error = eventError(err)
	}
	h.emit(ev)
	if err != nil || status != 0 {
		return &CommandError{Host: h.Host.String(), Command: disp, ExitStatus: status, StderrTail: stderrTail.get(), Err: err}
	}
	return nil
}
