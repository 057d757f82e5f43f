package assets

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/davit-deploy/davit/recipes/scm"
)

// A file unchanged since it was hashed is not read again; a rewrite is,
// even one that keeps the size and sets the modification time back.
func TestHashCacheSkipsOnlyUnchangedFiles(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the cache needs the change time, read on Linux")
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	for _, n := range []string{"a.txt", "b.txt", "c.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("content "+n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	later := func() time.Time { return time.Now().Add(time.Hour) } // past the settle time
	run := func(now func() time.Time) (int, []localFile) {
		t.Helper()
		files, _, err := walkDir(dir, mustExcluder(t), 4)
		if err != nil {
			t.Fatal(err)
		}
		cache := openHashCache(dir)
		cache.now = now
		n, err := hashFiles(context.Background(), files, 2, minPartSize, cache)
		if err != nil {
			t.Fatal(err)
		}
		if err := cache.save(dir); err != nil {
			t.Fatal(err)
		}
		return n, files
	}
	// Just written: hashed, but too fresh to keep.
	if n, _ := run(time.Now); n != 3 {
		t.Fatalf("first run read %d files, want 3", n)
	}
	if n, _ := run(later); n != 3 {
		t.Fatalf("second run read %d files, want 3 (nothing was kept)", n)
	}
	n, files := run(later)
	if n != 0 {
		t.Fatalf("third run read %d files, want 0", n)
	}
	if sum, _, _ := fileSums(filepath.Join(dir, "b.txt"), 0, minPartSize); files[1].md5 != sum {
		t.Errorf("cached md5 %s, want %s", files[1].md5, sum)
	}
	// Same size, the modification time put back: the change time moved.
	p := filepath.Join(dir, "b.txt")
	info, _ := os.Stat(p)
	if err := os.WriteFile(p, []byte("CONTENT b.txt"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	n, files = run(later)
	if n != 1 {
		t.Fatalf("after a rewrite read %d files, want 1", n)
	}
	if sum, _, _ := fileSums(p, 0, minPartSize); files[1].md5 != sum {
		t.Errorf("md5 after the rewrite %s, want %s", files[1].md5, sum)
	}
}

func mustExcluder(t *testing.T) *scm.Excluder {
	t.Helper()
	ex, err := scm.NewExcluder(nil)
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// The cache file reads back what was written, for its own directory
// only; a damaged file (cut short anywhere, or a byte changed) is an
// empty cache, never a panic or a made-up entry.
func TestHashCacheFileFormat(t *testing.T) {
	entries := []cacheEntry{
		{rel: "a.css", id: fileID{Size: 12, Mtime: 1, Ctime: -2, Dev: 3, Ino: 1 << 40}, md5: "0123456789abcdef0123456789abcdef", partSize: 8 << 20},
		{rel: "big/video.mp4", id: fileID{Size: 20 << 20}, md5: "fedcba9876543210fedcba9876543210", parts: "00112233445566778899aabbccddeeff-3", partSize: 8 << 20},
	}
	data := string(encodeCache("/srv/public", entries))
	got, ok := decodeCache(data, "/srv/public")
	if !ok || !slices.Equal(got, entries) {
		t.Fatalf("round trip: %v %+v", ok, got)
	}
	if _, ok := decodeCache(data, "/srv/other"); ok {
		t.Error("the cache of another directory was read")
	}
	for n := range len(data) {
		if got, ok := decodeCache(data[:n], "/srv/public"); ok {
			t.Errorf("cut at %d bytes: read %+v", n, got)
		}
	}
	for i := range data {
		damaged := []byte(data)
		damaged[i] ^= 0x80
		// Whatever it reads (a changed number is not detectable), it
		// reads without panicking, and in rel order.
		if got, ok := decodeCache(string(damaged), "/srv/public"); ok && !slices.IsSortedFunc(got, func(a, b cacheEntry) int { return strings.Compare(a.rel, b.rel) }) {
			t.Errorf("byte %d changed: unsorted entries %+v", i, got)
		}
	}
}
