package assets

import (
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// fileID identifies a file's content without reading it (identityOf).
type fileID struct {
	Size, Mtime, Ctime int64
	Dev, Ino           uint64
}

// cacheEntry is a file's sums as hashed when it had that identity.
type cacheEntry struct {
	ID       fileID
	MD5      string
	Parts    string
	PartSize int64
}

// settleTime is how long after its last change a file's hash is kept: a
// file written within the file system's timestamp granularity of the
// hashing could change again without its times moving.
const settleTime = 2 * time.Second

// hashCache keeps the MD5s of the files of one assets_dir between runs,
// in the user's cache directory, so a sync of an unchanged tree reads
// the directory but not the files. A file whose identity changed in any
// way is hashed again. Safe for concurrent use.
type hashCache struct {
	path string // "" when there is no cache directory: nothing is kept
	now  func() time.Time

	mu    sync.Mutex
	old   map[string]cacheEntry // by absolute path, as loaded
	new   map[string]cacheEntry // what this run saw
	dirty bool
}

// cacheVersion names the file format; another version is ignored.
const cacheVersion = 1

// cacheFile is the cache on disk, in gob (a tree of 10,000 files loads
// in a fraction of JSON's time, and the walk waits for it).
type cacheFile struct {
	Version int
	Dir     string
	Files   map[string]cacheEntry
}

// openHashCache loads the cache of dir (absolute), or starts an empty
// one; a missing or unreadable cache is an empty one.
func openHashCache(dir string) *hashCache {
	c := &hashCache{now: time.Now, old: map[string]cacheEntry{}, new: map[string]cacheEntry{}}
	base, err := os.UserCacheDir()
	if err != nil {
		return c
	}
	sum := sha256.Sum256([]byte(dir))
	c.path = filepath.Join(base, "davit", "assets", hex.EncodeToString(sum[:12])+".gob")
	data, err := os.ReadFile(c.path)
	if err != nil {
		return c
	}
	var f cacheFile
	if gob.NewDecoder(bytes.NewReader(data)).Decode(&f) == nil && f.Version == cacheVersion && f.Dir == dir && f.Files != nil {
		c.old = f.Files
	}
	return c
}

// lookup returns f's sums if it is unchanged since they were kept, for
// the part size partSize.
func (c *hashCache) lookup(f localFile, partSize int64) (cacheEntry, bool) {
	if !f.hasID {
		return cacheEntry{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.old[f.abs]
	if !ok || e.ID != f.id || (e.Parts != "" || f.size >= partSize) && e.PartSize != partSize {
		return cacheEntry{}, false
	}
	c.new[f.abs] = e
	return e, true
}

// keep records f's sums, unless f changed too recently to be sure of.
func (c *hashCache) keep(f localFile, partSize int64, now time.Time) {
	if !f.hasID || now.Sub(time.Unix(0, f.id.Ctime)) < settleTime || now.Sub(time.Unix(0, f.id.Mtime)) < settleTime {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.new[f.abs] = cacheEntry{ID: f.id, MD5: f.md5, Parts: f.partsETag, PartSize: partSize}
	c.dirty = true
}

// save writes what this run saw (files gone since are dropped), when it
// differs from what was loaded.
func (c *hashCache) save(dir string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.path == "" || !c.dirty && len(c.new) == len(c.old) {
		return nil
	}
	var data bytes.Buffer
	if err := gob.NewEncoder(&data).Encode(cacheFile{Version: cacheVersion, Dir: dir, Files: c.new}); err != nil {
		return fmt.Errorf("hash cache: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return fmt.Errorf("hash cache: %w", err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", c.path, os.Getpid())
	if err := os.WriteFile(tmp, data.Bytes(), 0o600); err != nil {
		return fmt.Errorf("hash cache: %w", err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("hash cache: %w", err)
	}
	return nil
}
