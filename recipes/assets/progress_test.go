package assets

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/deploy/output/outputtest"
)

// On a live terminal the uploads show a bar of files and bytes, erased
// before the summary; plain output gets the summary alone.
func TestProgressBarOnlyOnALiveTerminal(t *testing.T) {
	f := newFixture(t)
	for i := range 20 {
		f.write(fmt.Sprintf("f%02d.txt", i), strings.Repeat("x", 1000))
	}
	var live outputtest.Buffer
	f.terminal = output.NewPretty(&live, output.PrettyOptions{Live: true})
	if _, _, err := f.sync("", false); err != nil {
		t.Fatal(err)
	}
	screen := live.String()
	if !strings.Contains(screen, "/20 files") || !strings.Contains(screen, "/20 kB") {
		t.Errorf("no bar of files and bytes on the live terminal:\n%q", screen)
	}
	at := strings.Index(screen, "uploaded 20")
	if at < 0 || !strings.Contains(screen[:at], "\r\x1b[K") {
		t.Errorf("the summary is not printed over an erased bar:\n%q", screen)
	}

	for i := range 20 {
		f.write(fmt.Sprintf("f%02d.txt", i), strings.Repeat("y", 1000))
	}
	var plain outputtest.Buffer
	f.terminal = output.NewPlain(&plain)
	if _, _, err := f.sync("", false); err != nil {
		t.Fatal(err)
	}
	if s := plain.String(); strings.Contains(s, "uploading") || !strings.Contains(s, "uploaded 20") {
		t.Errorf("plain output:\n%s", s)
	}
}

// A file that cannot be read is named, and nothing is written or deleted
// (the listing, which runs beside the hashing, may have been sent).
// Root reads any file whatever its mode, so the unreadable file is one
// the kernel refuses to read at offset 0: /proc/self/mem.
func TestSyncUnreadableFile(t *testing.T) {
	if _, err := os.Stat("/proc/self/mem"); err != nil {
		t.Skip("no /proc/self/mem")
	}
	f := newFixture(t)
	f.write("a.txt", "a")
	f.write("stale.txt", "s")
	f.write("stale2.txt", "s")
	if _, _, err := f.sync("", false); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(f.dir, "public", "stale.txt"))
	f.write("b.txt", "b")
	bad := filepath.Join(f.dir, "public", "mem.bin")
	if os.Getuid() == 0 {
		if err := os.Symlink("/proc/self/mem", bad); err != nil {
			t.Fatal(err)
		}
	} else {
		f.write("mem.bin", "m")
		if err := os.Chmod(bad, 0); err != nil {
			t.Fatal(err)
		}
	}
	reqs, _, err := f.sync(`set("assets_delete", True)`, false)
	if err == nil || !strings.Contains(err.Error(), "cannot read "+bad) {
		t.Fatalf("err = %v; want it to name %s", err, bad)
	}
	for _, q := range reqs {
		if q.method != http.MethodGet {
			t.Errorf("sent %s %s after a read failed", q.method, q.path)
		}
	}
	if k := strings.Join(f.keys(), ","); k != "a.txt,stale.txt,stale2.txt" {
		t.Errorf("keys %s", k)
	}
}
