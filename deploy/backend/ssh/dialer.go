// Package ssh is davit's SSH transport: a deploy.Backend over
// golang.org/x/crypto/ssh that keeps one connection per host for the whole
// run and multiplexes every command, upload and download over it.
//
// It reads ~/.ssh/config (HostName, User, Port, IdentityFile, ProxyJump,
// ConnectTimeout, ServerAliveInterval/CountMax, StrictHostKeyChecking,
// UserKnownHostsFile, IdentityAgent, IdentitiesOnly, HostKeyAlias,
// HashKnownHosts), authenticates with the agent and then key files,
// verifies host keys against known_hosts, and stays within stock sshd
// limits (MaxSessions 10, MaxStartups 10:30:100) so it works against a
// default server.
package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/user"
	"strings"
	"sync"
	"syscall"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/davit-deploy/davit/deploy"
)

// Defaults for Options left zero.
const (
	DefaultConnectTimeout = 30 * time.Second
	// DefaultKeepAlive and DefaultKeepAliveCountMax are on unless
	// ssh_config or Options say otherwise: a deploy tool has to notice a
	// dead host without its user knowing ServerAliveInterval. A host that
	// answers none for about 45 s is given up.
	DefaultKeepAlive         = 15 * time.Second
	DefaultKeepAliveCountMax = 3
	// DefaultMaxSessions matches sshd's default MaxSessions: more sessions
	// at once on one connection are refused by a stock server.
	DefaultMaxSessions = 10
	// DefaultMaxDials stays under sshd's MaxStartups 10, beyond which it
	// starts dropping unauthenticated connections at random.
	DefaultMaxDials = 8
	// DefaultKillGrace is how long a cancelled command has to exit after
	// SIGTERM before it is killed and its session closed.
	DefaultKillGrace = time.Second
)

// Options configure a Dialer. Every field is optional.
type Options struct {
	// ConfigFile is an ssh_config file. Empty reads ~/.ssh/config (if it
	// exists) and /etc/ssh/ssh_config, as ssh does; "none" reads nothing;
	// a path reads only that file, as `ssh -F` does.
	ConfigFile string
	// User is the login user unless the host names one; it overrides
	// ssh_config's User, as `ssh -l` does. Default: ssh_config's User,
	// else the local user.
	User string
	// KnownHostsFiles replace ssh_config's UserKnownHostsFile and
	// GlobalKnownHostsFile and the defaults (~/.ssh/known_hosts,
	// /etc/ssh/ssh_known_hosts). accept-new records keys in the first.
	KnownHostsFiles []string
	// HostKeyPolicy: empty takes StrictHostKeyChecking from ssh_config,
	// else strict.
	HostKeyPolicy HostKeyPolicy
	// IdentityFiles are tried after the agent's keys, before ssh_config's
	// IdentityFile entries. With neither, ~/.ssh/id_{rsa,ecdsa,ed25519}.
	IdentityFiles []string
	// AgentSocket is the ssh-agent socket: empty uses ssh_config's
	// IdentityAgent or $SSH_AUTH_SOCK; "none" disables the agent.
	AgentSocket string
	// Passphrase returns the passphrase of a protected key file. When nil,
	// davit asks on the terminal, and without one fails naming the file.
	Passphrase func(keyFile string) ([]byte, error)
	// ConnectTimeout bounds dialing plus the SSH handshake. Zero takes
	// ssh_config's ConnectTimeout, else DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// KeepAlive is the interval of keepalive@openssh.com requests; a
	// connection that misses KeepAliveCountMax answers in a row is closed
	// as dead, failing its commands with a *NoAnswerError. Zero takes
	// ssh_config's ServerAliveInterval (where 0 turns keepalives off),
	// else DefaultKeepAlive; negative disables keepalives.
	KeepAlive time.Duration
	// KeepAliveCountMax zero takes ssh_config's ServerAliveCountMax, else
	// DefaultKeepAliveCountMax.
	KeepAliveCountMax int
	// AnswerTimeout is how long, once a context is done, davit waits for
	// the host to answer (stop a command, start one, finish a transfer)
	// before it abandons the connection. Default DefaultAnswerTimeout.
	AnswerTimeout time.Duration
	// MaxSessions bounds concurrent sessions per connection (the SFTP
	// client, once opened, holds one). Default DefaultMaxSessions.
	MaxSessions int
	// MaxDials bounds concurrent connection attempts to one address.
	// Default DefaultMaxDials.
	MaxDials int
	// KillGrace is the time between SIGTERM and SIGKILL for a cancelled
	// or timed-out command. Default DefaultKillGrace.
	KillGrace time.Duration
	// DisableSFTP makes Upload and Download stream through `cat` even when
	// the server has an sftp subsystem.
	DisableSFTP bool
	// Logf receives debug messages (retries, skipped keys, recorded host
	// keys). Nil discards them.
	Logf func(format string, args ...any)
}

