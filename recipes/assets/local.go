package assets

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/davit-deploy/davit/recipes/scm"
)

// localFile is one file of assets_dir.
type localFile struct {
	rel  string // slash-separated, relative to assets_dir
	abs  string
	size int64
	md5  string // hex, filled by hashFiles
	// partsETag is the ETag S3 gives the file uploaded in parts of the
	// multipart threshold's size ("hex-N": the MD5 of the parts' MD5s,
	// then the count); "" for a file sent in one part. Filled by hashFiles.
	partsETag string
	// id is the file's identity when walked, for the hash cache; hasID
	// is false where the platform cannot tell (nothing is cached).
	id    fileID
	hasID bool
}

// walkDir lists the regular files under root, leaving out what ex
// excludes, sorted by path. Symlinks are followed, to files and to
// directories, except a directory symlink that leads back to a directory
// above it (a loop), which is an error naming it; so is a broken symlink.
// Other kinds of file (sockets, devices) are returned as skipped.
// Directories are read parallel at a time: a tree of many small files
// costs a stat per file, which is the walk's time.
func walkDir(root string, ex *scm.Excluder, parallel int) (files []localFile, skipped []string, err error) {
	var st unix.Stat_t
	err = ignoringEINTR(func() error { return unix.Stat(root, &st) })
	if errors.Is(err, unix.ENOENT) {
		return nil, nil, fmt.Errorf("assets_dir %s does not exist", root)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("assets_dir %s: %w", root, &fs.PathError{Op: "stat", Path: root, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, nil, fmt.Errorf("assets_dir %s is not a directory", root)
	}
	w := &walker{ex: ex, slots: make(chan struct{}, max(parallel, 1))}
	w.wg.Add(1)
	w.walk(filepath.Clean(root), "", []dirKey{keyOf(&st)})
	w.wg.Wait()
	if w.err != nil {
		return nil, nil, w.err
	}
	// One allocation of the final size: appending 10,000 files as they
	// came would copy them over and over.
	n := 0
	for _, b := range w.batches {
		n += len(b)
	}
	files = make([]localFile, 0, n)
	for _, b := range w.batches {
		files = append(files, b...)
	}
	slices.SortFunc(files, func(a, b localFile) int { return strings.Compare(a.rel, b.rel) })
	sort.Strings(w.skipped)
	return files, w.skipped, nil
}

// dirKey is a directory's device and inode, which tell a symlink back to
// a directory above it.
type dirKey struct{ dev, ino uint64 }

func keyOf(st *unix.Stat_t) dirKey { return dirKey{uint64(st.Dev), uint64(st.Ino)} }

// ignoringEINTR retries a system call a signal interrupted, as package
// os does for its own.
func ignoringEINTR(call func() error) error {
	for {
		if err := call(); err != unix.EINTR {
			return err
		}
	}
}

type walker struct {
	ex    *scm.Excluder
	slots chan struct{} // one per directory being read
	wg    sync.WaitGroup

	mu      sync.Mutex
	batches [][]localFile // the files of each directory read
	skipped []string
	err     error // the first
}

func (w *walker) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *walker) failed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err != nil
}

