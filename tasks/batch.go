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
)

// Step is one piece of shell work that can share a command with others
// (see HostContext.Batch). Over SSH every command is a session and a
// shell on the server, which on a fleet costs more than the small things
// a deploy step does; steps let a recipe keep its steps separate in code
// and in errors while paying for one command.
type Step struct {
	// Name says what the step does ("take the deploy lock"); a failing
	// batch names the failing step by it.
	Name string
	// Script is a shell fragment: constant syntax and deploy.Quote'd
	// values. In a batch of several it runs in a subshell of its own, so
	// cd, variables and exit stay inside it; its exit status decides
	// whether the batch goes on.
	Script string
	// Env is exported for the whole batch (the steps of one batch must
	// not disagree on a value).
	Env map[string]string
	// Stdin is fed to this step (a password for --password-from-stdin);
	// at most one step of a batch may have one, and the others then read
	// /dev/null, so none of them can swallow it.
	Stdin io.Reader
}

// StepError is a batch that stopped at one of its steps: the step's name,
// and the command error narrowed to that step (its script, the exit
// status it returned, the stderr tail of the batch, which ends with the
// failing step's own).
type StepError struct {
	// Index is the failing step's position in the batch.
	Index int
	Step  string
	Err   *CommandError
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }

func (e *StepError) Unwrap() error { return e.Err }

// Batch runs steps, in order, as ONE command on the host and returns each
// started step's stdout (without trailing newlines). It stops at the first
// step that exits non-zero and returns a *StepError naming it; the steps
// after it do not run. A batch that could not finish (a lost connection)
// is a *StepError for the step it was in. opts applies to the whole
// command; an empty opts.Label becomes the steps' names, so the pretty
// output says what the batch does instead of showing its script.
func (h *HostContext) Batch(steps []Step, opts CommandOptions) ([]string, error) {
	if len(steps) == 0 {
		return nil, nil
	}
	var names []string
	reader := -1 // the step that reads stdin, if any
	for i, s := range steps {
		if strings.TrimSpace(s.Script) == "" {
			return nil, fmt.Errorf("batch step %q: empty script", s.Name)
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
				return nil, errors.New("batch: more than one step reads stdin")
			}
			opts.Stdin, reader = s.Stdin, i
		}
	}
	if opts.Label == "" {
		opts.Label = strings.Join(names, ", ")
	}
	if len(steps) == 1 {
		var buf strings.Builder
		_, cerr := h.run([]string{steps[0].Script}, opts, runMode{capture: &buf})
		out := strings.TrimRight(buf.String(), "\r\n")
		if cerr != nil {
			return []string{out}, stepError(0, steps[0], cerr)
		}
		return []string{out}, nil
	}
	// Each step announces itself on stdout with a marker no output can
	// forge (a random token), so the output splits into the steps', and
	// the last marker seen tells which step failed.
	tok := make([]byte, 8)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	mark := "@@davit-step-" + hex.EncodeToString(tok) + "-"
	var script strings.Builder
	for i, s := range steps {
		// Only the step that has stdin may read it: a command of another
		// step reading it would swallow what was meant for that one.
		in := ""
		if reader >= 0 && i != reader {
			in = " </dev/null"
		}
		if i == len(steps)-1 {
			// The last step needs no subshell: nothing runs after it for
			// its cd, variables or exit to reach, and its status is the
			// batch's.
			fmt.Fprintf(&script, "echo %s%d; {\n%s\n}%s\n", mark, i, s.Script, in)
			break
		}
		fmt.Fprintf(&script, "echo %s%d; (%s\n)%s || exit $?\n", mark, i, s.Script, in)
	}
	var buf strings.Builder
	_, cerr := h.run([]string{script.String()}, opts, runMode{capture: &buf, marker: mark})
	outs := splitSteps(buf.String(), mark, len(steps))
	if cerr != nil {
		i := max(len(outs)-1, 0)
		return outs, stepError(i, steps[i], cerr)
	}
	return outs, nil
}

// splitSteps cuts a batch's stdout at its markers: one entry per step
// that started.
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

// stepError narrows a batch's command error to step s: its own script
// stands for the command, so the message quotes what failed rather than
// the whole batch.
func stepError(i int, s Step, cerr *CommandError) *StepError {
	e := *cerr
	e.Command = s.Script
	return &StepError{Index: i, Step: s.Name, Err: &e}
}
