// Package deploy holds davit's core vocabulary: hosts and the filters that
// pick them, commands and the one function that quotes them for a shell, and
// the Backend interface every transport (SSH, local, dry run) implements.
package deploy

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Host is one server of the fleet, as the Deployfile declared it.
type Host struct {
	// Name is how the user refers to the host: in --hosts filters, output and
	// errors. It is also the name looked up in ~/.ssh/config.
	Name string
	// Address is what to dial when it differs from Name (e.g. an IP).
	Address string
	// User is the login user; empty means ssh_config or the local user.
	User string
	// Port is the SSH port; 0 means ssh_config or 22.
	Port    int
	Roles   []string
	Props   map[string]any
	Primary bool
	// Backend names the transport: "" picks local for "localhost" and ssh
	// otherwise; "ssh" or "local" force one.
	Backend string
	// Source names where the host came from: "" or "static" for server()
	// and role(), else the HostSource's Name ("ec2").
	Source string
}

// ParseHost reads "[user@]name[:port]" (IPv6 as "[::1]:22").
func ParseHost(spec string) (*Host, error) {
	h := &Host{}
	s := strings.TrimSpace(spec)
	if s == "" {
		return nil, fmt.Errorf("empty host name")
	}
	if i := strings.LastIndex(s, "@"); i >= 0 {
		h.User, s = s[:i], s[i+1:]
		if h.User == "" {
			return nil, fmt.Errorf("host %q: empty user before @", spec)
		}
	}
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return nil, fmt.Errorf("host %q: missing ]", spec)
		}
		h.Name, s = s[1:end], s[end+1:]
		if s != "" && !strings.HasPrefix(s, ":") {
			return nil, fmt.Errorf("host %q: unexpected %q after ]", spec, s)
		}
		if s != "" { // ":PORT"; a bare ":" is an empty port, as for "web1:"
			p, err := parsePort(s[1:])
			if err != nil {
				return nil, fmt.Errorf("host %q: %w", spec, err)
			}
			h.Port = p
		}
	} else if strings.Count(s, ":") == 1 {
		i := strings.Index(s, ":")
		p, err := parsePort(s[i+1:])
		if err != nil {
			return nil, fmt.Errorf("host %q: %w", spec, err)
		}
		h.Name, h.Port = s[:i], p
	} else {
		h.Name = s
	}
	if h.Name == "" {
		return nil, fmt.Errorf("host %q: empty host name", spec)
	}
	if strings.ContainsAny(h.Name, " \t\n/'\"\\$`;&|<>") {
		return nil, fmt.Errorf("host %q: invalid character in host name", spec)
	}
	return h, nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	return p, nil
}

// String is the host as users write it: [user@]name[:port].
func (h *Host) String() string {
	var b strings.Builder
	if h.User != "" {
		b.WriteString(h.User + "@")
	}
	if strings.Contains(h.Name, ":") {
		b.WriteString("[" + h.Name + "]")
	} else {
		b.WriteString(h.Name)
	}
	if h.Port != 0 {
		b.WriteString(":" + strconv.Itoa(h.Port))
	}
	return b.String()
}

// Key identifies the host within a run: two entries with the same key are
// the same server and share one connection.
func (h *Host) Key() string { return h.String() }

// DialAddress is the host name or address to connect to.
func (h *Host) DialAddress() string {
	if h.Address != "" {
		return h.Address
	}
	return h.Name
}

// IsLocal reports whether commands for this host run on this machine
// without SSH.
func (h *Host) IsLocal() bool {
	switch h.Backend {
	case "local":
		return true
	case "ssh":
		return false
	}
	return h.Name == "localhost" && h.Address == "" && h.Port == 0
}

// HasRole reports whether the host carries role r. The pseudo-role "all"
// matches every host.
func (h *Host) HasRole(r string) bool {
	return r == "all" || slices.Contains(h.Roles, r)
}

// Merge folds another declaration of the same server into h: roles are
// unioned, properties overlaid, primary kept if either says so.
func (h *Host) Merge(o *Host) {
	for _, r := range o.Roles {
		if !slices.Contains(h.Roles, r) {
			h.Roles = append(h.Roles, r)
		}
	}
	for k, v := range o.Props {
		if h.Props == nil {
			h.Props = map[string]any{}
		}
		h.Props[k] = v
	}
	h.Primary = h.Primary || o.Primary
	if o.Address != "" {
		h.Address = o.Address
	}
	if o.Backend != "" {
		h.Backend = o.Backend
	}
}

// Filter narrows a host list by role and by host name. Empty lists match
// everything; patterns are shell globs (path.Match).
type Filter struct {
	Roles []string
	Hosts []string
	// Only, when not nil, also keeps just the hosts whose Key it lists: an
	// exact set (a batch of a rolling publish), which no glob of names
	// could state safely.
	Only []string
}

// ParseList splits a comma-separated flag value, dropping blanks.
func ParseList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Validate reports malformed glob patterns.
func (f Filter) Validate() error {
	for _, p := range append(slices.Clone(f.Roles), f.Hosts...) {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("bad pattern %q: %w", p, err)
		}
	}
	return nil
}

// Empty reports whether the filter lets everything through.
func (f Filter) Empty() bool { return len(f.Roles) == 0 && len(f.Hosts) == 0 && f.Only == nil }

// Match reports whether h passes the filter.
func (f Filter) Match(h *Host) bool {
	return f.matchRoles(h) && f.matchHosts(h) && (f.Only == nil || slices.Contains(f.Only, h.Key()))
}

func (f Filter) matchRoles(h *Host) bool {
	if len(f.Roles) == 0 {
		return true
	}
	for _, p := range f.Roles {
		if p == "all" {
			return true
		}
		for _, r := range h.Roles {
			if ok, _ := path.Match(p, r); ok {
				return true
			}
		}
	}
	return false
}

func (f Filter) matchHosts(h *Host) bool {
	if len(f.Hosts) == 0 {
		return true
	}
	for _, p := range f.Hosts {
		for _, n := range []string{h.Name, h.String(), h.Address} {
			if n == "" {
				continue
			}
			if ok, _ := path.Match(p, n); ok {
				return true
			}
		}
	}
	return false
}

// Apply returns the hosts that pass the filter, in their original order.
func (f Filter) Apply(hosts []*Host) []*Host {
	var out []*Host
	for _, h := range hosts {
		if f.Match(h) {
			out = append(out, h)
		}
	}
	return out
}

// WithRoles returns the hosts carrying any of the given roles.
func WithRoles(hosts []*Host, roles ...string) []*Host {
	var out []*Host
	for _, h := range hosts {
		for _, r := range roles {
			if h.HasRole(r) {
				out = append(out, h)
				break
			}
		}
	}
	return out
}

// Primary returns the host marked primary among those with role, or the
// first host with that role when none is marked, or nil.
func Primary(hosts []*Host, role string) *Host {
	candidates := WithRoles(hosts, role)
	for _, h := range candidates {
		if h.Primary {
			return h
		}
	}
	if len(candidates) > 0 {
		return candidates[0]
	}
	return nil
}
