// Package sshtest starts real OpenSSH sshd servers on loopback addresses for
// tests, so davit's SSH code is exercised against the server it meets in
// production rather than a fake that forgives its mistakes.
//
// Each server listens on its own address 127.0.0.x (x from 2 upward) with
// freshly generated host keys and key-only authentication for the current
// user. Stock limits are left alone (MaxSessions 10, MaxStartups 10:30:100,
// AcceptEnv LANG LC_*), so a client that passes here works against a default
// server. The fleet writes a client key, a known_hosts file and an
// ssh_config file mapping host1…hostN to the servers, and stops everything
// when the test ends.
//
// When run as root (as CI is), every sshd runs in its own mount namespace
// (`unshare --mount`) with an empty private home directory bind-mounted over
// the user's home, and optionally private directories over other paths
// (Options.Isolate): every simulated host then has the same deploy path but
// its own tree, and the test runner's shell startup files stay out of the
// servers' commands.
//
// Faults, to see how a client copes with a fleet that fails:
//
//   - Server.Stop kills sshd and everything it started (connection
//     processes, session commands), as if the machine went down: clients
//     see their connections drop and new ones refused. Server.Restart
//     brings it back on the same address, port and host keys.
//   - Server.Freeze sends SIGSTOP to sshd and every process below it, so
//     established connections and their running commands freeze too; the
//     sockets stay open and nothing answers, which only timeouts and
//     keepalives can tell. Server.Resume sends SIGCONT.
//   - StartSilent starts a "server" on 127.0.0.x that accepts TCP
//     connections and never sends a byte: a host whose sshd hangs before
//     its banner, or a firewall that accepts and blackholes.
//
// The fleet's files (keys, sshd_config, authorized_keys) live in a 0700
// directory outside /tmp, because sshd's StrictModes rejects an
// authorized_keys file below a world-writable directory.
package sshtest

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/davit-deploy/davit/deploy"
)

// SSHDPath is where Debian's openssh-server installs sshd. sshd must be run
// by absolute path because it re-executes itself for every connection.
const SSHDPath = "/usr/sbin/sshd"

// sftpServers are the usual places of OpenSSH's sftp-server; the first that
// exists is used, else sshd's built-in internal-sftp.
var sftpServers = []string{"/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server"}

// Options shape a fleet. The zero value starts one server with an ed25519
// host key and an sftp subsystem.
type Options struct {
	// N is how many servers to start; 0 means 1.
	N int
	// HostKeyTypes lists each server's host key types: "ed25519" (the
	// default), "ecdsa" or "rsa". Server.HostKey is the first.
	HostKeyTypes []string
	// NoSFTP leaves out the sftp subsystem, so clients have to fall back to
	// plain commands for file transfer.
	NoSFTP bool
	// Isolate lists absolute directory paths that each server sees as its
	// own private directory: every sshd runs under `unshare --mount` with a
	// per-server directory bind-mounted over each path. All hosts then share
	// one deploy path, as real servers do, but not its contents. Server.
	// IsolatedDir gives the private directory as seen from the test. A path
	// that does not exist is created (and removed again when empty).
	Isolate []string
	// SharedHome lets the servers use the login user's real home
	// directory. By default each server gets an empty private home of its
	// own (isolated like Isolate), as remote hosts do: the test runner's
	// shell startup files, which Debian's bash reads for every command sshd
	// runs, then neither slow every command down nor get killed half-way
	// when a test stops a server, and files written to ~ stay on that
	// server. Without root or unshare the home is shared regardless.
	SharedHome bool
	// DiskSize limits the private directory of every isolated path (the
	// private home too) to a
	// tmpfs of this size ("4m"), so a test can fill a server's disk (the
	// deploy path's, at least) without filling the machine's. Needs root.
	DiskSize string
	// SSHDConfig adds lines to every server's sshd_config, ahead of the
	// defaults so they win, for tests that need a non-default server (e.g.
	// "MaxSessions 2", "LogLevel DEBUG1").
	SSHDConfig []string
}

