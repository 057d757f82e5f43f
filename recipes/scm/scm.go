// Package scm holds the ways a release's files reach a host: git (a bare
// mirror in repo/ on each host, exported with git archive), svn (svn export
// of one revision) and copy (the control machine builds one archive and
// uploads it to each host).
package scm

import (
	_ "embed"
	"fmt"
	"strings"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/tasks"
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
	// Source, when set, names where a revision that is no branch came
	// from ("directory app", for the copy strategy's copy_dir), and
	// messages say it instead of Branch.
	Source string
	// Placeholder: nothing resolved this revision, since a dry run runs
	// nothing; ID says so in words ("<revision of branch main>"), and the
	// strategies take it for what it stands for instead of refusing it as
	// not a commit sha. Only a dry run has one.
	Placeholder bool
}

// placeholderRevision is what a dry run deploys in place of the revision
// a real run would resolve: what of what it stands for.
func placeholderRevision(what, of, branch string) Revision {
	return Revision{ID: "<" + what + " of " + of + ">", Branch: branch, Placeholder: true}
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

// Scripted is a strategy whose work on a host is shell steps alone (no
// file to move from the control machine): git and svn. The deploy recipe
// runs these steps in the same command as its own (the release directory,
// REVISION, the marks), since on a fleet every command is an SSH session
// and a shell per host, which costs more than the steps themselves. The
// strategy's Check, Update and Release run the same steps, so both paths
// do the same work.
type Scripted interface {
	Strategy
	// CheckStep returns the problems found without running anything
	// (invalid variables) and, unless those leave nothing to check, a
	// step whose output parse turns into the host's problems.
	CheckStep(c *tasks.Context, l deploy.Layout) (known []string, step *tasks.Step, parse func(out string) []string)
	// CacheFile is the file whose presence means the host's cache
	// (repo/) exists, "" for a strategy without one. The deploy recipe
	// tests it while it reads the host's state under the lock, and tells
	// UpdateStep.
	CacheFile(l deploy.Layout) string
	// UpdateStep returns the step that brings the host's cache up to
	// date with rev (cached: it exists; else it is made), or nil for a
	// strategy without a cache.
	UpdateStep(c *tasks.Context, l deploy.Layout, rev Revision, cached bool) (*tasks.Step, error)
	// ReleaseStep returns the step that writes rev's files into dir, an
	// existing empty directory; it runs after UpdateStep's.
	ReleaseStep(c *tasks.Context, l deploy.Layout, rev Revision, dir string) (tasks.Step, error)
}

// RevisionTimer is a strategy that knows when a revision was made, which
// the deploy recipe writes to REVISION_TIME, as Capistrano does (a
// strategy that does not know, such as copy from a directory, gets the
// release's time).
type RevisionTimer interface {
	// RevisionTime returns the revision's time when the control machine
	// can tell it (svn's last-changed date, asked once per run; the copy
	// strategy's commit), else the words of a command that prints it in
	// Unix seconds on a host once the update ran (git: the commit's time,
	// from the mirror). Neither (zero time, nil) means unknown.
	RevisionTime(c *tasks.Context, l deploy.Layout, rev Revision) (t time.Time, command []string, err error)
}

// String is the revision as messages show it: what was asked for and the
// exact content, e.g. "v1.4.2 (1a2b3c4d5e6f)", or for a source that is no
// branch, what it is and its content ("directory app, content
// c53e2e96a1b0"). A sha or digest is cut to 12 digits, enough to be
// unique in any real repository. A dry run's placeholder is its words.
func (r Revision) String() string {
	id := r.ID
	if len(id) > 12 && (isFullSHA(id) || copyIDPattern.MatchString(id)) {
		id = id[:12]
	}
	switch {
	case r.Placeholder:
		return r.ID
	case r.Source != "":
		return r.Source + ", content " + id
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

	_ Scripted      = (*gitStrategy)(nil)
	_ Scripted      = (*svnStrategy)(nil)
	_ RevisionTimer = (*gitStrategy)(nil)
	_ RevisionTimer = (*svnStrategy)(nil)
	_ RevisionTimer = (*copyStrategy)(nil)
)

// runSteps runs steps on hc's host as one command; a failure names the
// host and what the strategy was doing (what, e.g. "git update").
func runSteps(hc *tasks.HostContext, what string, steps ...tasks.Step) ([]string, error) {
	outs, err := hc.RunSteps(steps, tasks.CommandOptions{})
	if err != nil {
		return outs, fmt.Errorf("%s on %s: %w", what, hc.Host, err)
	}
	return outs, nil
}

// runCheck runs a Scripted strategy's check on hc's host.
func runCheck(s Scripted, hc *tasks.HostContext, l deploy.Layout) ([]string, error) {
	problems, step, parse := s.CheckStep(hc.Context, l)
	if step == nil {
		return problems, nil
	}
	outs, err := runSteps(hc, s.Name()+" check", *step)
	if err != nil {
		return nil, err
	}
	return append(problems, parse(outs[0])...), nil
}

// Problem output of check steps (scripts/*_check.sh): "problem: TEXT"
// lines, and after a failedMarker line the stderr of a command whose
// failure is itself the problem (an unreachable repository), for Go to
// pick the telling line.
const (
	problemPrefix = "problem: "
	failedMarker  = "@@ failed"
)

// parseCheck reads a check step's output: its problem lines, and the
// stderr after failedMarker (nil when nothing failed).
func parseCheck(out string) (problems, failed []string) {
	inFailed := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case inFailed:
			failed = append(failed, line)
		case line == failedMarker:
			inFailed, failed = true, []string{}
		case strings.HasPrefix(line, problemPrefix):
			problems = append(problems, strings.TrimPrefix(line, problemPrefix))
		}
	}
	return problems, failed
}

// The strategies' remote shell scripts: constant text that takes its
// values as positional parameters (tasks.Step), so deploy.Quote, which
// quotes the arguments, is the only code that quotes. Each file says what
// its parameters are.
var (
	//go:embed scripts/git_check.sh
	gitCheckScript string
	//go:embed scripts/git_clone.sh
	gitCloneScript string
	//go:embed scripts/git_fetch.sh
	gitFetchScript string
	//go:embed scripts/git_release.sh
	gitReleaseScript string
	//go:embed scripts/git_has_commit.sh
	gitHasCommitScript string
	//go:embed scripts/svn_check.sh
	svnCheckScript string
	//go:embed scripts/svn_export.sh
	svnExportScript string
	//go:embed scripts/copy_tools.sh
	copyToolsScript string
)
