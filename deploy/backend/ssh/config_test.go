package ssh

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/runner"
	"github.com/davit-deploy/davit/deploy/sshtest"
)

func TestResolveFromSSHConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	writeFile(t, cfg, `
Host web
  HostName 127.0.0.9
  Port 2222
  User deploy
  IdentityFile ~/.ssh/id_web
  IdentityFile %d/keys/%r@%h:%p
  ProxyJump bastion,admin@jump2:2200
  ConnectTimeout 7
  ServerAliveInterval 11
  ServerAliveCountMax 4
  StrictHostKeyChecking accept-new
  UserKnownHostsFile ~/kh1 /etc/kh2

Host loose
  StrictHostKeyChecking no
  IdentityAgent none

Host piped
  ProxyCommand nc %h %p

Host quiet
  ServerAliveInterval 0

Host *
  User fallback
  IdentityFile /keys/shared
`)
	d := newDialer(t, Options{ConfigFile: cfg, AgentSocket: ""})
	d.home = "/home/tester"
	d.getenv = func(k string) string { return map[string]string{"SSH_AUTH_SOCK": "/run/agent.sock"}[k] }

	e, err := d.resolve(&deploy.Host{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("hostname", e.hostname, "127.0.0.9")
	check("port", e.port, 2222)
	check("user", e.user, "deploy")
	check("identity files", e.identityFiles, []string{"/home/tester/.ssh/id_web", "/home/tester/keys/deploy@127.0.0.9:2222", "/keys/shared"})
	check("jumps", e.jumps, []string{"bastion", "admin@jump2:2200"})
	check("connect timeout", e.connectTimeout, 7*time.Second)
	check("keepalive", e.keepAlive, 11*time.Second)
	check("keepalive max", e.keepAliveMax, 4)
	check("policy", e.policy, HostKeyAcceptNew)
	check("known hosts", e.knownHosts, []string{"/home/tester/kh1", "/etc/kh2"})
	check("agent", e.agentSocket, "/run/agent.sock")
	check("known_hosts name", e.knownHostsName(), "127.0.0.9:2222")

	// The host's own fields win over ssh_config.
	e, _ = d.resolve(&deploy.Host{Name: "web", Address: "127.0.0.10", User: "root", Port: 22})
	check("address override", e.addr(), "127.0.0.10:22")
	check("user override", e.user, "root")

	e, _ = d.resolve(&deploy.Host{Name: "loose"})
	check("StrictHostKeyChecking no", e.policy, HostKeyAcceptNew)
	check("IdentityAgent none", e.agentSocket, "")
	check("Host * user", e.user, "fallback")
	check("defaults: hostname", e.hostname, "loose")
	check("defaults: port", e.port, 22)
	check("defaults: timeout", e.connectTimeout, DefaultConnectTimeout)
	// Keepalives are on without the user asking: 15 s, 3 misses.
	check("defaults: keepalive", e.keepAlive, 15*time.Second)
	check("defaults: keepalive max", e.keepAliveMax, 3)

	e, _ = d.resolve(&deploy.Host{Name: "quiet"})
	check("ServerAliveInterval 0 turns keepalives off", e.keepAlive, time.Duration(0))

	if _, err := d.resolve(&deploy.Host{Name: "piped"}); err == nil || !strings.Contains(err.Error(), "ProxyCommand") {
		t.Errorf("ProxyCommand: %v", err)
	}

	// Options win over ssh_config.
	d = newDialer(t, Options{ConfigFile: cfg, ConnectTimeout: time.Second, KeepAlive: -1, HostKeyPolicy: HostKeyStrict, AgentSocket: "none", User: "opt"})
	e, _ = d.resolve(&deploy.Host{Name: "web"})
	check("option timeout", e.connectTimeout, time.Second)
	check("option keepalive off", e.keepAlive, time.Duration(0))
	check("option policy", e.policy, HostKeyStrict)
	check("option agent", e.agentSocket, "")
	check("option user beats config", e.user, "opt")

	if _, err := NewDialer(Options{ConfigFile: filepath.Join(dir, "missing")}); err == nil {
		t.Error("an explicit config file that does not exist was accepted")
	}
	if _, err := NewDialer(Options{HostKeyPolicy: "maybe"}); err == nil {
		t.Error("bad policy accepted")
	}
}

// TestConnectByAlias reaches a server knowing only its ssh_config alias:
// HostName, Port, User, IdentityFile and UserKnownHostsFile all come from
// the file.
func TestConnectByAlias(t *testing.T) {
	f := sshtest.StartN(t, 2)
	d := newDialer(t, Options{ConfigFile: f.SSHConfigPath, AgentSocket: "none"})
	for _, s := range f.Servers {
		b := connect(t, d, s.AliasHost())
		if got := strings.Fields(output(t, b, "echo $USER $SSH_CONNECTION")); got[0] != f.User || got[3] != s.Host || got[4] != fmt.Sprint(s.Port) {
			t.Errorf("%s: %v", s.Name, got)
		}
	}
}

// jumpFleet starts four servers logging direct-tcpip requests and writes
// an ssh_config where host3 is behind host1 and host4 behind host1 then
// host2.
func jumpFleet(t *testing.T) (*sshtest.Fleet, string) {
	f := sshtest.Start(t, sshtest.Options{N: 4, SSHDConfig: []string{"LogLevel DEBUG1"}})
	cfg := filepath.Join(t.TempDir(), "config")
	writeFile(t, cfg, "Host host3\n  ProxyJump host1\nHost host4\n  ProxyJump host1,host2\n\n"+readFile(t, f.SSHConfigPath))
	return f, cfg
}

func forwardedTo(s *sshtest.Server, to *sshtest.Server) bool {
	return strings.Contains(s.Log(), fmt.Sprintf("target %s port %d", to.Host, to.Port))
}

func TestProxyJump(t *testing.T) {
	f, cfg := jumpFleet(t)
	h1, h2, h3, h4 := f.Servers[0], f.Servers[1], f.Servers[2], f.Servers[3]
	d := newDialer(t, Options{ConfigFile: cfg, AgentSocket: "none"})

	b := connect(t, d, h3.AliasHost())
	if got := strings.Fields(output(t, b, "echo $SSH_CONNECTION"))[2]; got != h3.Host {
		t.Errorf("host3 command ran on %s", got)
	}
	if !forwardedTo(h1, h3) {
		t.Error("host1 did not forward to host3")
	}

	// Two hops: host1, then host2, then host4.
	b4 := connect(t, d, h4.AliasHost())
	if got := strings.Fields(output(t, b4, "echo $SSH_CONNECTION"))[2]; got != h4.Host {
		t.Errorf("host4 command ran on %s", got)
	}
	if !forwardedTo(h1, h2) || !forwardedTo(h2, h4) {
		t.Error("the chain host1 → host2 → host4 was not used")
	}
	// Both hosts share the one connection to host1.
	if n := strings.Count(h1.Log(), "Accepted publickey"); n != 1 {
		t.Errorf("host1 saw %d logins, want 1 shared jump connection", n)
	}
	b.Close()
	b4.Close()
	d.mu.Lock()
	left := len(d.jumps)
	d.mu.Unlock()
	if left != 0 {
		t.Errorf("%d jump connections left open after closing their users", left)
	}
}

// TestProxyJumpParallel connects hosts behind one bastion at once through a
// pool: one login on the bastion, every host works.
func TestProxyJumpParallel(t *testing.T) {
	f, cfg := jumpFleet(t)
	d := newDialer(t, Options{ConfigFile: cfg, AgentSocket: "none"})
	pool := deploy.NewPool(d.Connect)
	defer pool.Close()
	var mu sync.Mutex
	var ran []string
	err := runner.Parallel{}.Run(context.Background(), []*deploy.Host{f.Servers[2].AliasHost(), f.Servers[3].AliasHost()}, func(ctx context.Context, h *deploy.Host) error {
		b, err := pool.Get(ctx, h)
		if err != nil {
			return err
		}
		out := output(t, b, "echo $SSH_CONNECTION")
		mu.Lock()
		ran = append(ran, strings.Fields(out)[2])
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ran)
	if want := []string{f.Servers[2].Host, f.Servers[3].Host}; !slices.Equal(ran, want) {
		t.Errorf("ran on %v, want %v", ran, want)
	}
	if n := strings.Count(f.Servers[0].Log(), "Accepted publickey"); n != 1 {
		t.Errorf("bastion saw %d logins", n)
	}
}

func TestProxyJumpFailureNamesJumpHost(t *testing.T) {
	f, cfg := jumpFleet(t)
	f.Servers[0].Stop()
	d := newDialer(t, Options{ConfigFile: cfg, AgentSocket: "none", ConnectTimeout: 2 * time.Second})
	_, err := d.Connect(context.Background(), f.Servers[2].AliasHost())
	if err == nil || !strings.Contains(err.Error(), "host3") || !strings.Contains(err.Error(), "jump host host1") {
		t.Fatalf("got %v", err)
	}
}

// TestMaxStartupsRetry: a server that drops unauthenticated connections
// beyond three (as stock MaxStartups does beyond ten, at random) still
// takes eight simultaneous connections, retried with backoff. (Three, not
// two: sshd counts a connection as starting until its child reports the
// login, a moment after the client saw it, so one dial at a time can
// briefly have two on sshd's books.)
func TestMaxStartupsRetry(t *testing.T) {
	f := sshtest.Start(t, sshtest.Options{SSHDConfig: []string{"MaxStartups 3:100:3"}})
	var logMu sync.Mutex
	var retries int
	o := testOptions(f)
	o.Logf = func(format string, args ...any) {
		if strings.Contains(format, "retrying") {
			logMu.Lock()
			retries++
			logMu.Unlock()
		}
	}
	d := newDialer(t, o)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			b, err := d.Connect(context.Background(), f.Servers[0].DeployHost())
			if err != nil {
				t.Errorf("connection %d: %v", i, err)
				return
			}
			b.Close()
		})
	}
	wg.Wait()
	if !strings.Contains(f.Servers[0].Log(), "MaxStartups") {
		t.Log("sshd dropped nothing this time")
	}
	t.Logf("%d retries", retries)

	// MaxDials 1 never exceeds the server's limit: no retries.
	retries = 0
	o.MaxDials = 1
	d = newDialer(t, o)
	for range 4 {
		wg.Go(func() {
			b, err := d.Connect(context.Background(), f.Servers[0].DeployHost())
			if err != nil {
				t.Error(err)
				return
			}
			b.Close()
		})
	}
	wg.Wait()
	if retries != 0 {
		t.Errorf("%d retries with one dial at a time", retries)
	}
}

func TestExpand(t *testing.T) {
	d := &Dialer{home: "/h", localUser: "me", getenv: func(k string) string { return "<" + k + ">" }}
	e := &endpoint{hostname: "example.org", port: 2200, user: "deploy"}
	for in, want := range map[string]string{
		"~/.ssh/id":       "/h/.ssh/id",
		"~":               "/h",
		"%d/%u/%r@%h:%p":  "/h/me/deploy@example.org:2200",
		"%n and 100%%":    "alias and 100%",
		"${HOME}/x":       "<HOME>/x",
		"plain/path":      "plain/path",
		"%z stays":        "%z stays",
		"unterminated ${": "unterminated ${",
	} {
		if got := d.expand(in, e, "alias"); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
	_ = os.Getenv
}