// Fleet is a set of running sshd servers and the client files that reach
// them.
type Fleet struct {
	Servers []*Server
	// Dir holds the fleet's files. It is mode 0700 on a path sshd's
	// StrictModes accepts (not under a world-writable directory).
	Dir string
	// User is the login user: the user running the test.
	User string
	// ClientKeyPath is an unencrypted ed25519 private key (OpenSSH format,
	// mode 0600) that every server accepts; ClientKeyPath+".pub" is its
	// public half.
	ClientKeyPath string
	// ClientSigner is the same key, for in-process clients and agents.
	ClientSigner ssh.Signer
	// KnownHostsPath lists every server's host keys as `[127.0.0.x]:port
	// type key` lines.
	KnownHostsPath string
	// SSHConfigPath is an ssh_config file with a "Host hostN" block per
	// server giving HostName, Port, User, IdentityFile and
	// UserKnownHostsFile, usable by davit and by OpenSSH's ssh -F.
	SSHConfigPath string

	t         testing.TB
	sshd      string
	unshare   string
	version   [2]int
	strict    bool
	createdMP []string
	tmpfs     []string // mounted for DiskSize, unmounted at cleanup
}

// Server is one sshd process.
type Server struct {
	// Name is the server's alias in the fleet's ssh_config: host1, host2, …
	Name string
	// Host is the loopback address it listens on, e.g. 127.0.0.2.
	Host string
	Port int
	// Addr is Host:Port.
	Addr string
	// HostKey is the server's first host key; HostKeys has all of them.
	HostKey  ssh.PublicKey
	HostKeys []ssh.PublicKey
	// User is the login user.
	User string
	// Dir holds this server's sshd_config, host keys and log.
	Dir string

	fleet    *Fleet
	config   string
	logPath  string
	isolated map[string]string // path inside the namespace → private dir

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	paused  []int
	running bool
}

// Start starts a fleet described by opts and stops it when the test ends.
// Without sshd it skips the test, unless the environment says CI=true: CI
// must not pass by skipping what it exists to run.
func Start(t testing.TB, opts Options) *Fleet {
	t.Helper()
	f, err := start(t, opts)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	return f
}

// StartN starts n default servers.
func StartN(t testing.TB, n int) *Fleet {
	t.Helper()
	return Start(t, Options{N: n})
}

