package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"
)

// Backend runs commands and moves files on one host. Implementations are
// safe for concurrent use; the task layer calls Run from several goroutines.
type Backend interface {
	// Run executes c, streaming its output to stdout and stderr. A command
	// that ran and exited non-zero is not an error: its status is in Result.
	// The error reports what kept it from running or finishing (connection
	// lost, timeout, cancellation).
	Run(ctx context.Context, c *Command, stdout, stderr io.Writer) (*Result, error)
	// Upload writes r to remotePath with mode, replacing any file there.
	Upload(ctx context.Context, r io.Reader, remotePath string, mode fs.FileMode) error
	// Download copies remotePath into w.
	Download(ctx context.Context, remotePath string, w io.Writer) error
	// Close releases connections; it is safe to call more than once.
	Close() error
}

// Result is how a command ended.
type Result struct {
	ExitStatus int
	Duration   time.Duration
}

// ErrTimeout is wrapped by Run's error when Command.Timeout expired.
var ErrTimeout = errors.New("command timed out")

// TimeoutError says which command ran out of time and after how long.
type TimeoutError struct {
	Timeout time.Duration
}

func (e *TimeoutError) Error() string { return fmt.Sprintf("command timed out after %s", e.Timeout) }
func (e *TimeoutError) Unwrap() error { return ErrTimeout }
