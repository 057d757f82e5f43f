package ssh

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/skeema/knownhosts"
	xssh "golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyPolicy says what to do with a host key known_hosts does not hold.
type HostKeyPolicy string

const (
	// HostKeyStrict refuses unknown and changed keys (OpenSSH's
	// StrictHostKeyChecking yes).
	HostKeyStrict HostKeyPolicy = "strict"
	// HostKeyAcceptNew records unknown keys in the first known_hosts file
	// and refuses changed ones (StrictHostKeyChecking accept-new).
	HostKeyAcceptNew HostKeyPolicy = "accept-new"
	// HostKeyOff checks nothing. It is only used when Options asks for it,
	// never inferred from ssh_config.
	HostKeyOff HostKeyPolicy = "off"
)

// KnownKey is a known_hosts entry for a host.
type KnownKey struct {
	File        string
	Line        int
	Type        string
	Fingerprint string
}

// HostKeyError reports a host key that known_hosts does not vouch for: an
// unknown host under the strict policy, or a changed key under any policy
// but off.
type HostKeyError struct {
	// Host is the known_hosts name, e.g. "[127.0.0.2]:2222".
	Host string
	// KeyType and Fingerprint describe the key the server offered (empty
	// when no algorithm in common was found).
	KeyType     string
	Fingerprint string
	// Files are the known_hosts files consulted.
	Files []string
	// Changed is true when the files hold other keys for the host.
	Changed bool
	// Known lists what the files hold for the host.
	Known []KnownKey
	// Offered lists the server's host key algorithms when none matched
	// the known keys' types.
	Offered string
}

func (e *HostKeyError) Error() string {
	files := strings.Join(e.Files, ", ")
	if files == "" {
		files = "(no known_hosts file exists)"
	}
	if e.Changed {
		var known []string
		for _, k := range e.Known {
			known = append(known, fmt.Sprintf("%s:%d has %s %s", k.File, k.Line, k.Type, k.Fingerprint))
		}
		if e.KeyType == "" {
			return fmt.Sprintf("HOST KEY CHANGED for %s: the server offers none of the known key types (%s; it offers %s); refusing to connect: possible man-in-the-middle attack, or the host was reinstalled (then remove the old line)",
				e.Host, strings.Join(known, "; "), e.Offered)
		}
		return fmt.Sprintf("HOST KEY CHANGED for %s: the server offered %s key %s but %s; refusing to connect: possible man-in-the-middle attack, or the host was reinstalled (then remove the old line)",
			e.Host, e.KeyType, e.Fingerprint, strings.Join(known, "; "))
	}
	host, port, err := net.SplitHostPort(strings.NewReplacer("[", "", "]", "").Replace(e.Host))
	if err != nil {
		host, port = e.Host, "22"
	}
	return fmt.Sprintf("unknown host key for %s: the server offered %s key %s, which is not in %s (host key policy strict: check the fingerprint, then add it with `ssh-keyscan -p %s %s >> FILE` or connect once with accept-new)",
		e.Host, e.KeyType, e.Fingerprint, files, port, host)
}

// knownHostsDB is a parsed set of known_hosts files, kept while none of
// them changes on disk.
type knownHostsDB struct {
	db     *knownhosts.HostKeyDB // nil when no file exists
	files  []string              // the existing files, in order
	stamps []fileStamp
}

type fileStamp struct {
	exists bool
	size   int64
	mtime  time.Time
}

func stamp(files []string) []fileStamp {
	out := make([]fileStamp, len(files))
	for i, f := range files {
		if st, err := os.Stat(f); err == nil {
			out[i] = fileStamp{true, st.Size(), st.ModTime()}
		}
	}
	return out
}

// knownHosts returns the parsed files, re-reading them when any changed.
// It runs under d.mu so a fan-out to many hosts parses once.
func (d *Dialer) knownHosts(files []string) (*knownHostsDB, error) {
	key := strings.Join(files, "\x00")
	st := stamp(files)
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.khCache[key]; ok && slices.Equal(c.stamps, st) {
		return c, nil
	}
	c := &knownHostsDB{stamps: st}
	for i, f := range files {
		if st[i].exists {
			c.files = append(c.files, f)
		}
	}
	if len(c.files) > 0 {
		db, err := knownhosts.NewDB(c.files...)
		if err != nil {
			return nil, fmt.Errorf("read known_hosts: %w", err)
		}
		c.db = db
	}
	d.khCache[key] = c
	return c, nil
}

