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
	"sync"

	"github.com/davit-deploy/davit/recipes/scm"
)

// localFile is one file of assets_dir.
type localFile struct {
	rel  string // slash-separated, relative to assets_dir
	abs  string
	size int64
	md5  string // hex, filled by hashFiles
}

// walkDir lists the regular files under root, leaving out what ex
// excludes. Symlinks are followed, to files and to directories, except a
// directory symlink that leads back to a directory above it (a loop),
// which is an error naming it; so is a broken symlink. Other kinds of
// file (sockets, devices) are returned as skipped.
func walkDir(root string, ex *scm.Excluder) (files []localFile, skipped []string, err error) {
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
	w := &walker{ex: ex}
	if err := w.walk(root, "", []os.FileInfo{info}); err != nil {
		return nil, nil, err
	}
	return w.files, w.skipped, nil
}

type walker struct {
	ex      *scm.Excluder
	files   []localFile
	skipped []string
}

// walk lists dir, whose path relative to the root is rel ("" for the
// root); above holds the directories from the root down to dir, to
// recognise a symlink back to one of them.
func (w *walker) walk(dir, rel string, above []os.FileInfo) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("assets_dir: cannot read directory %s: %w", dir, err)
	}
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
				return fmt.Errorf("assets_dir: %s is a broken symlink (to %s): %w", abs, target, err)
			}
			return fmt.Errorf("assets_dir: %w", err)
		}
		if w.ex.Excluded(r, info.IsDir()) {
			continue
		}
		switch {
		case info.IsDir():
			for _, a := range above {
				if os.SameFile(a, info) {
					target, _ := os.Readlink(abs)
					return fmt.Errorf("assets_dir: symlink loop: %s (to %s) leads back to a directory above it; exclude it with assets_exclude or remove the link", abs, target)
				}
			}
			if err := w.walk(abs, r, append(above, info)); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			w.files = append(w.files, localFile{rel: r, abs: abs, size: info.Size()})
		default:
			w.skipped = append(w.skipped, r)
		}
	}
	return nil
}

// hashFiles fills in the MD5 of every file, parallel reads at a time, so
// an unreadable file is found before anything is sent.
func hashFiles(ctx context.Context, files []localFile, parallel int) error {
	return forEach(ctx, len(files), parallel, func(ctx context.Context, i int) error {
		sum, err := fileMD5(files[i].abs)
		if err != nil {
			return err
		}
		files[i].md5 = sum
		return nil
	})
}

func fileMD5(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("assets_dir: cannot read %s: %w", name, err)
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("assets_dir: cannot read %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
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
