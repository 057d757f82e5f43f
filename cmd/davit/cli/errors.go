package cli

import (
	"context"
	"errors"
)

// Exit codes, as documented in the README.
const (
	exitOK          = 0
	exitTaskFailed  = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// exitError carries the exit code an error should end the process with.
// Only runCLI() turns it into a number, so the CLI can run in-process in tests.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(err error) error { return &exitError{code: exitUsage, err: err} }
func taskError(err error) error  { return &exitError{code: exitTaskFailed, err: err} }

// exitCode maps an error to the process exit status. An interrupted run
// exits 130 whatever the error says, because cancellation surfaces as many
// different failures on many hosts.
func exitCode(ctx context.Context, err error) int {
	if err == nil {
		return exitOK
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return exitInterrupted
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// Errors the flag parser returns before any action runs.
	return exitUsage
}
