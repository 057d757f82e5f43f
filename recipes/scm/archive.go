package scm

// The copy strategy's archives are built here, in Go rather than with the
// control machine's tar: the result is the same on a Linux or a macOS
// laptop (GNU tar and bsdtar differ in flags and defaults), entries come in
// a fixed order, owners are not leaked from the laptop, and the content
// digest is computed on the way.

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Excluder decides which paths copy_exclude leaves out.
//
// A pattern is a path.Match glob. Without a '/' it matches a file or
// directory name at any depth (".git", "*.log"); with a '/' it matches the
// path from the archive root ("tmp/cache", "config/*.local.yml"; a leading
// '/' is allowed and means the same). A trailing '/' matches directories
// only ("log/"). An excluded directory is left out with everything in it.
type Excluder struct {
	patterns []pattern
}

type pattern struct {
	glob     string
	anchored bool // matches the whole relative path, not a name
	dirOnly  bool
}

// NewExcluder validates the patterns, so a typo fails before anything is
// archived rather than silently excluding nothing.
func NewExcluder(patterns []string) (*Excluder, error) {
	e := &Excluder{}
	for _, p := range patterns {
		orig := p
		var pt pattern
		if strings.HasSuffix(p, "/") {
			pt.dirOnly = true
			p = strings.TrimRight(p, "/")
		}
		if strings.HasPrefix(p, "/") {
			pt.anchored = true
			p = strings.TrimLeft(p, "/")
		}
		if strings.Contains(p, "/") {
			pt.anchored = true
		}
		if p == "" {
			return nil, fmt.Errorf("copy_exclude pattern %q matches nothing", orig)
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("copy_exclude pattern %q: %w", orig, err)
		}
		pt.glob = p
		e.patterns = append(e.patterns, pt)
	}
	return e, nil
}

// Excluded reports whether rel (slash-separated, relative to the archive
// root) is left out.
func (e *Excluder) Excluded(rel string, isDir bool) bool {
	for _, p := range e.patterns {
		if p.dirOnly && !isDir {
			continue
		}
		subject := path.Base(rel)
		if p.anchored {
			subject = rel
		}
		if ok, _ := path.Match(p.glob, subject); ok {
			return true
		}
	}
	return false
}

// archiveWriter writes a gzip'd tar and a digest of what it holds. The
// digest covers each entry's type, path, permissions, link target and
// content, length-prefixed so no two trees share one, and not times or
// owners: the same tree gives the same revision id after a fresh checkout
// or a touch.
type archiveWriter struct {
	gz     *gzip.Writer
	tw     *tar.Writer
	digest hash.Hash
	files  int
	bytes  int64
}

func newArchiveWriter(w io.Writer) *archiveWriter {
	gz := gzip.NewWriter(w)
	return &archiveWriter{gz: gz, tw: tar.NewWriter(gz), digest: sha256.New()}
}

// add writes one entry; for a regular file, r supplies exactly hdr.Size
// bytes (a file that grows while it is archived is cut at the size it had,
// one that shrinks is an error).
func (a *archiveWriter) add(hdr *tar.Header, r io.Reader) error {
	mode := hdr.Mode & 0o777
	hdr.Mode = mode
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	hdr.ModTime = hdr.ModTime.Truncate(time.Second)
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	hdr.PAXRecords = nil
	hdr.Format = tar.FormatUnknown
	fmt.Fprintf(a.digest, "%c %o %d:%s %d:%s %d\n", hdr.Typeflag, mode, len(hdr.Name), hdr.Name, len(hdr.Linkname), hdr.Linkname, hdr.Size)
	if err := a.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archive %s: %w", hdr.Name, err)
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	n, err := io.Copy(a.tw, io.TeeReader(io.LimitReader(r, hdr.Size), a.digest))
	if err != nil {
		return fmt.Errorf("archive %s: %w", hdr.Name, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("archive %s: file shrank from %d to %d bytes while being archived", hdr.Name, hdr.Size, n)
	}
	a.files++
	a.bytes += n
	return nil
}

// close finishes the archive and returns the hex digest.
func (a *archiveWriter) close() (string, error) {
	if err := a.tw.Close(); err != nil {
		return "", err
	}
	if err := a.gz.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(a.digest.Sum(nil)), nil
}

// archiveDir writes root's tree (not root itself), minus what ex excludes,
// into a. Directories, regular files and symbolic links (kept as links,
// never followed) are archived; sockets, devices and pipes cannot be part
// of a release and are returned in skipped.
func archiveDir(a *archiveWriter, root string, ex *Excluder) (skipped []string, err error) {
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ex.Excluded(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: rel, Mode: int64(info.Mode().Perm()), ModTime: info.ModTime()}
		switch {
		case d.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
			return a.add(hdr, nil)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
			return a.add(hdr, nil)
		case info.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
			return a.add(hdr, f)
		}
		skipped = append(skipped, rel)
		return nil
	})
	return skipped, err
}

// copyTar copies the entries of the tar stream r (git archive's output)
// into a, keeping only those under prefix (repo_tree, "" for all) with the
// prefix removed, and leaving out what ex excludes. Git's pax global
// header (the commit id) is dropped: a's own headers are all that count.
func copyTar(a *archiveWriter, r io.Reader, prefix string, ex *Excluder) error {
	tr := tar.NewReader(r)
	var skipDirs []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read git archive: %w", err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		if prefix != "" {
			if name == prefix || !strings.HasPrefix(name, prefix+"/") {
				continue
			}
			name = strings.TrimPrefix(name, prefix+"/")
		}
		isDir := hdr.Typeflag == tar.TypeDir
		if underAny(name, skipDirs) {
			continue
		}
		if ex.Excluded(name, isDir) {
			if isDir {
				skipDirs = append(skipDirs, name)
			}
			continue
		}
		if isDir {
			name += "/"
		}
		out := *hdr
		out.Name = name
		if err := a.add(&out, tr); err != nil {
			return err
		}
	}
}

// underAny reports whether name lies inside one of dirs.
func underAny(name string, dirs []string) bool {
	for _, d := range dirs {
		if strings.HasPrefix(name, d+"/") {
			return true
		}
	}
	return false
}
