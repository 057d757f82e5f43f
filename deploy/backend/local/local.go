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
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/davit-deploy/davit/deploy"
)

// Backend runs on this machine. Relative paths resolve against Dir, or the
// current directory when Dir is empty.
type Backend struct {
	Dir string
	// User, when set, runs every command (that names no user of its own)
	// and every file transfer as that user through `sudo -n -u`, as the
	// SSH backend logs in as a host's user: a boot-time deploy started as
	// root then deploys as the application user.
	User string
}

// New returns a local backend working in dir ("" for the current directory).
func New(dir string) *Backend { return &Backend{Dir: dir} }

// ForHost returns the backend for a localhost server: commands start in
// the home directory of the host's user (or of the current user), as an SSH
// login's would, and run as that user. A user that is the current one needs
// no sudo.
func ForHost(h *deploy.Host) (*Backend, error) {
	me, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("localhost backend: %w", err)
	}
	if h.User == "" || h.User == me.Username {
		return &Backend{Dir: me.HomeDir}, nil
	}
	u, err := user.Lookup(h.User)
	if err != nil {
		return nil, fmt.Errorf("localhost backend for %s: %w", h, err)
	}
	return &Backend{Dir: u.HomeDir, User: u.Username}, nil
}

// Run executes c.String() with `sh -c` in its own process group, so a
// timeout or Ctrl-C stops the command and everything it started.
func (b *Backend) Run(ctx context.Context, c *deploy.Command, stdout, stderr io.Writer) (*deploy.Result, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if b.User != "" && c.User == "" {
		as := *c
		as.User = b.User
		c = &as
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
	if b.User != "" {
		return b.runAs(ctx, r, io.Discard, "upload", remotePath, uploadScript, b.path(remotePath), fmt.Sprintf("%o", mode.Perm()))
	}
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
	if b.User != "" {
		return b.runAs(ctx, nil, w, "download", remotePath, downloadScript, b.path(remotePath))
	}
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

// Transfers as another user run these as that user, with the path (and
// mode) as positional parameters: the file is written beside its place and
// renamed, as Upload does for the current user.
const (
	uploadScript   = `t=$(dirname -- "$1")/.davit-upload-$$ && cat >"$t" && chmod "$2" "$t" && mv -f -- "$t" "$1" || { rm -f -- "$t"; exit 1; }`
	downloadScript = `exec cat -- "$1"`
)

func (b *Backend) runAs(ctx context.Context, in io.Reader, out io.Writer, what, remotePath, script string, args ...string) error {
	var stderr strings.Builder
	c := &deploy.Command{Args: append([]string{"sh", "-c", script, "davit-" + what}, args...), Stdin: in}
	res, err := b.Run(ctx, c, out, &stderr)
	if err == nil && res.ExitStatus != 0 {
		err = fmt.Errorf("as %s: exit status %d: %s", b.User, res.ExitStatus, strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, remotePath, err)
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
