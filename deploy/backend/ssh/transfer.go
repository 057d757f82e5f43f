package ssh

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync/atomic"

	"github.com/pkg/sftp"

	"github.com/davit-deploy/davit/deploy"
)

// errNoSFTP means the server has no sftp subsystem (or SFTP is disabled):
// transfers go through `cat` instead.
var errNoSFTP = errors.New("no sftp subsystem")

// sftpClient returns the connection's SFTP client, opening it on first use.
// It holds one session token for its lifetime.
func (b *Backend) sftpClient(ctx context.Context) (*sftp.Client, error) {
	select {
	case b.sftpLock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.conn.done:
		return nil, b.conn.lost()
	}
	defer func() { <-b.sftpLock }()
	if b.sftp != nil {
		return b.sftp, nil
	}
	if b.noSFTP {
		return nil, errNoSFTP
	}
	sess, err := b.newSession(ctx)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*sftp.Client, error) {
		go func() {
			sess.Close()
			b.release()
		}()
		return nil, err
	}
	w, err := sess.StdinPipe()
	if err != nil {
		return fail(err)
	}
	r, err := sess.StdoutPipe()
	if err != nil {
		return fail(err)
	}
	err = b.await(ctx, "the request for the SFTP subsystem", "", func() error { return sess.RequestSubsystem("sftp") })
	var na *NoAnswerError
	if err != nil {
		if b.conn.dead() || ctx.Err() != nil || errors.As(err, &na) {
			return fail(b.transferError(ctx, err))
		}
		// The server refused: remember it and fall back for good.
		b.noSFTP = true
		b.d.logf("ssh %s: no sftp subsystem (%v); transferring files with cat", b.label, err)
		return fail(errNoSFTP)
	}
	// Concurrent writes keep many packets in flight, which matters for
	// large uploads; the temporary file absorbs any partial write.
	var c *sftp.Client
	err = b.await(ctx, "the SFTP subsystem's greeting", "", func() (err error) {
		c, err = sftp.NewClientPipe(r, w, sftp.UseConcurrentWrites(true), sftp.UseConcurrentReads(true))
		return err
	})
	if err != nil {
		return fail(fmt.Errorf("start sftp: %w", b.transferError(ctx, err)))
	}
	b.sftp, b.sftpSess = c, sess
	return c, nil
}

// transferError prefers, for a failed transfer, the context's error, then
// a host that stopped answering or a lost connection, over what the SFTP
// client saw of it.
func (b *Backend) transferError(ctx context.Context, err error) error {
	var na *NoAnswerError
	switch {
	case errors.As(err, &na):
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ctx.Err(), na)
		}
		return na
	case ctx.Err() != nil:
		return ctx.Err()
	case b.conn.dead():
		return b.conn.lost()
	}
	return err
}

// tempName is a hidden name beside p for writing before the rename.
func tempName(p string) string {
	var r [8]byte
	rand.Read(r[:])
	return path.Join(path.Dir(p), ".davit-upload-"+hex.EncodeToString(r[:])+"-"+path.Base(p))
}

// Upload writes r to a temporary file beside remotePath with mode and
// renames it over remotePath, so readers see the old file or the new one,
// never half of one. It uses SFTP (posix-rename) when the server offers
// it and a `cat > tmp && chmod && mv` session otherwise.
func (b *Backend) Upload(ctx context.Context, r io.Reader, remotePath string, mode fs.FileMode) error {
	if remotePath == "" {
		return b.errorf("upload: empty remote path")
	}
	c, err := b.sftpClient(ctx)
	if errors.Is(err, errNoSFTP) {
		return b.uploadCat(ctx, r, remotePath, mode)
	}
	if err != nil {
		return b.errorf("upload %s: %w", remotePath, err)
	}
	tmp := tempName(remotePath)
	in := &ctxReader{ctx: ctx, r: r}
	err = b.await(ctx, "the upload of "+remotePath, "a temporary file "+tmp+" may be left there", func() error {
		return b.uploadSFTP(ctx, c, in, tmp, remotePath, mode)
	})
	in.stop()
	if err != nil {
		return b.errorf("upload %s: %w", remotePath, b.transferError(ctx, err))
	}
	return nil
}

