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
// which ends every session on it. It never waits on the host: closing the
// socket is local, and x/crypto's teardown is given connCloseTimeout.
func (c *conn) fail(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
		closed := make(chan struct{})
		go func() {
			c.client.Close()
			close(closed)
		}()
		t := time.NewTimer(connCloseTimeout)
		defer t.Stop()
		select {
		case <-closed:
		case <-t.C:
		}
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
// alive. One request is in flight at a time; each tick that finds it still
// unanswered is a miss, and countMax misses in a row (about countMax ×
// interval after the host froze) close the connection, so commands waiting
// on a dead host fail instead of hanging.
func (c *conn) keepAlive(interval time.Duration, countMax int) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var reply chan error // the request in flight, if any
	missed := 0
	for {
		select {
		case <-c.done:
			return
		case err := <-reply:
			reply = nil
			if err != nil {
				c.fail(fmt.Errorf("keepalive: %w", err))
				return
			}
			missed = 0
		case <-t.C:
			if reply != nil {
				missed++
				if missed >= countMax {
					c.fail(&NoAnswerError{Waiting: "keepalives", For: time.Duration(missed) * interval, Left: "commands davit was running there may still be running"})
					return
				}
				continue
			}
			reply = make(chan error, 1)
			go func(reply chan<- error) {
				_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
				reply <- err
			}(reply)
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

	// sftpLock (a channel, so waiting for it can end with ctx) guards
	// the SFTP client and noSFTP.
	sftpLock chan struct{}
	sftp     *sftp.Client
	sftpSess *xssh.Session
	noSFTP   bool

	closeOnce sync.Once
}

var _ deploy.Backend = (*Backend)(nil)

func newBackend(d *Dialer, h *deploy.Host, c *conn, via *jumpConn) *Backend {
	return &Backend{
		d:        d,
		host:     h,
		label:    h.String(),
		conn:     c,
		via:      via,
		sem:      make(chan struct{}, d.opts.MaxSessions),
		freed:    make(chan struct{}),
		sftpLock: make(chan struct{}, 1),
		noSFTP:   d.opts.DisableSFTP,
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

// openChannel opens a session channel, giving up when ctx ends or the
// connection is lost: x/crypto waits for the server's answer without a
// context. Nothing runs on the host yet, so no answer needs waiting for.
func (b *Backend) openChannel(ctx context.Context) (_ *xssh.Session, err error) {
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
		err = ctx.Err()
	case <-b.conn.done:
		err = b.conn.lost()
	}
	// A channel the host opens after all is closed again.
	go func() {
		if r := <-ch; r.s != nil {
			r.s.Close()
		}
	}()
	return nil, err
}

// markerVar is exported into every command's line with a value unique to
// the run, so a cancelled command can be found on the server (in the
// command line of its shell) when sshd refuses to signal it.
const markerVar = "DAVIT_RUN_ID"

// Run executes c.String() — the single rendering of a command, with its
// directory, umask, environment and sudo user inside the line — in a new
// session. Environment variables are never sent with Setenv, which stock
// sshd refuses outside LANG and LC_*. When c.Timeout or ctx ends first, the
// command is stopped (see stop) and Run returns ctx's error (or a
// *deploy.TimeoutError) within 2×KillGrace when the host answers, and
// within AnswerTimeout, with the connection abandoned and a
// *NoAnswerError wrapped in the error, when it does not. Nothing is written
// to stdout or stderr after Run returns.
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
	left := fmt.Sprintf("the command (%s=%s) may still be running there", markerVar, marker)

	sess, err := b.newSession(ctx)
	if err != nil {
		return nil, b.runError(ctx, c, err)
	}
	out := &gate{}
	defer out.close()
	finish := func() {
		sess.Close()
		b.release()
	}
	// finishLater lets a session the host may still hold end in the
	// background; its token is held until the session is gone.
	waited := make(chan error, 1)
	finishLater := func() { go func() { <-waited; finish() }() }
	if c.PTY {
		modes := xssh.TerminalModes{xssh.ECHO: 0, xssh.TTY_OP_ISPEED: 14400, xssh.TTY_OP_OSPEED: 14400}
		err := b.await(ctx, "the request for a terminal", "", func() error { return sess.RequestPty("xterm", 40, 120, modes) })
		if err != nil {
			go finish()
			return nil, b.runError(ctx, c, fmt.Errorf("request pty: %w", err))
		}
	}
	sess.Stdin, sess.Stdout, sess.Stderr = c.Stdin, out.writer(stdout), out.writer(stderr)
	if err := b.await(ctx, "the request to start the command", left, func() error { return sess.Start(cc.String()) }); err != nil {
		go finish()
		return nil, b.runError(ctx, c, fmt.Errorf("start command: %w", err))
	}
	go func() { waited <- sess.Wait() }()
	select {
	case err = <-waited:
		finish()
	case <-b.conn.done:
		// Keepalives found the host dead, or a wait on it was abandoned.
		// A command that ended just before has its status on the way.
		select {
		case err = <-waited:
			finish()
		case <-time.After(100 * time.Millisecond):
			finishLater()
			return &deploy.Result{ExitStatus: -1, Duration: time.Since(start)}, b.errorf("%w", b.conn.lost())
		}
	case <-ctx.Done():
		exited, err := b.stop(sess, left, marker, waited)
		if exited {
			finish()
		} else {
			finishLater()
		}
		return &deploy.Result{ExitStatus: -1, Duration: time.Since(start)}, b.runError(ctx, c, err)
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

// stop ends a command whose context ended and reports whether it exited.
// It asks sshd to send SIGTERM to the command's process group ("signal"
// request, OpenSSH 7.9+), then after KillGrace SIGKILL, then after
// KillGrace closes the session. sshd refuses signals for root logins (no
// post-auth privilege separation) and older servers ignore them; then a
// second session signals the process group of the shell whose command line
// carries the command's marker. Closing the channel alone would not do:
// without a PTY, sshd leaves the command running.
//
// The requests are sent without waiting for their replies, and a host that
// has answered nothing (no reply, no exit) by AnswerTimeout after the
// cancellation is abandoned: the error is then a *NoAnswerError. A lost
// connection ends the wait at once with the connection's error.
func (b *Backend) stop(sess *xssh.Session, left, marker string, waited <-chan error) (bool, error) {
	grace := b.d.opts.KillGrace
	giveUp := time.NewTimer(b.d.opts.AnswerTimeout)
	defer giveUp.Stop()
	answered := make(chan struct{})
	var once sync.Once
	signal := func(sig xssh.Signal) {
		go func() {
			ok, err := sess.SendRequest("signal", true, xssh.Marshal(struct{ Signal string }{string(sig)}))
			if err == nil {
				// Even a refusal proves the host is there.
				once.Do(func() { close(answered) })
			}
			if err != nil || !ok {
				b.killMarked(marker, left, sig)
			}
		}()
	}
	for _, sig := range []xssh.Signal{xssh.SIGTERM, xssh.SIGKILL} {
		signal(sig)
		t := time.NewTimer(grace)
		select {
		case <-waited:
			t.Stop()
			return true, nil
		case <-b.conn.done:
			t.Stop()
			return false, b.conn.lost()
		case <-t.C:
		}
	}
	select {
	case <-answered:
	case <-waited:
		return true, nil
	case <-b.conn.done:
		return false, b.conn.lost()
	case <-giveUp.C:
		return false, b.abandon("the request to stop the command", left)
	}
	// Sent without waiting: the host answered, but a write could still
	// wait behind a full send buffer.
	go sess.Close()
	select {
	case <-waited:
		return true, nil
	case <-time.After(100 * time.Millisecond):
		return false, nil
	}
}

// killMarked signals, from a session of its own, every process group led
// by a process whose command line holds the marker. The pattern's [D]
// keeps the search from finding its own command line. Linux servers only
// (/proc); it is best effort, in the background of stop, and a host that
// does not answer it within AnswerTimeout is abandoned.
func (b *Backend) killMarked(marker, left string, sig xssh.Signal) {
	ctx, cancel := context.WithTimeout(context.Background(), b.d.opts.AnswerTimeout)
	defer cancel()
	pattern := strings.TrimSuffix(markerVar, "D") + "[D]=" + marker
	script := "for f in $(grep -l " + deploy.Quote(pattern) + " /proc/[0-9]*/cmdline 2>/dev/null); do p=${f#/proc/}; p=${p%/cmdline}; kill -s " +
		deploy.Quote(string(sig)) + " -- -$p $p 2>/dev/null; done; true"
	sess, err := b.newSession(ctx)
	if err != nil {
		b.d.logf("ssh %s: cannot stop command %s: %v", b.label, marker, err)
		return
	}
	err = b.await(ctx, "the command that kills the cancelled one", left, func() error {
		return sess.Run((&deploy.Command{Args: []string{script}}).String())
	})
	go func() {
		sess.Close()
		b.release()
	}()
	if err != nil {
		b.d.logf("ssh %s: stop command %s: %v", b.label, marker, err)
	}
}

func randomID() string {
	var r [8]byte
	rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// runError describes err, which ended a command. Under an ended context
// the context's cause is the error, with what the host left undone (a
// *NoAnswerError or a lost connection) after it.
func (b *Backend) runError(ctx context.Context, c *deploy.Command, err error) error {
	if ctx.Err() != nil {
		// The command's own Timeout is the cause; a parent's deadline or
		// cancellation is reported as such.
		cause := ctx.Err()
		var te *deploy.TimeoutError
		if errors.As(context.Cause(ctx), &te) {
			cause = te
		}
		var na *NoAnswerError
		switch {
		case errors.As(err, &na):
			return b.errorf("%w: %w", cause, na)
		case b.conn.dead():
			return b.errorf("%w: %w", cause, b.conn.lost())
		}
		return b.errorf("%w", cause)
	}
	if b.conn.dead() {
		return b.errorf("%w", b.conn.lost())
	}
	return b.errorf("%w", err)
}

// Close closes the connection, then the SFTP client, and releases the jump
// host connection. It never waits on the host: the socket is closed first,
// which ends every wait on it (an SFTP client closed first would wait for
// the server to close its end). Commands still running there go on unless
// they read stdin or write to the closed channel. It is safe to call more
// than once.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		b.conn.close()
		b.d.releaseJump(b.via)
		b.via = nil
		// The SFTP client's goroutines end with the connection; a
		// transfer that holds the lock lets go of it shortly.
		go func() {
			b.sftpLock <- struct{}{}
			if b.sftp != nil {
				b.sftp.Close()
				b.sftpSess.Close()
				b.sftp, b.sftpSess = nil, nil
			}
			<-b.sftpLock
		}()
	})
	return nil
}
