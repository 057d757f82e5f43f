package boot

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const imageHosts = "127.0.0.1\tlocalhost\n# the image's own\n10.9.9.9 dbhost\n::1 ip6-localhost ip6-loopback\n"

func TestWriteHostsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte(imageHosts), 0o604); err != nil {
		t.Fatal(err)
	}
	entries := []HostsEntry{{"dbhost", "10.0.0.5"}, {"cache", "fd00::7"}}
	changed, err := WriteHosts(path, entries)
	if err != nil || !changed {
		t.Fatalf("first write: changed %v, %v", changed, err)
	}
	want := "10.0.0.5\tdbhost\t" + HostsMarker + "\nfd00::7\tcache\t" + HostsMarker + "\n" + imageHosts
	got, _ := os.ReadFile(path)
	if string(got) != want {
		t.Fatalf("hosts file:\n%s\nwant:\n%s", got, want)
	}
	info, _ := os.Stat(path)
	if info.Mode().Perm() != 0o604 {
		t.Errorf("mode %v, want 0604 kept", info.Mode().Perm())
	}
	before := info.Sys().(*syscall.Stat_t).Ino
	// The same entries again: nothing to do, the file is not rewritten.
	changed, err = WriteHosts(path, entries)
	if err != nil || changed {
		t.Fatalf("second write: changed %v, %v", changed, err)
	}
	if info, _ := os.Stat(path); info.Sys().(*syscall.Stat_t).Ino != before {
		t.Error("an unchanged file was replaced")
	}
	// A new address replaces davit's line alone; a hand-added line
	// after it stays.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("192.0.2.1 added-by-hand\n")
	f.Close()
	if _, err := WriteHosts(path, []HostsEntry{{"dbhost", "10.0.0.6"}}); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(path)
	want = "10.0.0.6\tdbhost\t" + HostsMarker + "\n" + imageHosts + "192.0.2.1 added-by-hand\n"
	if string(got) != want {
		t.Errorf("after the change:\n%s\nwant:\n%s", got, want)
	}
	// No entries: davit's lines go, the rest stays.
	if _, err := WriteHosts(path, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(path)
	if string(got) != imageHosts+"192.0.2.1 added-by-hand\n" {
		t.Errorf("after removing the entries:\n%s", got)
	}
	assertNoTemp(t, filepath.Dir(path))
}

func TestWriteHostsKeepsOwner(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("the tests run as root (chown)")
	}
	path := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(path, []byte("127.0.0.1 localhost"), 0o644)
	if err := os.Chown(path, 12345, 23456); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteHosts(path, []HostsEntry{{"dbhost", "10.0.0.5"}}); err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(path)
	st := info.Sys().(*syscall.Stat_t)
	if st.Uid != 12345 || st.Gid != 23456 {
		t.Errorf("owner %d:%d, want 12345:23456", st.Uid, st.Gid)
	}
	got, _ := os.ReadFile(path)
	// A last line without a line break is kept, and ended.
	if string(got) != "10.0.0.5\tdbhost\t"+HostsMarker+"\n127.0.0.1 localhost\n" {
		t.Errorf("hosts file:\n%q", got)
	}
}

func TestWriteHostsRefusesBadEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(path, []byte(imageHosts), 0o644)
	_, err := WriteHosts(path, []HostsEntry{
		{"dbhost", "10.0.0.300"}, {"bad name", "10.0.0.1"}, {"ok", "10.0.0.2"}, {"OK", "10.0.0.3"}, {"zoned", "fe80::1%eth0"},
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`dbhost: "10.0.0.300" is not an IP address`, `"bad name" is not a host name`, "OK is given twice", `zoned: "fe80::1%eth0"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if got, _ := os.ReadFile(path); string(got) != imageHosts {
		t.Errorf("a refused write changed the file:\n%s", got)
	}
	assertNoTemp(t, filepath.Dir(path))
}

func TestWriteHostsCreatesAMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	if _, err := WriteHosts(path, []HostsEntry{{"dbhost", "10.0.0.5"}}); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o644 {
		t.Fatalf("%v %v", info, err)
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".davit-") {
			t.Errorf("left a temporary file %s", e.Name())
		}
	}
}
