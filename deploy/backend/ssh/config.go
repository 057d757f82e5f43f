package ssh

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"

	"github.com/davit-deploy/davit/deploy"
)

// endpoint is everything needed to reach one SSH server once the host's own
// fields, the Options and ssh_config have been applied, in that order of
// precedence (as OpenSSH ranks its command line above its config files).
type endpoint struct {
	// label names the host in errors, as the user wrote it.
	label string
	// alias is the name looked up in ssh_config.
	alias          string
	hostname       string
	port           int
	user           string
	identityFiles  []string
	identitiesOnly bool
	jumps          []string
	connectTimeout time.Duration
	keepAlive      time.Duration
	keepAliveMax   int
	knownHosts     []string
	// globalKnownHosts are read but never written.
	globalKnownHosts []string
	hostKeyAlias     string
	policy           HostKeyPolicy
	hashKnownHosts   bool
	agentSocket      string
}

// addr is what to dial.
func (e *endpoint) addr() string { return net.JoinHostPort(e.hostname, strconv.Itoa(e.port)) }

// knownHostsName is the name the host's keys are recorded under in
// known_hosts: HostKeyAlias or the host name, with the port when it is not
// 22 (knownhosts.Normalize then writes "[host]:port").
func (e *endpoint) knownHostsName() string {
	name := e.hostname
	if e.hostKeyAlias != "" {
		name = e.hostKeyAlias
	}
	return net.JoinHostPort(name, strconv.Itoa(e.port))
}

// destination describes the server in messages: "user@host:port" plus the
// label when the user called it something else.
func (e *endpoint) destination() string {
	d := e.user + "@" + e.addr()
	if e.label != "" && e.label != d {
		return e.label + " (" + d + ")"
	}
	return d
}

// sshConfig answers ssh_config queries from the user's file and then the
// system-wide one, first value wins, as in OpenSSH.
type sshConfig struct {
	files []*ssh_config.Config
	names []string
}

func loadConfig(path string, explicit bool) (*sshConfig, error) {
	c := &sshConfig{}
	paths := []string{path}
	if !explicit {
		// Like `ssh` without -F: the user's file, then the system's.
		paths = append(paths, "/etc/ssh/ssh_config")
	}
	for i, p := range paths {
		if p == "" {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			if os.IsNotExist(err) && !(explicit && i == 0) {
				continue
			}
			return nil, fmt.Errorf("ssh config: %w", err)
		}
		cfg, err := ssh_config.Decode(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("ssh config %s: %w", p, err)
		}
		c.files = append(c.files, cfg)
		c.names = append(c.names, p)
	}
	return c, nil
}

// get returns the first value of key for alias, or "".
func (c *sshConfig) get(alias, key string) string {
	if c == nil {
		return ""
	}
	for _, f := range c.files {
		if v, err := f.Get(alias, key); err == nil && v != "" {
			return v
		}
	}
	return ""
}

// getAll returns every value of key for alias across the files.
func (c *sshConfig) getAll(alias, key string) []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, f := range c.files {
		if vs, err := f.GetAll(alias, key); err == nil {
			out = append(out, vs...)
		}
	}
	return out
}

