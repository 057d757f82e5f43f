package boot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
)

// HostsMarker ends every line davit writes to the hosts file; only lines
// with it are ever replaced or removed.
const HostsMarker = "# davit self-deploy"

// HostsEntry is one name and the address it resolves to.
type HostsEntry struct {
	Name    string
	Address string
}

// hostnamePattern is a host name as /etc/hosts takes one: labels of
// letters, digits and hyphens (underscores too, which real files carry),
// separated by dots.
var hostnamePattern = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$`)

// ValidateHosts checks every entry, reporting all the bad ones at once:
// an invalid name or address, or a name given twice.
func ValidateHosts(entries []HostsEntry) error {
	var errs []error
	seen := map[string]bool{}
	for _, e := range entries {
		if !hostnamePattern.MatchString(e.Name) || len(e.Name) > 253 {
			errs = append(errs, fmt.Errorf("etc_hosts: %q is not a host name", e.Name))
		}
		if a, err := netip.ParseAddr(e.Address); err != nil || a.Zone() != "" {
			errs = append(errs, fmt.Errorf("etc_hosts: %s: %q is not an IP address", e.Name, e.Address))
		}
		if seen[strings.ToLower(e.Name)] {
			errs = append(errs, fmt.Errorf("etc_hosts: %s is given twice", e.Name))
		}
		seen[strings.ToLower(e.Name)] = true
	}
	return errors.Join(errs...)
}

// RenderHosts is the hosts file text with davit's entries: every line
// that carries HostsMarker is dropped, every other line kept as it was,
// and davit's lines put first, in the order given, because resolvers take
// the first line that names a host (so a stale hand-written dbhost line in
// the image cannot win).
func RenderHosts(old []byte, entries []HostsEntry) []byte {
	var b bytes.Buffer
	for _, e := range entries {
		fmt.Fprintf(&b, "%s\t%s\t%s\n", e.Address, e.Name, HostsMarker)
	}
	lines := strings.SplitAfter(string(old), "\n")
	for _, l := range lines {
		if l == "" || strings.HasSuffix(strings.TrimRight(l, "\r\n \t"), HostsMarker) {
			continue
		}
		b.WriteString(l)
	}
	if n := b.Len(); n > 0 && b.Bytes()[n-1] != '\n' {
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// WriteHosts puts entries into the hosts file at path (RenderHosts),
// replacing the lines an earlier call wrote. The file keeps its mode and
// owner; it is written to a temporary file beside it and renamed over it,
// so a reader sees the old file or the new one, never half of one. A file
// that already says the same is not touched. Invalid entries change
// nothing. It reports whether the file changed.
func WriteHosts(path string, entries []HostsEntry) (bool, error) {
	if err := ValidateHosts(entries); err != nil {
		return false, err
	}
	old, err := os.ReadFile(path)
	mode := fs.FileMode(0o644)
	uid, gid := -1, -1
	switch {
	case err == nil:
		info, err := os.Stat(path)
		if err != nil {
			return false, err
		}
		mode = info.Mode().Perm()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	case errors.Is(err, fs.ErrNotExist):
		old = nil
	default:
		return false, fmt.Errorf("hosts file: %w", err)
	}
	updated := RenderHosts(old, entries)
	if bytes.Equal(updated, old) {
		return false, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".davit-*")
	if err != nil {
		return false, fmt.Errorf("hosts file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(updated); err != nil {
		tmp.Close()
		return false, fmt.Errorf("hosts file: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return false, fmt.Errorf("hosts file: %w", err)
	}
	if uid >= 0 && (uid != os.Getuid() || gid != os.Getgid()) {
		if err := tmp.Chown(uid, gid); err != nil {
			tmp.Close()
			return false, fmt.Errorf("hosts file: keep the owner of %s: %w", path, err)
		}
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, fmt.Errorf("hosts file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("hosts file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return false, fmt.Errorf("hosts file: replace %s: %w", path, err)
	}
	done = true
	return true, nil
}

// SortedEntries turns a name → address map into entries in name order.
func SortedEntries(m map[string]string) []HostsEntry {
	var out []HostsEntry
	for _, name := range slices.Sorted(maps.Keys(m)) {
		out = append(out, HostsEntry{Name: name, Address: m[name]})
	}
	return out
}
