package ssh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	xssh "golang.org/x/crypto/ssh"

	"github.com/davit-deploy/davit/deploy"
)

// conn is one SSH connection with keepalive and death detection.
type conn struct {
	client *xssh.Client
	done   chan struct{} // closed once the connection is gone
	once   sync.Once
	err    error // why it is gone; set before done closes
}

func newConn(client *xssh.Client, keepAlive time.Duration, countMax int) *conn {
	c := &conn{client: client, done: make(chan struct{})}
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

func newBackend(d *Dialer, h *deploy.Host, c *conn, via *jumpConn) *Backend {
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
//
// sshd frees a session slot only after it has processed the channel's
// close, a little after our Wait returns, and a server may be configured
// below our MaxSessions; either way it refuses the channel ("open failed"
// or "administratively prohibited"). Such refusals are retried, waking as
// soon as one of our sessions ends, with a bounded backoff otherwise.
func (b *Backend) newSession(ctx context.Context) (*xssh.Session, error) {
	if err := b.acquire(ctx); err != nil {
		return nil, err
	}
	backoff := time.Millisecond
	var waited time.Duration
	for {
		b.freedMu.Lock()
		freed := b.freed
		b.freedMu.Unlock()
		s, err := b.openChannel(ctx)
		if err == nil {
			return s, nil
		}
		var oce *xssh.OpenChannelError
		if errors.As(err, &oce) && (oce.Reason == xssh.Prohibited || oce.Reason == xssh.ConnectionFailed) &&
			(len(b.sem) > 1 || waited < 3*time.Second) {
			t := time.NewTimer(backoff)
			select {
			case <-freed:
				t.Stop()
				continue
			case <-t.C:
				waited += backoff
				backoff = min(2*backoff, 100*time.Millisecond)
				continue
			case <-ctx.Done():
				t.Stop()
				err = ctx.Err()
			case <-b.conn.done:
				t.Stop()
				err = b.conn.lost()
			}
		}
		b.release()
		if b.conn.dead() {
			return nil, b.conn.lost()
		}
		if oce != nil {
			err = fmt.Errorf("open session: %w", err)
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

// markerVar is exported into every command's line with a value unique to
// the run, so a cancelled command can be found on the server (in the
// command line of its shell) when sshd refuses to signal it.
const markerVar = "DAVIT_RUN_ID"

// Run executes c.String() — the single rendering of a command, with its
// directory, umask, environment and sudo user inside the line — in a new
// session. Environment variables are never sent with Setenv, which stock
// sshd refuses outside LANG and LC_*. When c.Timeout or ctx ends first, the
// command is stopped (see stop) and Run returns within KillGrace with a
// *deploy.TimeoutError or ctx's error.
func (b *Backend) Run(ctx context.Context, c *deploy.Command, stdout, stderr io.Writer) (*deploy.Result, error) {
	if err := c.Validate(); err != nil {
		return nil, b.errorf("%w", err)
	}
	// Started under an ended context, a short command could finish before
	// the stop below reaches it.
	if err := ctx.Err(); err != nil {
		return nil, b.errorf("%w", err)
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, c.Timeout, &deploy.TimeoutError{Timeout: c.Timeout})
		defer cancel()
	}
	start := time.Now()
	marker := randomID()
	cc := *c
	cc.Env = maps.Clone(c.Env)
	if cc.Env == nil {
		cc.Env = map[string]string{}
	}
	cc.Env[markerVar] = marker

	sess, err := b.newSession(ctx)
	if err != nil {
		return nil, b.runError(ctx, c, err)
	}
	finish := func() {
		sess.Close()
		b.release()
	}
	if c.PTY {
		modes := xssh.TerminalModes{xssh.ECHO: 0, xssh.TTY_OP_ISPEED: 14400, xssh.TTY_OP_OSPEED: 14400}
		if err := sess.RequestPty("xterm", 40, 120, modes); err != nil {
			finish()
			return nil, b.runError(ctx, c, fmt.Errorf("request pty: %w", err))
		}
	}
	sess.Stdin, sess.Stdout, sess.Stderr = c.Stdin, stdout, stderr
	if err := sess.Start(cc.String()); err != nil {
		finish()
		return nil, b.runError(ctx, c, fmt.Errorf("start command: %w", err))
	}
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	select {
	case err = <-waited:
		finish()
	case <-ctx.Done():
		if !b.stop(sess, marker, waited) {
			// Still running after SIGKILL: let the session end in the
			// background; its token is held until sshd lets it go.
			go func() { <-waited; finish() }()
		} else {
			finish()
		}
		return &deploy.Result{ExitStatus: -1, Duration: time.Since(start)}, b.runError(ctx, c, ctx.Err())
	}
	res := &deploy.Result{Duration: time.Since(start)}
	var exit *xssh.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.ExitStatus = exit.ExitStatus()
	default:
		res.ExitStatus = -1
		// A dying connection ends its sessions just before x/crypto
		// reports the connection itself gone.
		select {
		case <-b.conn.done:
		case <-time.After(100 * time.Millisecond):
		}
		if b.conn.dead() {
			return res, b.errorf("%w", b.conn.lost())
		}
		return res, b.errorf("%w", err)
	}
	return res, nil
}

// stop ends a command whose context ended and reports whether it exited
// within KillGrace. It asks sshd to send SIGTERM to the command's process
// group ("signal" request, OpenSSH 7.9+), then SIGKILL. sshd refuses
// signals for root logins (no post-auth privilege separation) and older
// servers ignore them; then a second session signals the process group of
// the shell whose command line carries the command's marker. Closing the
// channel alone would not do: without a PTY, sshd leaves the command
// running.
func (b *Backend) stop(sess *xssh.Session, marker string, waited <-chan error) bool {
	grace := b.d.opts.KillGrace
	for _, sig := range []xssh.Signal{xssh.SIGTERM, xssh.SIGKILL} {
		ok, err := sess.SendRequest("signal", true, xssh.Marshal(struct{ Signal string }{string(sig)}))
		if err != nil || !ok {
			go b.killMarked(marker, sig, grace)
		}
		select {
		case <-waited:
			return true
		case <-time.After(grace):
		}
	}
	sess.Close()
	select {
	case <-waited:
		return true
	case <-time.After(100 * time.Millisecond):
		return false
	}
}

// killMarked signals, from a session of its own, every process group led
// by a process whose command line holds the marker. The pattern's [D]
// keeps the search from finding its own command line. Linux servers only
// (/proc); it is best effort.
func (b *Backend) killMarked(marker string, sig xssh.Signal, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), max(timeout, 5*time.Second))
	defer cancel()
	pattern := strings.TrimSuffix(markerVar, "D") + "[D]=" + marker
	script := "for f in $(grep -l " + deploy.Quote(pattern) + " /proc/[0-9]*/cmdline 2>/dev/null); do p=${f#/proc/}; p=${p%/cmdline}; kill -s " +
		deploy.Quote(string(sig)) + " -- -$p $p 2>/dev/null; done; true"
	sess, err := b.newSession(ctx)
	if err != nil {
		b.d.logf("ssh %s: cannot stop command %s: %v", b.label, marker, err)
		return
	}
	defer b.release()
	defer sess.Close()
	if err := sess.Run((&deploy.Command{Args: []string{script}}).String()); err != nil {
		b.d.logf("ssh %s: stop command %s: %v", b.label, marker, err)
	}
}

func randomID() string {
	var r [8]byte
	rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

func (b *Backend) runError(ctx context.Context, c *deploy.Command, err error) error {
	if ctx.Err() != nil {
		// The command's own Timeout is the cause; a parent's deadline or
		// cancellation is reported as such.
		var te *deploy.TimeoutError
		if errors.As(context.Cause(ctx), &te) {
			return b.errorf("%w", te)
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
