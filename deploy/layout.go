package deploy

import (
	"fmt"
	"path"
	"regexp"
	"time"
)

// Layout is the Capistrano server layout under one deploy_to directory:
//
//	DEPLOY_TO/repo/                      the SCM cache (a bare git mirror)
//	DEPLOY_TO/releases/<YYYYmmddHHMMSS>/ one directory per release
//	DEPLOY_TO/shared/                    linked_dirs and linked_files
//	DEPLOY_TO/current -> releases/<id>   the live release
//	DEPLOY_TO/revisions.log              one line per deploy and rollback
//	DEPLOY_TO/.davit/                    davit's own state (lock, release marks)
//
// Paths are remote paths, so they use package path, not filepath.
type Layout struct {
	DeployTo string
}

func (l Layout) join(elem ...string) string {
	return path.Join(append([]string{l.DeployTo}, elem...)...)
}

// Releases is the directory holding every release.
func (l Layout) Releases() string { return l.join("releases") }

// Release is the directory of release id.
func (l Layout) Release(id string) string { return l.join("releases", id) }

// Shared holds what every release links to.
func (l Layout) Shared() string { return l.join("shared") }

// Current is the symlink to the live release.
func (l Layout) Current() string { return l.join("current") }

// Repo is the SCM cache.
func (l Layout) Repo() string { return l.join("repo") }

// RevisionsLog is Capistrano's revisions.log.
func (l Layout) RevisionsLog() string { return l.join("revisions.log") }

// State is davit's own directory.
func (l Layout) State() string { return l.join(".davit") }

// Lock is the deploy lock directory (created atomically with mkdir).
func (l Layout) Lock() string { return l.join(".davit", "lock") }

// Marks holds per-release marks (finished, bad).
func (l Layout) Marks() string { return l.join(".davit", "releases") }

// ReleaseIDFormat is the time layout of release ids: UTC to the second,
// as Capistrano names them.
const ReleaseIDFormat = "20060102150405"

var releaseIDPattern = regexp.MustCompile(`^[0-9]{14}$`)

// IsReleaseID reports whether name is a release directory name davit (or
// Capistrano) made. Anything else under releases/ is never touched.
func IsReleaseID(name string) bool {
	if !releaseIDPattern.MatchString(name) {
		return false
	}
	_, err := time.Parse(ReleaseIDFormat, name)
	return err == nil
}

// ReleaseID is the id of a release made at t.
func ReleaseID(t time.Time) string { return t.UTC().Format(ReleaseIDFormat) }

// ValidateDeployTo rejects deploy_to values that would make the layout
// dangerous to manage (a relative path, the root, parent references).
func ValidateDeployTo(p string) error {
	clean := path.Clean(p)
	switch {
	case p == "":
		return fmt.Errorf("deploy_to is empty")
	case !path.IsAbs(p):
		return fmt.Errorf("deploy_to %q is not an absolute path", p)
	case clean == "/":
		return fmt.Errorf("deploy_to %q is the root directory", p)
	case clean != p && clean+"/" != p:
		return fmt.Errorf("deploy_to %q is not a clean path (did you mean %q?)", p, clean)
	}
	return nil
}