// walk lists dir, whose path relative to the root is rel ("" for the
// root), and starts a walk of each directory in it; above holds the
// directories from the root down to dir, to recognise a symlink back to
// one of them. It calls w.wg.Done when dir is listed.
func (w *walker) walk(dir, rel string, above []dirKey) {
	defer w.wg.Done()
	w.slots <- struct{}{}
	defer func() { <-w.slots }()
	if w.failed() {
		return
	}
	d, err := os.Open(dir)
	if err != nil {
		w.fail(fmt.Errorf("assets_dir: cannot read directory %s: %w", dir, err))
		return
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		w.fail(fmt.Errorf("assets_dir: cannot read directory %s: %w", dir, err))
		return
	}
	// In name order, as os.ReadDir gives them: the first problem
	// reported is the same each run.
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	// Each entry is looked up relative to the open directory (fstatat):
	// the kernel resolves one name instead of the whole path, which
	// halves the cost of the walk's one system call per file.
	fd := int(d.Fd())
	files := make([]localFile, 0, len(entries))
	var skipped []string
	for _, e := range entries {
		name := e.Name()
		abs := dir + string(filepath.Separator) + name
		r := name
		if rel != "" {
			r = rel + "/" + name
		}
		var st unix.Stat_t
		// Follows a symlink, as stat does.
		if err := ignoringEINTR(func() error { return unix.Fstatat(fd, name, &st, 0) }); err != nil {
			perr := &fs.PathError{Op: "stat", Path: abs, Err: err}
			if e.Type()&fs.ModeSymlink != 0 {
				target, _ := os.Readlink(abs)
				w.fail(fmt.Errorf("assets_dir: %s is a broken symlink (to %s): %w", abs, target, perr))
				return
			}
			w.fail(fmt.Errorf("assets_dir: %w", perr))
			return
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if w.ex.Excluded(r, isDir) {
			continue
		}
		switch {
		case isDir:
			key := keyOf(&st)
			if slices.Contains(above, key) {
				target, _ := os.Readlink(abs)
				w.fail(fmt.Errorf("assets_dir: symlink loop: %s (to %s) leads back to a directory above it; exclude it with assets_exclude or remove the link", abs, target))
				return
			}
			w.wg.Add(1)
			// dir's walk does not wait for its subdirectories' (which
			// wait for a slot), so a deep tree cannot hold every slot.
			go w.walk(abs, r, append(slices.Clip(above), key))
		case st.Mode&unix.S_IFMT == unix.S_IFREG:
			id, ok := identityOf(&st)
			files = append(files, localFile{rel: r, abs: abs, size: st.Size, id: id, hasID: ok})
		default:
			skipped = append(skipped, r)
		}
	}
	w.mu.Lock()
	w.batches = append(w.batches, files)
	w.skipped = append(w.skipped, skipped...)
	w.mu.Unlock()
}

// hashFiles fills in the MD5 of every file, parallel reads at a time, so
// an unreadable file is found before anything is sent; for a file of at
// least partSize bytes, in the same read, the ETag its multipart upload
// will have. A file the cache knows unchanged is not read. It returns how
// many files it read.
func hashFiles(ctx context.Context, files []localFile, parallel int, partSize int64, cache *hashCache) (int, error) {
	now := cache.now()
	var toRead []int
	for i := range files {
		if e, ok := cache.lookup(files[i], partSize); ok {
			files[i].md5, files[i].partsETag = e.md5, e.parts
		} else {
			toRead = append(toRead, i)
		}
	}
	err := forEach(ctx, len(toRead), parallel, func(ctx context.Context, j int) error {
		f := &files[toRead[j]]
		var err error
		if f.md5, f.partsETag, err = fileSums(f.abs, f.size, partSize); err != nil {
			return err
		}
		cache.keep(*f, partSize, now)
		return nil
	})
	return len(toRead), err
}

// maxParts is the most parts a multipart upload has; beyond it the
// transfer manager picks larger parts, and the ETag is not predicted.
const maxParts = 10000

// fileSums reads name once for its MD5 and, when size is at least
// partSize, the multipart ETag of its partSize parts.
func fileSums(name string, size, partSize int64) (sum, partsETag string, err error) {
	f, err := os.Open(name)
	if err != nil {
		return "", "", fmt.Errorf("assets_dir: cannot read %s: %w", name, err)
	}
	defer f.Close()
	whole := md5.New()
	if size < partSize || (size+partSize-1)/partSize > maxParts {
		if _, err := io.Copy(whole, f); err != nil {
			return "", "", fmt.Errorf("assets_dir: cannot read %s: %w", name, err)
		}
		return hex.EncodeToString(whole.Sum(nil)), "", nil
	}
	var sums []byte // the parts' MD5s, concatenated
	n := 0
	for {
		part := md5.New()
		copied, err := io.CopyN(io.MultiWriter(whole, part), f, partSize)
		if copied > 0 {
			sums = part.Sum(sums)
			n++
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", "", fmt.Errorf("assets_dir: cannot read %s: %w", name, err)
		}
	}
	of := md5.Sum(sums)
	return hex.EncodeToString(whole.Sum(nil)), fmt.Sprintf("%s-%d", hex.EncodeToString(of[:]), n), nil
}

// forEach calls fn for 0..n-1, at most parallel at a time, and returns
// the first error, after which no further calls start.
func forEach(ctx context.Context, n, parallel int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	next := make(chan int)
	for range min(parallel, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
