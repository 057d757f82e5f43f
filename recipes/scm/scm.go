// Package scm holds the ways a release's files reach a host: git (a bare
// mirror in repo/ on each host, exported with git archive), svn (svn export
// of one revision) and copy (the control machine builds one archive and
// uploads it to each host).
package scm

import (
	"fmt"
	"strings"

	"davit/deploy"
	"davit/tasks"
)

// Revision is what one deploy puts on every host. It is resolved once per
// run, never per host, so every host gets the same code.
type Revision struct {
	// ID names the exact content: a git commit sha, an svn revision number,
	// or the digest of a copy archive. It is written to each release's
	// REVISION file.
	ID string
	// Branch is what the user asked for, as revisions.log records it: a
	// branch, tag, version constraint's chosen tag, or "r1234".
	Branch string
}

// Strategy moves a revision's files onto hosts. The deploy recipe calls
// Resolve once, then, on every host, Update and Release; Check serves
// deploy:check.
type Strategy interface {
	// Name is the strategy's name as the scm variable spells it.
	Name() string
	// Check returns every problem on this host that would make a deploy
	// fail (a missing tool, an unreachable repository), all at once; an
	// error only when the check itself could not run.
	Check(hc *tasks.HostContext, l deploy.Layout) ([]string, error)
	// Resolve picks the revision for the whole run.
	Resolve(c *tasks.Context) (Revision, error)
	// Update brings the host's SCM cache (repo/) up to date with rev; a
	// no-op for strategies without a cache.
	Update(hc *tasks.HostContext, l deploy.Layout, rev Revision) error
	// Release writes rev's files into dir, an existing empty directory on
	// the host.
	Release(hc *tasks.HostContext, l deploy.Layout, rev Revision, dir string) error
	// Close removes what Resolve left on the control machine (the copy
	// archive). It is called once at the end of the run, success or not.
	Close() error
}

// String is the revision as messages and revisions.log show it: what was
// asked for and the exact content, e.g. "v1.4.2 (1a2b3c4d5e6f)". A sha
// is cut to 12 digits, enough to be unique in any real repository.
func (r Revision) String() string {
	id := r.ID
	if len(id) > 12 && isFullSHA(id) {
		id = id[:12]
	}
	switch {
	case r.Branch == "" || r.Branch == r.ID:
		return r.ID
	case id == "":
		return r.Branch
	}
	return r.Branch + " (" + id + ")"
}

// Names lists the strategy names New accepts, sorted.
func Names() []string { return []string{"copy", "git", "svn"} }

// New returns a new strategy for name, the value of the scm variable:
// "git", "svn" or "copy". An unknown name is an error listing the valid
// ones and suggesting the closest.
func New(name string) (Strategy, error) {
	// A fresh value per call: a strategy holds one run's resolved
	// revision (and the copy strategy its archive), which must never leak
	// into another run.
	switch name {
	case "git":
		return &gitStrategy{}, nil
	case "svn":
		return &svnStrategy{}, nil
	case "copy":
		return &copyStrategy{}, nil
	}
	msg := fmt.Sprintf("unknown scm %q", name)
	if s := tasks.Suggest(name, Names()); s != "" {
		msg += " (did you mean " + s + "?)"
	}
	return nil, fmt.Errorf("%s; valid: %s", msg, strings.Join(Names(), ", "))
}

// Compile-time checks that every strategy implements Strategy.
var (
	_ Strategy = (*gitStrategy)(nil)
	_ Strategy = (*svnStrategy)(nil)
	_ Strategy = (*copyStrategy)(nil)
)