// Dialer opens SSH backends. One Dialer serves a whole run: it caches
// parsed known_hosts files and decrypted keys, shares ProxyJump connections
// between hosts behind the same bastion, and bounds concurrent dials per
// address. It is safe for concurrent use.
type Dialer struct {
	opts      Options
	config    *sshConfig
	home      string
	localUser string
	getenv    func(string) string
	ttyPath   string

	mu       sync.Mutex
	khCache  map[string]*knownHostsDB
	keys     map[string]*identity
	dialSems map[string]chan struct{}
	jumps    map[string]*jumpConn
	promptMu sync.Mutex
}

// NewDialer checks opts and reads ssh_config.
func NewDialer(opts Options) (*Dialer, error) {
	switch opts.HostKeyPolicy {
	case "", HostKeyStrict, HostKeyAcceptNew, HostKeyOff:
	default:
		return nil, fmt.Errorf("ssh: unknown host key policy %q (want strict, accept-new or off)", opts.HostKeyPolicy)
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.MaxDials <= 0 {
		opts.MaxDials = DefaultMaxDials
	}
	if opts.KillGrace <= 0 {
		opts.KillGrace = DefaultKillGrace
	}
	if opts.AnswerTimeout <= 0 {
		opts.AnswerTimeout = DefaultAnswerTimeout
	}
	d := &Dialer{
		opts:     opts,
		getenv:   os.Getenv,
		ttyPath:  "/dev/tty",
		khCache:  map[string]*knownHostsDB{},
		keys:     map[string]*identity{},
		dialSems: map[string]chan struct{}{},
		jumps:    map[string]*jumpConn{},
	}
	d.home, _ = os.UserHomeDir()
	if u, err := user.Current(); err == nil {
		d.localUser = u.Username
	}
	var err error
	switch opts.ConfigFile {
	case "none":
		d.config = &sshConfig{}
	case "":
		path := ""
		if d.home != "" {
			path = d.home + "/.ssh/config"
		}
		d.config, err = loadConfig(path, false)
	default:
		d.config, err = loadConfig(d.expand(opts.ConfigFile, &endpoint{}, ""), true)
	}
	if err != nil {
		return nil, fmt.Errorf("ssh: %w", err)
	}
	return d, nil
}

func (d *Dialer) logf(format string, args ...any) {
	if d.opts.Logf != nil {
		d.opts.Logf(format, args...)
	}
}

// Connect opens the host's connection (through its ProxyJump hosts, if
// any) and returns its backend. Its signature is deploy.Connect, so a
// deploy.Pool built on it opens each host once per run.
func (d *Dialer) Connect(ctx context.Context, h *deploy.Host) (deploy.Backend, error) {
	b, err := d.ConnectBackend(ctx, h)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// ConnectBackend is Connect returning the concrete type.
func (d *Dialer) ConnectBackend(ctx context.Context, h *deploy.Host) (*Backend, error) {
	e, err := d.resolve(h)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", h, err)
	}
	var via *jumpConn
	if len(e.jumps) > 0 {
		if via, err = d.jumpChain(ctx, e.jumps); err != nil {
			return nil, fmt.Errorf("ssh %s: %w", e.label, err)
		}
	}
	c, err := d.dial(ctx, e, via)
	if err != nil {
		d.releaseJump(via)
		return nil, fmt.Errorf("ssh %s: %w", e.destination(), err)
	}
	return newBackend(d, h, c, via), nil
}

// dialSem returns the semaphore bounding concurrent dials to addr.
func (d *Dialer) dialSem(addr string) chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.dialSems[addr]
	if !ok {
		s = make(chan struct{}, d.opts.MaxDials)
		d.dialSems[addr] = s
	}
	return s
}

