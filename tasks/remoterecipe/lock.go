package remoterecipe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LockVersion is the format version a lock file records; a davit that
// reads a newer one refuses it instead of guessing.
const LockVersion = 1

// lockComment heads every lock file, for whoever opens it.
const lockComment = "Written by davit: the git recipes the Deployfile loads, pinned to a commit with the SHA-256 of every file loaded. Commit this file; `davit recipes update` rewrites it."

// Lock is the content of a Deployfile.lock: per git source, what it was
// resolved to. Its JSON form (MarshalIndent, keys sorted) is stable, so a
// lock that did not change is byte-for-byte the same.
type Lock struct {
	Comment string `json:"comment"`
	Version int    `json:"lock_version"`
	// Sources are keyed by the source as load() writes it, with its git+
	// prefix and without the file and version.
	Sources map[string]*Entry `json:"sources"`
}

// Entry is one source's resolution.
type Entry struct {
	// Constraint is the REF the Deployfile gives after @.
	Constraint string `json:"constraint"`
	// Tag is the tag the constraint selected; empty for a commit.
	Tag string `json:"tag,omitempty"`
	// Commit is the full commit id the files come from.
	Commit string `json:"commit"`
	// Files maps every file loaded from the source (path inside the
	// repository) to "sha256:HEX" of its content.
	Files map[string]string `json:"files"`
}

// Version is how messages name the entry's version: the tag, or the
// commit's first 12 digits.
func (e *Entry) version() string {
	if e.Tag != "" {
		return e.Tag
	}
	return shortCommit(e.Commit)
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// LockPathFor is the lock file of a Deployfile: beside it, its name plus
// ".lock" (Deployfile.lock).
func LockPathFor(deployfile string) string {
	return filepath.Join(filepath.Dir(deployfile), filepath.Base(deployfile)+".lock")
}

// ReadLock reads a lock file; a missing file is (nil, nil).
func ReadLock(path string) (*Lock, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var l Lock
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("read %s: not a davit lock file: %w; `davit recipes update` writes a new one", path, err)
	}
	if l.Version != LockVersion {
		return nil, fmt.Errorf("read %s: lock_version %d, this davit reads version %d; use the davit that wrote it, or `davit recipes update` to rewrite it", path, l.Version, LockVersion)
	}
	for src, e := range l.Sources {
		if e == nil || e.Commit == "" || !IsCommit(e.Commit) {
			return nil, fmt.Errorf("read %s: source %s has no valid commit; `davit recipes update %s` resolves it again", path, src, src)
		}
		if e.Tag != "" && (strings.HasPrefix(e.Tag, "-") || strings.ContainsAny(e.Tag, ": \t\n~^?*[\\")) {
			return nil, fmt.Errorf("read %s: source %s: %q is not a tag name; `davit recipes update %s` resolves it again", path, src, e.Tag, src)
		}
		if e.Files == nil {
			e.Files = map[string]string{}
		}
	}
	if l.Sources == nil {
		l.Sources = map[string]*Entry{}
	}
	return &l, nil
}

// WriteLock writes l to path atomically (a temporary file renamed over
// it), so a reader never sees half a lock, even when two davit processes
// write one at once.
func WriteLock(path string, l *Lock) error {
	l.Comment, l.Version = lockComment, LockVersion
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
