// Package local runs commands on this machine through `sh -c`, for hosts
// named localhost and for run_locally: the same rendered lines the SSH
// backend sends, without a connection.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/davit-deploy/davit/deploy"
)

// Backend runs on this machine. Relative paths resolve against Dir, or the
// current directory when Dir is empty.
type Backend struct {
	Dir string
}

// New returns a local backend working in dir ("" for the current directory).
func New(dir string) *Backend { return &Backend{Dir: dir} }

// Run executes c.String() with `sh -c` in its own process group, so a
// timeout or Ctrl-C stops the command and everything it started.
func (b *Backend) Run(ctx context.Context, c *deploy.Command, stdout, stderr io.Writer) (*deploy.Result, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	// Started under a cancelled context, a short command could finish
	// before the kill below reaches it.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	parent := ctx
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	cmd := exec.Command("sh", "-c", c.String())
	cmd.Dir = b.Dir
	cmd.Stdout, cmd.Stderr, cmd.Stdin = stdout, stderr, c.Stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sh: %w", err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			// Negative pid: the whole process group.
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
		case <-done:
		}
	}()
	err := cmd.Wait()
	close(done)
	res := &deploy.Result{Duration: time.Since(start)}
	if ctx.Err() != nil {
		res.ExitStatus = -1
		// The run's own deadline or cancellation is not this command's
		// timeout, even when both are deadlines.
		if parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return res, &deploy.TimeoutError{Timeout: c.Timeout}
		}
		return res, ctx.Err()
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.ExitStatus = exit.ExitCode()
		if res.ExitStatus < 0 { // killed by a signal
			res.ExitStatus = 128 + int(exit.Sys().(syscall.WaitStatus).Signal())
		}
	default:
		return res, err
	}
	return res, nil
}

func (b *Backend) path(p string) string {
	if filepath.IsAbs(p) || b.Dir == "" {
		return p
	}
	return filepath.Join(b.Dir, p)
}

// Upload writes r to a temporary file beside remotePath and renames it into
// place, so a reader never sees half a file.
func (b *Backend) Upload(ctx context.Context, r io.Reader, remotePath string, mode fs.FileMode) error {
	dst := b.path(remotePath)
	f, err := os.CreateTemp(filepath.Dir(dst), ".davit-upload-*")
	if err != nil {
		return fmt.Errorf("upload %s: %w", remotePath, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = io.Copy(f, readerWithContext(ctx, r))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, mode.Perm())
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		return fmt.Errorf("upload %s: %w", remotePath, err)
	}
	return nil
}

// Download copies the file at remotePath into w.
func (b *Backend) Download(ctx context.Context, remotePath string, w io.Writer) error {
	f, err := os.Open(b.path(remotePath))
	if err != nil {
		return fmt.Errorf("download %s: %w", remotePath, err)
	}
	defer f.Close()
	if _, err := io.Copy(w, readerWithContext(ctx, f)); err != nil {
		return fmt.Errorf("download %s: %w", remotePath, err)
	}
	return nil
}

// Close has nothing to release.
func (b *Backend) Close() error { return nil }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func readerWithContext(ctx context.Context, r io.Reader) io.Reader { return &ctxReader{ctx, r} }

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