// dial connects to e (through via when set) and completes the SSH
// handshake, retrying when sshd dropped the connection before its banner,
// which is what MaxStartups does to excess unauthenticated connections.
func (d *Dialer) dial(ctx context.Context, e *endpoint, via *jumpConn) (*conn, error) {
	if e.connectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, e.connectTimeout, fmt.Errorf("connection timed out after %s", e.connectTimeout))
		defer cancel()
	}
	sem := d.dialSem(e.addr())
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	defer func() { <-sem }()

	hostKeys, algos, err := d.hostKeyCheck(e)
	if err != nil {
		return nil, err
	}
	// Retries of dropped connections are bounded by time, not by count:
	// on a loaded server (or a loaded control machine) each handshake takes
	// longer, and a fixed number of quick retries runs out while the
	// connections ahead in sshd's queue are still being served.
	giveUp := time.Now().Add(droppedRetryBudget)
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		a := &auth{d: d, e: e}
		cfg := &xssh.ClientConfig{
			User:              e.user,
			Auth:              []xssh.AuthMethod{a.method()},
			HostKeyCallback:   hostKeys,
			HostKeyAlgorithms: algos,
			ClientVersion:     "SSH-2.0-davit",
		}
		client, err := d.handshake(ctx, e, via, cfg)
		if err != nil && ctx.Err() != nil {
			// The abandoned handshake may still be asking for a
			// passphrase, holding a's lock: let go of a in the background.
			go a.close()
			return nil, err
		}
		a.close()
		if err == nil {
			return newConn(client, e.keepAlive, e.keepAliveMax), nil
		}
		var dropped *droppedError
		if !errors.As(err, &dropped) || time.Now().Add(backoff).After(giveUp) {
			if errors.As(err, &dropped) {
				err = fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
			}
			return nil, d.explainNoCommonHostKey(e, a.explain(err))
		}
		d.logf("ssh %s: %v; retrying in %s", e.destination(), err, backoff)
		t := time.NewTimer(backoff + rand.N(backoff))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (after: %v)", context.Cause(ctx), err)
		}
		backoff = min(2*backoff, time.Second)
	}
}

// droppedRetryBudget is how long a connect keeps retrying a server that
// drops connections before its banner (sshd's MaxStartups).
const droppedRetryBudget = 10 * time.Second

// droppedError marks a connection the server closed before sending its
// SSH banner: worth another try.
type droppedError struct{ err error }

func (e *droppedError) Error() string {
	return "server closed the connection before the SSH handshake (sshd MaxStartups?): " + e.err.Error()
}
func (e *droppedError) Unwrap() error { return e.err }