// resolve works out how to reach h. Fields set on the host win over the
// Options, which win over ssh_config, which wins over defaults.
func (d *Dialer) resolve(h *deploy.Host) (*endpoint, error) {
	alias := h.Name
	cfg := d.config
	e := &endpoint{label: h.String(), alias: alias}
	if pc := cfg.get(alias, "ProxyCommand"); pc != "" && !strings.EqualFold(pc, "none") {
		return nil, fmt.Errorf("ssh_config sets ProxyCommand for %s, which davit does not run; use ProxyJump", alias)
	}

	e.hostname = h.Address
	if e.hostname == "" {
		if hn := cfg.get(alias, "HostName"); hn != "" {
			e.hostname = d.expand(hn, e, alias)
		} else {
			e.hostname = alias
		}
	}
	e.port = h.Port
	if e.port == 0 {
		if p := cfg.get(alias, "Port"); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("ssh_config: bad Port %q for %s", p, alias)
			}
			e.port = n
		} else {
			e.port = 22
		}
	}
	e.user = firstNonEmpty(h.User, d.opts.User, cfg.get(alias, "User"), d.localUser)

	for _, f := range d.opts.IdentityFiles {
		e.identityFiles = append(e.identityFiles, d.expand(f, e, alias))
	}
	for _, f := range cfg.getAll(alias, "IdentityFile") {
		e.identityFiles = append(e.identityFiles, d.expand(f, e, alias))
	}
	if len(e.identityFiles) == 0 && d.home != "" {
		// OpenSSH's defaults, used only when nothing names a key.
		for _, n := range []string{"id_rsa", "id_ecdsa", "id_ed25519"} {
			p := filepath.Join(d.home, ".ssh", n)
			if _, err := os.Stat(p); err == nil {
				e.identityFiles = append(e.identityFiles, p)
			}
		}
	}
	e.identitiesOnly = strings.EqualFold(cfg.get(alias, "IdentitiesOnly"), "yes")

	if pj := cfg.get(alias, "ProxyJump"); pj != "" && !strings.EqualFold(pj, "none") {
		e.jumps = deploy.ParseList(pj)
	}

	var err error
	if e.connectTimeout, err = durationOpt(d.opts.ConnectTimeout, cfg.get(alias, "ConnectTimeout"), DefaultConnectTimeout); err != nil {
		return nil, fmt.Errorf("ssh_config ConnectTimeout for %s: %w", alias, err)
	}
	if e.keepAlive, err = durationOpt(d.opts.KeepAlive, cfg.get(alias, "ServerAliveInterval"), DefaultKeepAlive); err != nil {
		return nil, fmt.Errorf("ssh_config ServerAliveInterval for %s: %w", alias, err)
	}
	e.keepAliveMax = d.opts.KeepAliveCountMax
	if e.keepAliveMax == 0 {
		e.keepAliveMax = DefaultKeepAliveCountMax
		if v := cfg.get(alias, "ServerAliveCountMax"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("ssh_config: bad ServerAliveCountMax %q for %s", v, alias)
			}
			e.keepAliveMax = n
		}
	}

	if len(d.opts.KnownHostsFiles) > 0 {
		for _, f := range d.opts.KnownHostsFiles {
			e.knownHosts = append(e.knownHosts, d.expand(f, e, alias))
		}
	} else {
		if v := cfg.get(alias, "UserKnownHostsFile"); v != "" {
			for _, f := range strings.Fields(v) {
				e.knownHosts = append(e.knownHosts, d.expand(f, e, alias))
			}
		} else if d.home != "" {
			e.knownHosts = []string{filepath.Join(d.home, ".ssh", "known_hosts"), filepath.Join(d.home, ".ssh", "known_hosts2")}
		}
		if v := cfg.get(alias, "GlobalKnownHostsFile"); v != "" {
			for _, f := range strings.Fields(v) {
				e.globalKnownHosts = append(e.globalKnownHosts, d.expand(f, e, alias))
			}
		} else {
			e.globalKnownHosts = []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"}
		}
	}
	e.hostKeyAlias = cfg.get(alias, "HostKeyAlias")
	e.hashKnownHosts = strings.EqualFold(cfg.get(alias, "HashKnownHosts"), "yes")

	e.policy = d.opts.HostKeyPolicy
	if e.policy == "" {
		switch strings.ToLower(cfg.get(alias, "StrictHostKeyChecking")) {
		case "accept-new":
			e.policy = HostKeyAcceptNew
		case "no", "off":
			// "off" is only ever taken from Options: a config that says
			// no still records new keys and refuses changed ones.
			e.policy = HostKeyAcceptNew
		default: // yes, ask (no prompting here), unset
			e.policy = HostKeyStrict
		}
	}

	switch {
	case d.opts.AgentSocket == "none":
	case d.opts.AgentSocket != "":
		e.agentSocket = d.opts.AgentSocket
	default:
		switch ia := cfg.get(alias, "IdentityAgent"); {
		case strings.EqualFold(ia, "none"):
		case ia == "" || ia == "SSH_AUTH_SOCK":
			e.agentSocket = d.getenv("SSH_AUTH_SOCK")
		default:
			e.agentSocket = d.expand(ia, e, alias)
		}
	}
	return e, nil
}

// durationOpt picks an explicit option (negative disables), else an
// ssh_config value in seconds (0 disables), else the default.
func durationOpt(opt time.Duration, cfgSeconds string, def time.Duration) (time.Duration, error) {
	switch {
	case opt < 0:
		return 0, nil
	case opt > 0:
		return opt, nil
	case cfgSeconds != "":
		n, err := strconv.Atoi(cfgSeconds)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("want whole seconds, got %q", cfgSeconds)
		}
		return time.Duration(n) * time.Second, nil
	}
	return def, nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// expand applies ssh_config's ~ and % tokens to a path-like value: %% %d
// (local home) %h (remote host name) %n (the name as given) %p (port) %r
// (remote user) %u (local user), and ${VAR}.
func (d *Dialer) expand(s string, e *endpoint, alias string) string {
	if s == "~" {
		s = d.home
	} else if strings.HasPrefix(s, "~/") {
		s = filepath.Join(d.home, s[2:])
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+1 < len(s):
			i++
			switch s[i] {
			case '%':
				b.WriteByte('%')
			case 'd':
				b.WriteString(d.home)
			case 'h':
				b.WriteString(firstNonEmpty(e.hostname, alias))
			case 'n':
				b.WriteString(alias)
			case 'p':
				b.WriteString(strconv.Itoa(e.port))
			case 'r':
				b.WriteString(e.user)
			case 'u':
				b.WriteString(d.localUser)
			default:
				b.WriteByte('%')
				b.WriteByte(s[i])
			}
		case c == '$' && i+1 < len(s) && s[i+1] == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				b.WriteString(s[i:])
				i = len(s)
				continue
			}
			b.WriteString(d.getenv(s[i+2 : i+end]))
			i += end
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
