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
	"sync"

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
	info, err := os.Stat(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("assets_dir %s does not exist", root)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("assets_dir %s: %w", root, err)
	}
	if !info.IsDir() {
		return nil, nil, fmt.Errorf("assets_dir %s is not a directory", root)
	}
	w := &walker{ex: ex, slots: make(chan struct{}, max(parallel, 1))}
	w.wg.Add(1)
	w.walk(root, "", []os.FileInfo{info})
	w.wg.Wait()
	if w.err != nil {
		return nil, nil, w.err
	}
	sort.Slice(w.files, func(i, j int) bool { return w.files[i].rel < w.files[j].rel })
	sort.Strings(w.skipped)
	return w.files, w.skipped, nil
}

type walker struct {
	ex    *scm.Excluder
	slots chan struct{} // one per directory being read
	wg    sync.WaitGroup

	mu      sync.Mutex
	files   []localFile
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
func (w *walker) walk(dir, rel string, above []os.FileInfo) {
	defer w.wg.Done()
	w.slots <- struct{}{}
	defer func() { <-w.slots }()
	if w.failed() {
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		w.fail(fmt.Errorf("assets_dir: cannot read directory %s: %w", dir, err))
		return
	}
	var files []localFile
	var skipped []string
	for _, e := range entries {
		abs := filepath.Join(dir, e.Name())
		r := e.Name()
		if rel != "" {
			r = rel + "/" + e.Name()
		}
		info, err := os.Stat(abs) // follows a symlink
		if err != nil {
			if e.Type()&fs.ModeSymlink != 0 {
				target, _ := os.Readlink(abs)
				w.fail(fmt.Errorf("assets_dir: %s is a broken symlink (to %s): %w", abs, target, err))
				return
			}
			w.fail(fmt.Errorf("assets_dir: %w", err))
			return
		}
		if w.ex.Excluded(r, info.IsDir()) {
			continue
		}
		switch {
		case info.IsDir():
			for _, a := range above {
				if os.SameFile(a, info) {
					target, _ := os.Readlink(abs)
					w.fail(fmt.Errorf("assets_dir: symlink loop: %s (to %s) leads back to a directory above it; exclude it with assets_exclude or remove the link", abs, target))
					return
				}
			}
			w.wg.Add(1)
			// dir's walk does not wait for its subdirectories' (which
			// wait for a slot), so a deep tree cannot hold every slot.
			go w.walk(abs, r, append(slices.Clip(above), info))
		case info.Mode().IsRegular():
			id, ok := identityOf(info)
			files = append(files, localFile{rel: r, abs: abs, size: info.Size(), id: id, hasID: ok})
		default:
			skipped = append(skipped, r)
		}
	}
	w.mu.Lock()
	w.files = append(w.files, files...)
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
			files[i].md5, files[i].partsETag = e.MD5, e.Parts
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