// uploadSFTP writes r to tmp and renames it over remotePath.
func (b *Backend) uploadSFTP(ctx context.Context, c *sftp.Client, r io.Reader, tmp, remotePath string, mode fs.FileMode) (err error) {
	f, err := c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			c.Remove(tmp)
		}
	}()
	// Set the final mode before any data arrives, so a private file is
	// never readable by others, even half-written.
	if err := f.Chmod(mode.Perm()); err != nil {
		f.Close()
		return fmt.Errorf("chmod: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	_, err = f.ReadFromWithConcurrency(r, 0)
	stop()
	if cerr := f.Close(); err == nil && cerr != nil && !errors.Is(cerr, os.ErrClosed) {
		err = cerr
	}
	if err != nil {
		return err
	}
	if _, ok := c.HasExtension("posix-rename@openssh.com"); ok {
		return c.PosixRename(tmp, remotePath)
	}
	// Plain SFTP rename fails when the target exists.
	if err := c.Rename(tmp, remotePath); err == nil {
		return nil
	}
	if err := c.Remove(remotePath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return c.Rename(tmp, remotePath)
}

// uploadCat streams r into `cat` on the server. The line is built from
// deploy.Quote'd words and run through Run, like any other command.
func (b *Backend) uploadCat(ctx context.Context, r io.Reader, remotePath string, mode fs.FileMode) error {
	tmp := deploy.Quote(tempName(remotePath))
	dst := deploy.Quote(remotePath)
	script := fmt.Sprintf("cat > %s && chmod %04o %s && mv -f %s %s || { rm -f %s; exit 1; }",
		tmp, mode.Perm(), tmp, tmp, dst, tmp)
	// umask 077 keeps the file private until chmod sets its mode.
	in := &ctxReader{ctx: ctx, r: r}
	defer in.stop()
	cmd := &deploy.Command{Args: []string{script}, Umask: "077", Stdin: in}
	var stderr bytes.Buffer
	res, err := b.Run(ctx, cmd, io.Discard, &limitedBuffer{buf: &stderr, max: 4096})
	if err != nil {
		return fmt.Errorf("upload %s: %w", remotePath, err)
	}
	if res.ExitStatus != 0 {
		return b.errorf("upload %s: exit status %d: %s", remotePath, res.ExitStatus, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Download copies remotePath into w, over SFTP or else through `cat`.
func (b *Backend) Download(ctx context.Context, remotePath string, w io.Writer) error {
	c, err := b.sftpClient(ctx)
	if errors.Is(err, errNoSFTP) {
		return b.downloadCat(ctx, remotePath, w)
	}
	if err != nil {
		return b.errorf("download %s: %w", remotePath, err)
	}
	out := &gate{}
	err = b.await(ctx, "the download of "+remotePath, "", func() error {
		f, err := c.Open(remotePath)
		if err != nil {
			return err
		}
		stop := context.AfterFunc(ctx, func() { f.Close() })
		_, err = f.WriteTo(&ctxWriter{ctx, out.writer(w)})
		stop()
		f.Close()
		return err
	})
	out.close()
	if err != nil {
		return b.errorf("download %s: %w", remotePath, b.transferError(ctx, err))
	}
	return nil
}

func (b *Backend) downloadCat(ctx context.Context, remotePath string, w io.Writer) error {
	var stderr bytes.Buffer
	res, err := b.Run(ctx, &deploy.Command{Args: []string{"cat", "--", remotePath}}, w, &limitedBuffer{buf: &stderr, max: 4096})
	if err != nil {
		return fmt.Errorf("download %s: %w", remotePath, err)
	}
	if res.ExitStatus != 0 {
		return b.errorf("download %s: exit status %d: %s", remotePath, res.ExitStatus, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// ctxReader stops a transfer between chunks once ctx ends, and for good
// once stop is called, so a transfer left behind on a host that stopped
// answering no longer reads the caller's reader after the call returned.
type ctxReader struct {
	ctx     context.Context
	r       io.Reader
	stopped atomic.Bool
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if c.stopped.Load() {
		return 0, io.ErrClosedPipe
	}
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (c *ctxReader) stop() { c.stopped.Store(true) }

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// limitedBuffer keeps the first max bytes of a stream (an error message)
// and discards the rest without failing the writer.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
