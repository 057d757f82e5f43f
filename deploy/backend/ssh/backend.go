package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pkg/sftp"
	xssh "golang.org/x/crypto/ssh"

	"davit/deploy"
)

// conn is one SSH connection with keepalive and death detection.
type conn struct {
	label  string
	client *xssh.Client
	done   chan struct{} // closed once the connection is gone
	once   sync.Once
	err    error // why it is gone; set before done closes
}

func newConn(label string, client *xssh.Client, keepAlive time.Duration, countMax int) *conn {
	c := &conn{label: label, client: client, done: make(chan struct{})}
	go func() {
		err := client.Wait()
		if err == nil {
			err = errors.New("connection closed by the server")
		}
		c.fail(err)
	}()
	if keepAlive > 0 {
		go c.keepAlive(keepAlive, max(countMax, 1))
	}
	return c
}

// fail records why the connection ended (first reason wins) and closes it,
// which ends every session on it.
func (c *conn) fail(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
		c.client.Close()
	})
}

func (c *conn) close() { c.fail(errClosed) }

var errClosed = errors.New("connection closed")

func (c *conn) dead() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// lost is the error for work cut off by the connection's end.
func (c *conn) lost() error {
	if errors.Is(c.err, errClosed) {
		return errClosed
	}
	return fmt.Errorf("connection lost: %w", c.err)
}

// keepAlive sends keepalive@openssh.com requests, as OpenSSH's
// ServerAliveInterval does. Any reply, even a refusal, proves the server
// alive; countMax intervals in a row without one close the connection, so
// commands waiting on a dead host fail instead of hanging.
func (c *conn) keepAlive(interval time.Duration, countMax int) {
	t := time.NewTicker(interval)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case err := <-reply:
			if err != nil {
				c.fail(fmt.Errorf("keepalive: %w", err))
				return
			}
			missed = 0
		case <-t.C:
			missed++
			if missed >= countMax {
				c.fail(fmt.Errorf("no answer to keepalives for %s (%d × %s)", time.Duration(missed)*interval, missed, interval))
				return
			}
		case <-c.done:
			return
		}
	}
}

// Backend runs commands on one host over one SSH connection. Sessions are
// multiplexed on it, at most MaxSessions at a time; an SFTP client, opened
// on first transfer, is shared by every transfer. Safe for concurrent use.
type Backend struct {
	d     *Dialer
	host  *deploy.Host
	label string
	conn  *conn
	via   *jumpConn

	// sem holds a token per open session.
	sem chan struct{}
	// freed is closed and replaced whenever a session ends, waking callers
	// that a server with a lower MaxSessions turned away.
	freedMu sync.Mutex
	freed   chan struct{}

	sftpMu   sync.Mutex
	sftp     *sftp.Client
	sftpSess *xssh.Session
	noSFTP   bool

	closeOnce sync.Once
}

var _ deploy.Backend = (*Backend)(nil)

func newBackend(d *Dialer, h *deploy.Host, e *endpoint, c *conn, via *jumpConn) *Backend {
	return &Backend{
		d:      d,
		host:   h,
		label:  h.String(),
		conn:   c,
		via:    via,
		sem:    make(chan struct{}, d.opts.MaxSessions),
		freed:  make(chan struct{}),
		noSFTP: d.opts.DisableSFTP,
	}
}

// Host is the host this backend reaches.
func (b *Backend) Host() *deploy.Host { return b.host }

// Client is the underlying connection, for callers that need more than the
// Backend interface (port forwarding, say). Sessions opened on it do not
// count against MaxSessions.
func (b *Backend) Client() *xssh.Client { return b.conn.client }

func (b *Backend) errorf(format string, args ...any) error {
	return fmt.Errorf("ssh %s: "+format, append([]any{b.label}, args...)...)
}

// acquire takes a session token, waiting while MaxSessions are open.
func (b *Backend) acquire(ctx context.Context) error {
	select {
	case b.sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case b.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-b.conn.done:
		return b.conn.lost()
	}
}

func (b *Backend) release() {
	<-b.sem
	b.freedMu.Lock()
	close(b.freed)
	b.freed = make(chan struct{})
	b.freedMu.Unlock()
}