func (d *Dialer) handshake(ctx context.Context, e *endpoint, via *jumpConn, cfg *xssh.ClientConfig) (*xssh.Client, error) {
	var raw net.Conn
	var err error
	if via != nil {
		raw, err = via.conn.client.DialContext(ctx, "tcp", e.addr())
		if err != nil {
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			return nil, fmt.Errorf("dial %s through %s: %w", e.addr(), via.label, err)
		}
	} else {
		// net.Dialer leaves TCP_NODELAY on: small command packets go out
		// at once.
		var nd net.Dialer
		raw, err = nd.DialContext(ctx, "tcp", e.addr())
		if err != nil {
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			return nil, err
		}
	}
	bc := &bannerConn{Conn: raw}
	// x/crypto's handshake has no context. When ctx ends (ConnectTimeout
	// included) the socket is closed, which ends the handshake over TCP,
	// and the wait ends at once either way: a channel through a jump host
	// ends only when the jump host relays the close, which a frozen one
	// never does.
	type result struct {
		c     xssh.Conn
		chans <-chan xssh.NewChannel
		reqs  <-chan *xssh.Request
		err   error
	}
	done := make(chan result, 1)
	go func() {
		c, chans, reqs, err := xssh.NewClientConn(bc, e.addr(), cfg)
		done <- result{c, chans, reqs, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		go raw.Close()
		go func() {
			if r := <-done; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, context.Cause(ctx)
	}
	c, chans, reqs, err := r.c, r.chans, r.reqs, r.err
	if err != nil {
		raw.Close()
		if !bc.sawBanner() && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || strings.Contains(err.Error(), "connection reset")) {
			return nil, &droppedError{err}
		}
		return nil, err
	}
	return xssh.NewClient(c, chans, reqs), nil
}

// bannerConn remembers whether the server got as far as its SSH banner.
type bannerConn struct {
	net.Conn
	mu     sync.Mutex
	seen   []byte
	banner bool
}

func (c *bannerConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if !c.banner && len(c.seen) < 512 {
			c.seen = append(c.seen, p[:min(n, 512)]...)
			c.banner = strings.Contains(string(c.seen), "SSH-")
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *bannerConn) sawBanner() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.banner
}

// jumpConn is a shared connection to a ProxyJump host. Hosts behind the
// same bastion multiplex their connections over one SSH connection to it,
// as OpenSSH's ControlMaster would, instead of each logging in again.
type jumpConn struct {
	key    string
	label  string
	parent *jumpConn
	refs   int // guarded by Dialer.mu
	ready  chan struct{}
	conn   *conn
	err    error
}

// jumpChain connects (or reuses connections) to each hop in turn and
// returns the last one, referenced once for the caller.
func (d *Dialer) jumpChain(ctx context.Context, specs []string) (*jumpConn, error) {
	var prev *jumpConn
	key := ""
	for _, spec := range specs {
		h, err := deploy.ParseHost(strings.TrimPrefix(spec, "ssh://"))
		if err != nil {
			d.releaseJump(prev)
			return nil, fmt.Errorf("ProxyJump %q: %w", spec, err)
		}
		h.Backend = "ssh"
		e, err := d.resolve(h)
		if err != nil {
			d.releaseJump(prev)
			return nil, fmt.Errorf("jump host %s: %w", spec, err)
		}
		key += ">" + e.user + "@" + e.addr()
		j, err := d.acquireJump(ctx, key, e, prev)
		d.releaseJump(prev) // j holds its own reference on prev
		if err != nil {
			return nil, err
		}
		prev = j
	}
	return prev, nil
}

func (d *Dialer) acquireJump(ctx context.Context, key string, e *endpoint, parent *jumpConn) (*jumpConn, error) {
	d.mu.Lock()
	j, ok := d.jumps[key]
	if ok && j.conn != nil && j.conn.dead() {
		ok = false // replace it; holders of the old one keep it until released
	}
	if ok {
		j.refs++
		d.mu.Unlock()
		select {
		case <-j.ready:
		case <-ctx.Done():
			d.releaseJump(j)
			return nil, context.Cause(ctx)
		}
		if j.err != nil {
			d.releaseJump(j)
			return nil, j.err
		}
		return j, nil
	}
	j = &jumpConn{key: key, label: "jump host " + e.destination(), parent: parent, refs: 1, ready: make(chan struct{})}
	if parent != nil {
		parent.refs++
	}
	d.jumps[key] = j
	d.mu.Unlock()
	j.conn, j.err = d.dial(ctx, e, parent)
	if j.err != nil {
		j.err = fmt.Errorf("%s: %w", j.label, j.err)
		d.mu.Lock()
		if d.jumps[key] == j {
			delete(d.jumps, key)
		}
		d.mu.Unlock()
	}
	close(j.ready)
	if j.err != nil {
		d.releaseJump(j)
		return nil, j.err
	}
	return j, nil
}

// releaseJump drops a reference; the last one closes the connection and
// releases the hop before it.
func (d *Dialer) releaseJump(j *jumpConn) {
	for j != nil {
		d.mu.Lock()
		j.refs--
		last := j.refs == 0
		if last && d.jumps[j.key] == j {
			delete(d.jumps, j.key)
		}
		d.mu.Unlock()
		if !last {
			return
		}
		if j.conn != nil {
			j.conn.close()
		}
		j = j.parent
	}
}