func requireTool(t testing.TB, path, why string) string {
	t.Helper()
	p, err := exec.LookPath(path)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("sshtest: %s not found (%s): %v", path, why, err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func start(t testing.TB, opts Options) (*Fleet, error) {
	n := max(opts.N, 1)
	if n > 250 {
		return nil, fmt.Errorf("at most 250 servers (127.0.0.2–127.0.0.251), asked for %d", n)
	}
	f := &Fleet{t: t}
	f.sshd = requireTool(t, SSHDPath, "install openssh-server")
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("current user: %w", err)
	}
	f.User = u.Username
	f.version = sshdVersion(f.sshd)
	// sshd refuses to start without its privilege separation directory,
	// which Debian creates only when the service starts.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil && os.Geteuid() == 0 {
		return nil, fmt.Errorf("create /run/sshd: %w", err)
	}
	isolate := slices.Clone(opts.Isolate)
	if len(isolate) > 0 {
		f.unshare = requireTool(t, "unshare", "install util-linux; needed for Options.Isolate")
		if os.Geteuid() != 0 {
			msg := "sshtest: Options.Isolate needs root for mount namespaces"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	if !opts.SharedHome && u.HomeDir != "" && u.HomeDir != "/" {
		if p, err := exec.LookPath("unshare"); err == nil && os.Geteuid() == 0 {
			f.unshare = p
			isolate = append(isolate, u.HomeDir)
		} else {
			t.Logf("sshtest: servers share the real home %s (private homes need root and unshare)", u.HomeDir)
		}
	}
	if f.Dir, f.strict, err = fleetDir(t, u, isolate); err != nil {
		return nil, err
	}
	t.Cleanup(f.cleanup)
	if !f.strict {
		t.Logf("sshtest: no directory sshd's StrictModes accepts; running with StrictModes no in %s", f.Dir)
	}
	for _, p := range isolate {
		if !filepath.IsAbs(p) || filepath.Clean(p) == "/" {
			return nil, fmt.Errorf("isolate %q: need an absolute path other than /", p)
		}
		if within(f.Dir, p) {
			return nil, fmt.Errorf("isolate %q: it contains the fleet directory %s, which sshd must still see", p, f.Dir)
		}
		// A bind mount needs a mount point in the parent namespace.
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			if err := f.makeMountPoint(filepath.Clean(p)); err != nil {
				return nil, err
			}
		}
	}
	if err := f.writeClientKey(); err != nil {
		return nil, err
	}
	types := opts.HostKeyTypes
	if len(types) == 0 {
		types = []string{"ed25519"}
	}
	sftp := "internal-sftp"
	for _, p := range sftpServers {
		if _, err := os.Stat(p); err == nil {
			sftp = p
			break
		}
	}
	for i := range n {
		s, err := f.newServer(i, types, opts, isolate, sftp)
		if err != nil {
			return nil, err
		}
		f.Servers = append(f.Servers, s)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, s := range f.Servers {
		wg.Go(func() { errs[i] = s.startWithRetry() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := f.writeClientFiles(); err != nil {
		return nil, err
	}
	return f, nil
}

// fleetDir picks a private directory for the fleet's files. sshd's
// StrictModes rejects an authorized_keys file below a group- or
// world-writable directory, and t.TempDir() normally sits under /tmp, so
// unless TMPDIR is already safe the files go under the user's cache
// directory, or the runtime directory when the home is isolated.
// StrictModes is turned off only when no candidate is safe.
func fleetDir(t testing.TB, u *user.User, isolate []string) (dir string, strict bool, err error) {
	uid, _ := strconv.Atoi(u.Uid)
	td := t.TempDir()
	hidden := func(p string) bool {
		for _, iso := range isolate {
			if within(p, iso) {
				return true
			}
		}
		return false
	}
	if secureForSSHD(td, uid, u.HomeDir) && !hidden(td) {
		return td, true, nil
	}
	var bases []string
	if cache, err := os.UserCacheDir(); err == nil {
		bases = append(bases, filepath.Join(cache, "davit-sshtest"))
	}
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" {
		bases = append(bases, filepath.Join(rt, "davit-sshtest"))
	}
	if uid == 0 {
		bases = append(bases, "/run/davit-sshtest")
	}
	for _, base := range bases {
		if hidden(base) {
			continue
		}
		if err := os.MkdirAll(base, 0o700); err != nil || !secureForSSHD(base, uid, u.HomeDir) {
			continue
		}
		d, err := os.MkdirTemp(base, "fleet-")
		if err != nil {
			continue
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		return d, true, nil
	}
	if hidden(td) {
		return "", false, fmt.Errorf("no directory for the fleet's files outside the isolated paths %v", isolate)
	}
	return td, false, nil
}

// secureForSSHD mirrors sshd's safe_path check: every directory from dir up
// to the user's home (or up to, but not including, /) must be owned by root
// or the user and not be group- or world-writable.
func secureForSSHD(dir string, uid int, home string) bool {
	p, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false
	}
	for {
		st, err := os.Stat(p)
		if err != nil {
			return false
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok || (sys.Uid != 0 && int(sys.Uid) != uid) || st.Mode().Perm()&0o022 != 0 {
			return false
		}
		if p == home {
			return true
		}
		parent := filepath.Dir(p)
		if parent == p || parent == "/" {
			return true
		}
		p = parent
	}
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

var versionRE = regexp.MustCompile(`OpenSSH_(\d+)\.(\d+)`)

func sshdVersion(sshd string) [2]int {
	out, _ := exec.Command(sshd, "-V").CombinedOutput()
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return [2]int{}
	}
	a, _ := strconv.Atoi(string(m[1]))
	b, _ := strconv.Atoi(string(m[2]))
	return [2]int{a, b}
}

func (f *Fleet) writeClientKey() error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	f.ClientSigner, err = ssh.NewSignerFromKey(priv)
	if err != nil {
		return err
	}
	f.ClientKeyPath = filepath.Join(f.Dir, "id_ed25519")
	if err := writePrivateKey(f.ClientKeyPath, priv, "davit-sshtest-client"); err != nil {
		return err
	}
	pub := ssh.MarshalAuthorizedKey(f.ClientSigner.PublicKey())
	if err := os.WriteFile(f.ClientKeyPath+".pub", pub, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(f.Dir, "authorized_keys"), pub, 0o600)
}

func writePrivateKey(path string, key any, comment string) error {
	block, err := ssh.MarshalPrivateKey(key, comment)
	if err != nil {
		return fmt.Errorf("marshal %s: %w", path, err)
	}
	return os.WriteFile(path, pem.EncodeToMemory(block), 0o600)
}

// GenerateHostKey makes a private key of the given type ("ed25519",
// "ecdsa" or "rsa").
func GenerateHostKey(typ string) (any, error) {
	switch typ {
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case "ecdsa":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("unknown host key type %q (want ed25519, ecdsa or rsa)", typ)
}

func (f *Fleet) newServer(i int, types []string, opts Options, isolate []string, sftp string) (*Server, error) {
	s := &Server{
		Name:  fmt.Sprintf("host%d", i+1),
		Host:  fmt.Sprintf("127.0.0.%d", i+2),
		User:  f.User,
		fleet: f,
	}
	s.Dir = filepath.Join(f.Dir, s.Name)
	if err := os.Mkdir(s.Dir, 0o700); err != nil {
		return nil, err
	}
	var keyLines []string
	for _, typ := range types {
		key, err := GenerateHostKey(typ)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		signer, err := ssh.NewSignerFromKey(key)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(s.Dir, "ssh_host_"+typ+"_key")
		if err := writePrivateKey(path, key, s.Name); err != nil {
			return nil, err
		}
		s.HostKeys = append(s.HostKeys, signer.PublicKey())
		keyLines = append(keyLines, "HostKey "+path)
	}
	s.HostKey = s.HostKeys[0]
	s.isolated = map[string]string{}
	for i, p := range isolate {
		p = filepath.Clean(p)
		// Flat names: one isolated path may lie inside another.
		priv := filepath.Join(s.Dir, "isolated", fmt.Sprintf("%d%s", i, strings.ReplaceAll(p, "/", "_")))
		mode, uid, gid := os.FileMode(0o755), os.Getuid(), os.Getgid()
		if st, err := os.Stat(p); err == nil {
			mode = st.Mode().Perm() | st.Mode()&os.ModeSticky
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				uid, gid = int(sys.Uid), int(sys.Gid)
			}
		}
		if err := os.MkdirAll(priv, 0o755); err != nil {
			return nil, err
		}
		if err := os.Chmod(priv, mode); err != nil {
			return nil, err
		}
		if opts.DiskSize != "" {
			// Mounted before sshd starts, so the bind mount in sshd's
			// namespace is of the tmpfs, and the test sees what the
			// server writes.
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+opts.DiskSize+",mode="+strconv.FormatUint(uint64(mode.Perm()), 8), "davit-sshtest", priv).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("mount a %s tmpfs on %s: %v: %s", opts.DiskSize, priv, err, out)
			}
			f.tmpfs = append(f.tmpfs, priv)
		}
		if err := os.Lchown(priv, uid, gid); err != nil && os.Geteuid() == 0 {
			return nil, err
		}
		s.isolated[p] = priv
	}
	// sshd keeps the first value it reads for most keywords, so the
	// test's own lines go first.
	lines := append([]string{"# sshtest: stock limits, key-only login for " + f.User}, opts.SSHDConfig...)
	lines = append(lines,
		"ListenAddress "+s.Host,
		"AddressFamily inet",
	)
	lines = append(lines, keyLines...)
	lines = append(lines,
		"PidFile none",
		"AuthorizedKeysFile "+filepath.Join(f.Dir, "authorized_keys"),
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"PermitRootLogin prohibit-password",
		"StrictModes "+map[bool]string{true: "yes", false: "no"}[f.strict],
		"AcceptEnv LANG LC_*",
		"LogLevel VERBOSE",
	)
	// From 9.8 on, sshd penalises sources whose connections fail or end
	// before authentication; every test client here is 127.0.0.1, and the
	// tests provoke such failures on purpose.
	if f.version[0] > 9 || (f.version[0] == 9 && f.version[1] >= 8) {
		lines = append(lines, "PerSourcePenalties no")
	}
	if !opts.NoSFTP {
		lines = append(lines, "Subsystem sftp "+sftp)
	}
	s.config = strings.Join(lines, "\n") + "\n"
	s.logPath = filepath.Join(s.Dir, "sshd.log")
	return s, nil
}

// writeClientFiles writes known_hosts and ssh_config once every port is
// known.
func (f *Fleet) writeClientFiles() error {
	var kh, cfg strings.Builder
	for _, s := range f.Servers {
		for _, l := range s.KnownHostsLines() {
			kh.WriteString(l + "\n")
		}
	}
	f.KnownHostsPath = filepath.Join(f.Dir, "known_hosts")
	if err := os.WriteFile(f.KnownHostsPath, []byte(kh.String()), 0o600); err != nil {
		return err
	}
	for _, s := range f.Servers {
		fmt.Fprintf(&cfg, "Host %s\n  HostName %s\n  Port %d\n  User %s\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n  BatchMode yes\n\n",
			s.Name, s.Host, s.Port, s.User, f.ClientKeyPath, f.KnownHostsPath)
	}
	f.SSHConfigPath = filepath.Join(f.Dir, "ssh_config")
	return os.WriteFile(f.SSHConfigPath, []byte(cfg.String()), 0o600)
}

// AuthorizeKey lets key log in to every server too (sshd rereads
// authorized_keys on each login).
func (f *Fleet) AuthorizeKey(key ssh.PublicKey) error {
	af, err := os.OpenFile(filepath.Join(f.Dir, "authorized_keys"), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	_, err = af.Write(ssh.MarshalAuthorizedKey(key))
	if cerr := af.Close(); err == nil {
		err = cerr
	}
	return err
}

// KnownHostsLines returns one known_hosts line per host key, in the
// `[host]:port type base64` form OpenSSH uses for non-default ports.
func (s *Server) KnownHostsLines() []string {
	var out []string
	for _, k := range s.HostKeys {
		out = append(out, fmt.Sprintf("[%s]:%d %s", s.Host, s.Port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))))
	}
	return out
}

// DeployHost describes the server as a deploy.Host with its address, port
// and user filled in, so it works with or without the fleet's ssh_config.
// Its Name is the ssh_config alias.
func (s *Server) DeployHost() *deploy.Host {
	return &deploy.Host{Name: s.Name, Address: s.Host, Port: s.Port, User: s.User, Backend: "ssh"}
}

// AliasHost describes the server by its ssh_config alias alone; a client
// must read SSHConfigPath to reach it.
func (s *Server) AliasHost() *deploy.Host {
	return &deploy.Host{Name: s.Name, Backend: "ssh"}
}

// Hosts returns DeployHost for every server.
func (f *Fleet) Hosts() []*deploy.Host {
	out := make([]*deploy.Host, len(f.Servers))
	for i, s := range f.Servers {
		out[i] = s.DeployHost()
	}
	return out
}

// AliasHosts returns AliasHost for every server.
func (f *Fleet) AliasHosts() []*deploy.Host {
	out := make([]*deploy.Host, len(f.Servers))
	for i, s := range f.Servers {
		out[i] = s.AliasHost()
	}
	return out
}

// IsolatedDir returns the directory that this server sees at path (one of
// Options.Isolate, or the user's home when it is private), as the test
// process sees it; "" when path is not isolated.
func (s *Server) IsolatedDir(path string) string {
	return s.isolated[filepath.Clean(path)]
}

// Log returns what sshd has logged so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// startWithRetry picks a free port and starts sshd, trying other ports when
// another process took the chosen one in the meantime.
func (s *Server) startWithRetry() error {
	var err error
	for range 3 {
		var port int
		if port, err = freePort(s.Host); err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		s.Port, s.Addr = port, net.JoinHostPort(s.Host, strconv.Itoa(port))
		if err = s.start(); err == nil {
			return nil
		}
		if !strings.Contains(s.Log(), "Address already in use") {
			return err
		}
	}
	return err
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Restart starts a stopped server again on the same address, port and host
// keys. It must not be called while the server runs.
func (s *Server) Restart() error {
	return s.start()
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return fmt.Errorf("%s: already running", s.Name)
	}
	cfgPath := filepath.Join(s.Dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("Port %d\n%s", s.Port, s.config)), 0o600); err != nil {
		return err
	}
	logf, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	var cmd *exec.Cmd
	if len(s.isolated) == 0 {
		cmd = exec.Command(s.fleet.sshd, "-D", "-e", "-f", cfgPath)
	} else {
		script, err := s.isolationScript(cfgPath)
		if err != nil {
			return err
		}
		cmd = exec.Command(s.fleet.unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", script)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig takes the listener down with a crashed test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: start sshd: %w", s.Name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd, s.exited, s.running = cmd, exited, true
	if err := waitReady(s.Addr, exited, 10*time.Second); err != nil {
		s.killLocked()
		return fmt.Errorf("%s (%s): %w\n--- sshd log ---\n%s", s.Name, s.Addr, err, s.Log())
	}
	return nil
}

// isolationScript mounts each private directory over its path inside the
// new mount namespace and then becomes sshd, so the namespace lives exactly
// as long as sshd and its sessions. Parents are mounted before paths inside
// them, whose mount points are then made inside the parent's private copy.
func (s *Server) isolationScript(cfgPath string) (string, error) {
	var b strings.Builder
	paths := slices.Sorted(maps.Keys(s.isolated))
	for _, p := range paths {
		fmt.Fprintf(&b, "mkdir -p %s && mount --bind %s %s && ", deploy.Quote(p), deploy.Quote(s.isolated[p]), deploy.Quote(p))
	}
	fmt.Fprintf(&b, "exec %s -D -e -f %s", deploy.Quote(s.fleet.sshd), deploy.Quote(cfgPath))
	return b.String(), nil
}

func (f *Fleet) makeMountPoint(p string) error {
	var missing []string
	for q := p; ; q = filepath.Dir(q) {
		if _, err := os.Stat(q); err == nil || q == "/" {
			break
		}
		missing = append(missing, q)
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return fmt.Errorf("create mount point %s: %w", p, err)
	}
	f.createdMP = append(f.createdMP, missing...)
	return nil
}

// waitReady dials addr until sshd answers with its SSH-2.0 banner.
func waitReady(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("sshd exited during startup")
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "SSH-2.0-") {
				return nil
			}
			err = fmt.Errorf("unexpected banner %q: %v", line, rerr)
		}
		last = err
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("sshd not ready after %s: %v", timeout, last)
}

