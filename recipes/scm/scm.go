// Package scm holds the ways a release's files reach a host: git (a bare
// mirror in repo/ on each host, exported with git archive), svn (svn export
// of one revision) and copy (the control machine builds one archive and
// uploads it to each host).
package scm

import (
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