// newSession opens a session under a token. The caller releases the token
// after closing the session.
func (b *Backend) newSession(ctx context.Context) (*xssh.Session, error) {
	if err := b.acquire(ctx); err != nil {
		return nil, err
	}
	for tries := 0; ; tries++ {
		b.freedMu.Lock()
		freed := b.freed
		b.freedMu.Unlock()
		s, err := b.openChannel(ctx)
		if err == nil {
			return s, nil
		}
		// A server configured below our MaxSessions refuses the channel
		// ("administratively prohibited"); wait for one of ours to end.
		var oce *xssh.OpenChannelError
		if errors.As(err, &oce) && oce.Reason == xssh.Prohibited && len(b.sem) > 1 && tries < 1000 {
			select {
			case <-freed:
				continue
			case <-ctx.Done():
				err = ctx.Err()
			case <-b.conn.done:
				err = b.conn.lost()
			}
		}
		b.release()
		if b.conn.dead() {
			return nil, b.conn.lost()
		}
		return nil, err
	}
}

// openChannel opens a session channel, giving up when ctx ends: x/crypto
// waits for the server's answer without a context.
func (b *Backend) openChannel(ctx context.Context) (*xssh.Session, error) {
	if ctx.Done() == nil {
		return b.conn.client.NewSession()
	}
	type result struct {
		s   *xssh.Session
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := b.conn.client.NewSession()
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// Run executes c.String() — the single rendering of a command, with its
// directory, umask, environment and sudo user inside the line — in a new
// session. Environment variables are never sent with Setenv, which stock
// sshd refuses outside LANG and LC_*. When c.Timeout or ctx ends first, the
// command's process group gets SIGTERM, then SIGKILL after KillGrace, and
// Run returns a *deploy.TimeoutError or ctx's error.
func (b *Backend) Run(ctx context.Context, c *deploy.Command, stdout, stderr io.Writer) (*deploy.Result, error) {
	if err := c.Validate(); err != nil {
		return nil, b.errorf("%w", err)
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	start := time.Now()
	sess, err := b.newSession(ctx)
	if err != nil {
		return nil, b.runError(ctx, c, start, err)
	}
	defer b.release()
	defer sess.Close()
	if c.PTY {
		modes := xssh.TerminalModes{xssh.ECHO: 0, xssh.TTY_OP_ISPEED: 14400, xssh.TTY_OP_OSPEED: 14400}
		if err := sess.RequestPty("xterm", 40, 120, modes); err != nil {
			return nil, b.runError(ctx, c, start, fmt.Errorf("request pty: %w", err))
		}
	}
	sess.Stdin, sess.Stdout, sess.Stderr = c.Stdin, stdout, stderr
	if err := sess.Start(c.String()); err != nil {
		return nil, b.runError(ctx, c, start, fmt.Errorf("start command: %w", err))
	}
	exited := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { b.interrupt(sess, exited) })
	err = sess.Wait()
	close(exited)
	stop()
	res := &deploy.Result{Duration: time.Since(start)}
	if ctx.Err() != nil {
		res.ExitStatus = -1
		return res, b.runError(ctx, c, start, ctx.Err())
	}
	var exit *xssh.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.ExitStatus = exit.ExitStatus()
	case b.conn.dead():
		res.ExitStatus = -1
		return res, b.errorf("%w", b.conn.lost())
	default:
		res.ExitStatus = -1
		return res, b.errorf("%w", err)
	}
	return res, nil
}

// interrupt stops a command whose context ended: SIGTERM to its process
// group (sshd's "signal" request, OpenSSH 7.9+), then after KillGrace
// SIGKILL and closing the session, which also covers servers that ignore
// signal requests.
func (b *Backend) interrupt(sess *xssh.Session, exited <-chan struct{}) {
	sess.Signal(xssh.SIGTERM)
	t := time.NewTimer(b.d.opts.KillGrace)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		sess.Signal(xssh.SIGKILL)
		sess.Close()
	}
}

func (b *Backend) runError(ctx context.Context, c *deploy.Command, start time.Time, err error) error {
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && c.Timeout > 0 && time.Since(start) >= c.Timeout {
			return b.errorf("%w", &deploy.TimeoutError{Timeout: c.Timeout})
		}
		return b.errorf("%w", ctx.Err())
	}
	if b.conn.dead() {
		return b.errorf("%w", b.conn.lost())
	}
	return b.errorf("%w", err)
}

// Close closes the SFTP client and the connection, and releases the jump
// host connection. It is safe to call more than once.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		b.sftpMu.Lock()
		if b.sftp != nil {
			b.sftp.Close()
			b.sftpSess.Close()
			b.sftp, b.sftpSess = nil, nil
		}
		b.sftpMu.Unlock()
		b.conn.close()
		b.d.releaseJump(b.via)
		b.via = nil
	})
	return nil
}