// hostKeyCheck returns the host key callback for e and the host key
// algorithms to offer. When known_hosts holds keys for the host, only their
// algorithms are offered, so a server whose first key type is one the file
// lacks still presents the key the file has.
func (d *Dialer) hostKeyCheck(e *endpoint) (xssh.HostKeyCallback, []string, error) {
	if e.policy == HostKeyOff {
		return xssh.InsecureIgnoreHostKey(), nil, nil
	}
	all := append(slices.Clone(e.knownHosts), e.globalKnownHosts...)
	kh, err := d.knownHosts(all)
	if err != nil {
		return nil, nil, err
	}
	name := e.knownHostsName()
	var algos []string
	if kh.db != nil {
		algos = kh.db.HostKeyAlgorithms(name)
	}
	cb := func(_ string, remote net.Addr, key xssh.PublicKey) error {
		var err error
		if kh.db != nil {
			err = kh.db.HostKeyCallback()(name, remote, key)
		} else {
			err = &xknownhosts.KeyError{}
		}
		if err == nil {
			return nil
		}
		var ke *xknownhosts.KeyError
		if !errors.As(err, &ke) {
			return fmt.Errorf("check host key of %s: %w", name, err)
		}
		hke := &HostKeyError{
			Host:        knownhosts.Normalize(name),
			KeyType:     key.Type(),
			Fingerprint: xssh.FingerprintSHA256(key),
			Files:       kh.files,
			Changed:     len(ke.Want) > 0,
		}
		for _, w := range ke.Want {
			hke.Known = append(hke.Known, KnownKey{File: w.Filename, Line: w.Line, Type: w.Key.Type(), Fingerprint: xssh.FingerprintSHA256(w.Key)})
		}
		if hke.Changed || e.policy != HostKeyAcceptNew {
			return hke
		}
		if len(e.knownHosts) == 0 {
			return fmt.Errorf("accept-new: no known_hosts file to record %s in: %w", name, hke)
		}
		if err := d.recordHostKey(e.knownHosts[0], name, key, e.hashKnownHosts); err != nil {
			return fmt.Errorf("accept-new: record key of %s: %w", name, err)
		}
		d.logf("ssh: recorded new %s key %s for %s in %s", key.Type(), xssh.FingerprintSHA256(key), knownhosts.Normalize(name), e.knownHosts[0])
		return nil
	}
	return cb, algos, nil
}

// recordHostKey appends a known_hosts line under d.mu, so concurrent
// connections never interleave partial lines.
func (d *Dialer) recordHostKey(file, name string, key xssh.PublicKey, hash bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	addr := knownhosts.Normalize(name)
	if hash {
		addr = xknownhosts.HashHostname(addr)
	}
	_, err = f.WriteString(knownhosts.Line([]string{addr}, key) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// explainNoCommonHostKey turns x/crypto's "no common algorithm for host
// key" into a HostKeyError: known_hosts pins key types the server no
// longer offers, which is a changed host key.
func (d *Dialer) explainNoCommonHostKey(e *endpoint, err error) error {
	if e.policy == HostKeyOff || !strings.Contains(err.Error(), "no common algorithm for host key") {
		return err
	}
	all := append(slices.Clone(e.knownHosts), e.globalKnownHosts...)
	kh, kerr := d.knownHosts(all)
	if kerr != nil || kh.db == nil {
		return err
	}
	hke := &HostKeyError{Host: knownhosts.Normalize(e.knownHostsName()), Files: kh.files, Changed: true}
	for _, k := range kh.db.HostKeys(e.knownHostsName()) {
		hke.Known = append(hke.Known, KnownKey{Type: k.Type(), Fingerprint: xssh.FingerprintSHA256(k)})
	}
	if i := strings.Index(err.Error(), "peer offered: "); i >= 0 {
		hke.Offered = err.Error()[i+len("peer offered: "):]
	}
	// HostKeys does not say which line; find them for the message.
	for i := range hke.Known {
		hke.Known[i].File, hke.Known[i].Line = findKnownLine(kh.files, hke.Known[i].Fingerprint, e.knownHostsName())
	}
	return hke
}

func findKnownLine(files []string, fp, name string) (string, int) {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for i, line := range strings.Split(string(b), "\n") {
			_, hosts, key, _, _, err := xssh.ParseKnownHosts([]byte(line))
			if err != nil || xssh.FingerprintSHA256(key) != fp {
				continue
			}
			for _, h := range hosts {
				if h == knownhosts.Normalize(name) || strings.HasPrefix(h, "|1|") {
					return f, i + 1
				}
			}
		}
	}
	return "known_hosts", 0
}