// Stop kills the server and everything it started: the per-connection sshd
// processes (which run in sessions of their own) and the commands of every
// open session, as if the machine went down. Clients see their connections
// drop.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	s.killLocked()
	return nil
}

func (s *Server) killLocked() {
	pid := s.cmd.Process.Pid
	// Freeze the tree first so nothing forks while it is being killed,
	// then kill the frozen set.
	var all []int
	seen := map[int]bool{}
	for range 3 {
		added := false
		for _, p := range descendants(pid) {
			if !seen[p] {
				seen[p] = true
				all = append(all, p)
				syscall.Kill(p, syscall.SIGSTOP)
				added = true
			}
		}
		if !added {
			break
		}
	}
	for _, p := range all {
		syscall.Kill(p, syscall.SIGKILL)
	}
	<-s.exited
	s.running, s.paused = false, nil
}

// Freeze stops the server with SIGSTOP: the listening sshd, every
// connection's sshd and every command of every session, so established
// connections freeze too. TCP connections stay open and new ones are still
// accepted by the kernel, but nothing answers: a hung machine, or one whose
// network vanished without a reset. Resume undoes it. Freezing a frozen or
// stopped server does nothing.
func (s *Server) Freeze() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	// Stopped parents fork no more, so a rescan finds any child that was
	// forked while the tree was being frozen.
	seen := map[int]bool{}
	for _, p := range s.paused {
		seen[p] = true
	}
	for range 5 {
		added := false
		for _, p := range descendants(s.cmd.Process.Pid) {
			if seen[p] {
				continue
			}
			seen[p] = true
			if syscall.Kill(p, syscall.SIGSTOP) == nil {
				s.paused = append(s.paused, p)
				added = true
			}
		}
		if !added {
			break
		}
	}
	// SIGSTOP takes effect asynchronously: a process running on another
	// CPU stops a moment later. Return once all of them have (bounded),
	// so the caller really holds a frozen host.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if !slices.ContainsFunc(s.paused, runs) {
			break
		}
	}
}

