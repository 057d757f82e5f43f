package tasks

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"
)

// Prompter asks the person running davit for a value. def is offered as
// the answer to an empty reply; secret hides the typing.
type Prompter interface {
	Ask(prompt, def string, secret bool) (string, error)
}

// ErrNoTerminal is returned by the terminal prompter when there is no one
// to ask: standard input is a pipe, a file or closed (cron, CI).
var ErrNoTerminal = errors.New("no terminal to ask on")

// TerminalPrompter prompts on a terminal. It serializes questions, since
// tasks may ask from several hosts' goroutines at once.
type TerminalPrompter struct {
	mu  sync.Mutex
	in  *os.File
	out io.Writer
}

// NewTerminalPrompter prompts on out and reads answers from in, which must
// be a terminal when a question is asked (it is checked then, not here, so
// a CLI can always install one).
func NewTerminalPrompter(in *os.File, out io.Writer) *TerminalPrompter {
	return &TerminalPrompter{in: in, out: out}
}

// Ask writes "prompt [def]: " and reads one line; an empty answer gives
// def. A secret's default is not shown, and its typing is not echoed.
func (p *TerminalPrompter) Ask(prompt, def string, secret bool) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.in == nil || !term.IsTerminal(int(p.in.Fd())) {
		return "", ErrNoTerminal
	}
	switch {
	case def != "" && secret:
		fmt.Fprintf(p.out, "%s [keep current]: ", prompt)
	case def != "":
		fmt.Fprintf(p.out, "%s [%s]: ", prompt, def)
	default:
		fmt.Fprintf(p.out, "%s: ", prompt)
	}
	var answer string
	if secret {
		b, err := term.ReadPassword(int(p.in.Fd()))
		fmt.Fprintln(p.out)
		if err != nil {
			return "", fmt.Errorf("read answer: %w", err)
		}
		answer = string(b)
	} else {
		line, err := readLine(p.in)
		if err != nil {
			return "", fmt.Errorf("read answer: %w", err)
		}
		answer = line
	}
	answer = strings.TrimRight(answer, "\r\n")
	if answer == "" {
		return def, nil
	}
	return answer, nil
}

// readLine reads up to a newline one byte at a time, so nothing after the
// answer is consumed from the terminal.
func readLine(r io.Reader) (string, error) {
	var b strings.Builder
	var c [1]byte
	for {
		n, err := r.Read(c[:])
		if n == 1 {
			if c[0] == '\n' {
				return b.String(), nil
			}
			b.WriteByte(c[0])
		}
		if err == io.EOF {
			if b.Len() == 0 {
				return "", io.ErrUnexpectedEOF
			}
			return b.String(), nil
		}
		if err != nil {
			return "", err
		}
	}
}
