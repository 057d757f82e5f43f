package tasks

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"

	"github.com/davit-deploy/davit/deploy"
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
	_, cerr := h.run([]string{StepsScript(steps, mark)}, opts, runMode{capture: &buf, marker: mark})
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