// Pause is Freeze, by its older name.
func (s *Server) Pause() { s.Freeze() }

// Frozen reports whether the server is frozen.
func (s *Server) Frozen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.paused) > 0
}

// Resume continues a frozen server with SIGCONT.
func (s *Server) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.paused {
		syscall.Kill(p, syscall.SIGCONT)
	}
	s.paused = nil
}

// descendants returns pid and every process below it, parents first,
// from /proc. sshd's connection processes call setsid, so a process group
// kill would miss them.
func descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := procStat(p); len(f) > 1 {
			ppid, _ := strconv.Atoi(f[1])
			children[ppid] = append(children[ppid], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// runs reports whether pid is a live process that is not stopped. A
// zombie (Z) runs nothing: it is a child that exited just as its parent
// was stopped, before the parent could reap it.
func runs(pid int) bool {
	f := procStat(pid)
	return len(f) > 0 && f[0] != "T" && f[0] != "t" && f[0] != "Z" && f[0] != "X"
}

// procStat returns the fields of /proc/PID/stat after the command name
// (which is in parentheses and may hold spaces): state is [0], ppid [1];
// nil for a process that is gone.
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// CPUTime is the CPU time the server has spent so far on everything its
// sshd ran, as a host's own accounting would show it: the listener's user
// and system time and its reaped children's (utime+stime+cutime+cstime:
// the listener reaps each connection's sshd, which reaps its session's
// shell, which reaps what the shell ran), plus the same for descendants
// still alive. It first waits, up to a second, for the connections of a
// run that just ended to be reaped, so their time is counted once.
func (s *Server) CPUTime() time.Duration {
	s.mu.Lock()
	pid := s.cmd.Process.Pid
	s.mu.Unlock()
	tree := descendants(pid)
	for deadline := time.Now().Add(time.Second); len(tree) > 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		tree = descendants(pid)
	}
	var ticks int64
	for _, p := range tree {
		if f := procStat(p); len(f) >= 15 {
			for _, v := range f[11:15] { // utime, stime, cutime, cstime
				n, _ := strconv.ParseInt(v, 10, 64)
				ticks += n
			}
		}
	}
	// USER_HZ, the unit of /proc/PID/stat's times, is 100 on Linux.
	return time.Duration(ticks) * (time.Second / 100)
}

// Stop stops every server.
func (f *Fleet) Stop() {
	var wg sync.WaitGroup
	for _, s := range f.Servers {
		wg.Go(func() { s.Resume(); s.Stop() })
	}
	wg.Wait()
}

func (f *Fleet) cleanup() {
	f.Stop()
	if f.t.Failed() {
		for _, s := range f.Servers {
			log := s.Log()
			if lines := strings.Split(strings.TrimSpace(log), "\n"); len(lines) > 40 {
				log = strings.Join(lines[len(lines)-40:], "\n")
			}
			f.t.Logf("sshtest: %s (%s) sshd log tail:\n%s", s.Name, s.Addr, log)
		}
	}
	for _, m := range f.tmpfs {
		_ = exec.Command("umount", "--lazy", m).Run()
	}
	for i := len(f.createdMP) - 1; i >= 0; i-- {
		os.Remove(f.createdMP[i])
	}
}
