package assets

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	rel      string // as localFile.rel
	id       fileID
	md5      string // hex
	parts    string // localFile.partsETag
	partSize int64
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

	mu   sync.Mutex
	old  []cacheEntry // as loaded, sorted by rel
	hit  []bool       // old[i] was looked up and still holds
	hits int
	kept []cacheEntry // hashed this run
}

// cacheMagic starts the file and names its format; a file of another
// format (an older davit's) is ignored.
const cacheMagic = "davit assets hash cache 2\n"

// openHashCache loads the cache of dir (absolute), or starts an empty
// one; a missing, unreadable or damaged cache is an empty one.
func openHashCache(dir string) *hashCache {
	c := &hashCache{now: time.Now}
	base, err := os.UserCacheDir()
	if err != nil {
		return c
	}
	sum := sha256.Sum256([]byte(dir))
	c.path = filepath.Join(base, "davit", "assets", hex.EncodeToString(sum[:12])+".cache")
	if data, err := readString(c.path); err == nil {
		if entries, ok := decodeCache(data, dir); ok {
			c.old, c.hit = entries, make([]bool, len(entries))
		}
	}
	return c
}

// readString reads a whole file into a string, the one copy the entries'
// strings then share. (os.ReadFile and a conversion would be two; on a
// VM where fresh memory is dear, the second cost as much as the decoding.)
func readString(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b strings.Builder
	if info, err := f.Stat(); err == nil {
		b.Grow(int(info.Size()))
	}
	if _, err := io.Copy(&b, f); err != nil {
		return "", err
	}
	return b.String(), nil
}

// lookup returns f's sums if it is unchanged since they were kept, for
// the part size partSize.
func (c *hashCache) lookup(f localFile, partSize int64) (cacheEntry, bool) {
	if !f.hasID {
		return cacheEntry{}, false
	}
	i, found := slices.BinarySearchFunc(c.old, f.rel, func(e cacheEntry, rel string) int { return strings.Compare(e.rel, rel) })
	if !found {
		return cacheEntry{}, false
	}
	e := c.old[i]
	if e.id != f.id || (e.parts != "" || f.size >= partSize) && e.partSize != partSize {
		return cacheEntry{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.hit[i] {
		c.hit[i] = true
		c.hits++
	}
	return e, true
}

// keep records f's sums, unless f changed too recently to be sure of.
func (c *hashCache) keep(f localFile, partSize int64, now time.Time) {
	if !f.hasID || now.Sub(time.Unix(0, f.id.Ctime)) < settleTime || now.Sub(time.Unix(0, f.id.Mtime)) < settleTime {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kept = append(c.kept, cacheEntry{rel: f.rel, id: f.id, md5: f.md5, parts: f.partsETag, partSize: partSize})
}

// save writes what this run saw (files gone since are dropped), when it
// differs from what was loaded.
func (c *hashCache) save(dir string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.path == "" || len(c.kept) == 0 && c.hits == len(c.old) {
		return nil
	}
	entries := slices.Clone(c.kept)
	for i, e := range c.old {
		if c.hit[i] {
			entries = append(entries, e)
		}
	}
	slices.SortFunc(entries, func(a, b cacheEntry) int { return strings.Compare(a.rel, b.rel) })
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return fmt.Errorf("hash cache: %w", err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", c.path, os.Getpid())
	if err := os.WriteFile(tmp, encodeCache(dir, entries), 0o600); err != nil {
		return fmt.Errorf("hash cache: %w", err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("hash cache: %w", err)
	}
	return nil
}

// encodeCache lays the cache out flat: the magic, dir, the count, then
// per entry its strings (length-prefixed) and numbers (varints). A tree
// of 10,000 files loads in a millisecond or two, a few times faster than
// gob's reflection, and a sync of an unchanged tree waits for it.
func encodeCache(dir string, entries []cacheEntry) []byte {
	b := []byte(cacheMagic)
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	str(dir)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		str(e.rel)
		str(e.md5)
		str(e.parts)
		b = binary.AppendVarint(b, e.id.Size)
		b = binary.AppendVarint(b, e.id.Mtime)
		b = binary.AppendVarint(b, e.id.Ctime)
		b = binary.AppendUvarint(b, e.id.Dev)
		b = binary.AppendUvarint(b, e.id.Ino)
		b = binary.AppendVarint(b, e.partSize)
	}
	return b
}

// decodeCache reads what encodeCache wrote for dir; ok is false for
// anything else (another format, another directory, a damaged file).
// The entries' strings are substrings of data.
func decodeCache(data, dir string) (entries []cacheEntry, ok bool) {
	if !strings.HasPrefix(data, cacheMagic) {
		return nil, false
	}
	d := cacheDecoder{s: data, at: len(cacheMagic)}
	if d.str() != dir {
		return nil, false
	}
	n := d.uvarint()
	// Each entry takes at least 9 bytes: a bound on n from a damaged
	// file must not allocate more than the file could hold.
	if d.bad || n > uint64(len(data)/9) {
		return nil, false
	}
	entries = make([]cacheEntry, n)
	for i := range entries {
		e := &entries[i]
		e.rel, e.md5, e.parts = d.str(), d.str(), d.str()
		e.id.Size, e.id.Mtime, e.id.Ctime = d.varint(), d.varint(), d.varint()
		e.id.Dev, e.id.Ino = d.uvarint(), d.uvarint()
		e.partSize = d.varint()
		if d.bad || i > 0 && entries[i-1].rel >= e.rel {
			return nil, false
		}
	}
	return entries, d.at == len(data)
}

// cacheDecoder reads the cache file's fields in turn; bad is set by the
// first that is cut short.
type cacheDecoder struct {
	s   string
	at  int
	bad bool
}

// next is what is left to read, as far as a varint can reach; the
// conversion of so few bytes stays on the stack.
func (d *cacheDecoder) next() []byte {
	return []byte(d.s[d.at:min(d.at+binary.MaxVarintLen64, len(d.s))])
}

func (d *cacheDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.next())
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.at += n
	return v
}

func (d *cacheDecoder) varint() int64 {
	v, n := binary.Varint(d.next())
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.at += n
	return v
}

func (d *cacheDecoder) str() string {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.s)-d.at) {
		d.bad = true
		return ""
	}
	s := d.s[d.at : d.at+int(n)]
	d.at += int(n)
	return s
}
