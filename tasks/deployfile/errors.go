package deployfile

import (
	"context"
	"errors"
	"strings"

	"go.starlark.net/starlark"
)

// Error is a Starlark failure located in the Deployfile: a fail(), a type
// error, a builtin's error. Its message starts with FILE:LINE:COL of the
// innermost Starlark frame so editors and terminals can jump there, and
// adds the backtrace when the failure is more than one call deep.
type Error struct {
	// Pos is the innermost Starlark position, e.g. "Deployfile:12:9".
	Pos string
	// Msg is the failure, prefixed by the failing builtin's name ("on: …").
	Msg string
	// Backtrace lists the Starlark frames, outermost first.
	Backtrace []string
	err       *starlark.EvalError
	cause     error // set when a canceled context caused the failure
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Pos != "" {
		b.WriteString(e.Pos + ": ")
	}
	b.WriteString(e.Msg)
	if len(e.Backtrace) > 1 {
		b.WriteString("\nTraceback (most recent call last):")
		for _, f := range e.Backtrace {
			b.WriteString("\n  " + f)
		}
	}
	return b.String()
}

// Unwrap returns the *starlark.EvalError (whose cause, a builtin's Go
// error such as a tasks.CommandError, errors.As finds) and the context's
// error when the run was canceled.
func (e *Error) Unwrap() []error {
	out := []error{e.err}
	if e.cause != nil {
		out = append(out, e.cause)
	}
	return out
}

// convertErr turns a *starlark.EvalError into an *Error; other errors
// (syntax and resolve errors already carry FILE:LINE:COL) pass through.
// When ctx is done the context's error is attached so that
// errors.Is(err, context.Canceled) holds for a thread stopped by Cancel.
func convertErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	ev, ok := err.(*starlark.EvalError)
	if !ok {
		return err
	}
	e := &Error{Msg: ev.Msg, err: ev}
	stack := ev.CallStack
	if n := len(stack); n > 0 && stack[n-1].Pos.Filename() == "<builtin>" {
		name := stack[n-1].Name
		if !strings.HasPrefix(e.Msg, name+": ") && !strings.HasPrefix(e.Msg, name+"()") {
			e.Msg = name + ": " + e.Msg
		}
		stack = stack[:n-1]
	}
	for _, fr := range stack {
		e.Backtrace = append(e.Backtrace, fr.Pos.String()+": in "+fr.Name)
	}
	if n := len(stack); n > 0 {
		e.Pos = stack[n-1].Pos.String()
	}
	if ctx != nil && ctx.Err() != nil && !errors.Is(ev, ctx.Err()) {
		e.cause = ctx.Err()
	}
	return e
}
