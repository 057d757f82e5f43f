package scm

// The git strategy keeps a bare mirror of the repository in DEPLOY_TO/repo
// on every host (as Capistrano does, so a fleet can move between the two)
// and exports each release from it with git archive: hosts fetch only what
// changed since the last deploy, and a release holds no .git directory.
//
// Variables (read when each method runs, so command-line overrides count):
//
//	repo_url   (required)  the repository, as git on the hosts reaches it
//	                       (https://…, git@host:path, ssh://…, file://…).
//	                       ext:: and fd:: URLs are refused. Mark it
//	                       secret=True if it embeds credentials.
//	branch     "main"      the branch to deploy when none of tag, revision,
//	                       version is set.
//	tag        unset       a tag to deploy; an annotated tag resolves to
//	                       its commit.
//	revision   unset       a commit sha: all 40 hex digits (used as given),
//	                       or 4+ digits of a branch or tag tip's sha.
//	version    unset       a semver constraint ("^1.4", ">=1.2, <2"): the
//	                       highest tag vX.Y.Z / X.Y.Z satisfying it;
//	                       prereleases only if the constraint has one.
//	repo_tree  unset       a directory of the repository whose contents
//	                       become the release root (a monorepo's app).
//
// Only one of revision, tag and version may be set; values given on the
// command line win over the Deployfile's (see readSelector).
//
// Hosts need git and tar, and read access to repo_url without a prompt
// (ssh-agent forwarding, deploy keys or a credential helper); so does the
// control machine, which resolves the revision with git ls-remote, unless
// it cannot reach the repository and the primary host does it instead.
// git refuses a file:// repository owned by another user unless its path
// is listed in that user's safe.directory setting.

import (
	"fmt"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/tasks"
)

// gitStrategy is the "git" strategy. Its only state is the revision
// resolved for this run.
type gitStrategy struct {
	mu       sync.Mutex
	resolved *Revision
}

func (g *gitStrategy) Name() string { return "git" }

// Check reports invalid variables, a missing git or tar, and a repository
// the host cannot list, in one command.
func (g *gitStrategy) Check(hc *tasks.HostContext, l deploy.Layout) ([]string, error) {
	return runCheck(g, hc, l)
}

// CheckStep is Check's step: git and tar on the PATH (shell builtins,
// nothing to fork), and git ls-remote of the repository (Capistrano's
// git:check), each problem a line of its own.
func (g *gitStrategy) CheckStep(c *tasks.Context, l deploy.Layout) ([]string, *tasks.Step, func(string) []string) {
	var problems []string
	src, srcErr := readGitSource(c)
	if srcErr != nil {
		problems = append(problems, srcErr.Error())
	}
	var args []string
	if src.url != "" && validateRepoURL(src.url) == nil {
		args = []string{src.url}
	}
	parse := func(out string) []string {
		probs, failed := parseCheck(out)
		if failed != nil {
			r := stderrReason(failed)
			if r == "" {
				r = "git ls-remote failed"
			}
			probs = append(probs, fmt.Sprintf("cannot read repo_url %s: %s", src.url, r))
		}
		return probs
	}
	return problems, &tasks.Step{Name: "check git and the repository", Script: gitCheckScript, Args: args, Env: gitEnv()}, parse
}

// Resolve picks the commit once per strategy value: later calls return the
// first answer, so deploy:check and deploy:updating cannot disagree when
// the branch moves in between.
func (g *gitStrategy) Resolve(c *tasks.Context) (Revision, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.resolved != nil {
		return *g.resolved, nil
	}
	src, err := readGitSource(c)
	if err != nil {
		return Revision{}, fmt.Errorf("git: %w", err)
	}
	rev, err := resolveGit(c, "git", src, true)
	if err != nil {
		return Revision{}, err
	}
	g.resolved = &rev
	return rev, nil
}

// Update clones the mirror the first time and afterwards points it at the
// current repo_url (it may have changed in the Deployfile) and fetches with
// prune, so deleted branches disappear and force-pushed ones are followed.
// It then checks that rev's commit is there, so the failure names the
// commit rather than surfacing later as a broken archive.
func (g *gitStrategy) Update(hc *tasks.HostContext, l deploy.Layout, rev Revision) error {
	fail := func(err error) error { return fmt.Errorf("git update on %s: %w", hc.Host, err) }
	cached, err := hc.Test([]string{"test", "-f", g.CacheFile(l)}, tasks.CommandOptions{Label: "look for the git mirror"})
	if err != nil {
		return fail(err)
	}
	step, err := g.UpdateStep(hc.Context, l, rev, cached)
	if err != nil {
		return fail(err)
	}
	// The fused deploy leaves the commit's check to the export (see
	// ReleaseStep); on its own, Update checks it itself.
	check := tasks.Step{Name: "check the commit", Script: gitHasCommitScript, Args: []string{l.Repo(), rev.ID, missingCommit(hc.Context, l, rev)}, Env: gitEnv()}
	_, err = runSteps(hc, "git update", *step, check)
	return err
}

// missingCommit says in words that rev's commit is not in the mirror.
func missingCommit(c *tasks.Context, l deploy.Layout, rev Revision) string {
	url, _ := reqString(c, "repo_url")
	return fmt.Sprintf("commit %s (%s) is not in %s after fetching %s", rev.ID, rev.Branch, l.Repo(), url)
}

// CacheFile is the mirror's HEAD: the mirror exists once it does.
func (g *gitStrategy) CacheFile(l deploy.Layout) string { return path.Join(l.Repo(), "HEAD") }

// UpdateStep is Update's step, a fetch into the mirror
// (scripts/git_fetch.sh) or its first clone (scripts/git_clone.sh).
// Whether rev's commit arrived is ReleaseStep's to find out: only when its
// export fails does it look, so a deploy pays no extra git for it.
func (g *gitStrategy) UpdateStep(c *tasks.Context, l deploy.Layout, rev Revision, cached bool) (*tasks.Step, error) {
	url, err := reqString(c, "repo_url")
	if err != nil {
		return nil, err
	}
	if err := validateRepoURL(url); err != nil {
		return nil, err
	}
	if err := checkSHA(rev); err != nil {
		return nil, err
	}
	if cached {
		return &tasks.Step{Name: "update the git mirror", Script: gitFetchScript, Args: []string{l.Repo(), url}, Env: gitEnv()}, nil
	}
	return &tasks.Step{Name: "clone the git mirror", Script: gitCloneScript, Args: []string{l.Repo(), url}, Env: gitEnv()}, nil
}

// Release exports rev (or its repo_tree subdirectory) into dir, in one
// command (ReleaseStep).
func (g *gitStrategy) Release(hc *tasks.HostContext, l deploy.Layout, rev Revision, dir string) error {
	step, err := g.ReleaseStep(hc.Context, l, rev, dir)
	if err != nil {
		return fmt.Errorf("git release on %s: %w", hc.Host, err)
	}
	_, err = runSteps(hc, "git release", step)
	return err
}

// ReleaseStep is Release's step (scripts/git_release.sh): git archive
// of the commit (or of its repo_tree directory) into tar, in dir.
func (g *gitStrategy) ReleaseStep(c *tasks.Context, l deploy.Layout, rev Revision, dir string) (tasks.Step, error) {
	if err := checkReleaseDir(dir); err != nil {
		return tasks.Step{}, err
	}
	if err := checkSHA(rev); err != nil {
		return tasks.Step{}, err
	}
	tree, err := optString(c, "repo_tree")
	if err != nil {
		return tasks.Step{}, err
	}
	if tree != "" {
		if err := ValidateRef(KindRepoTree, tree); err != nil {
			return tasks.Step{}, err
		}
	}
	badTree := fmt.Sprintf("repo_tree %q is not a directory in commit %s (%s)", tree, rev.ID, rev.Branch)
	args := []string{l.Repo(), rev.ID, dir, tree, strconv.Itoa(treeDepth(tree)), missingCommit(c, l, rev), badTree}
	return tasks.Step{Name: "export " + shortSHA(rev.ID), Script: gitReleaseScript, Args: args, Env: gitEnv()}, nil
}

// RevisionTime is the commit's time, which only the hosts' mirrors know
// (the control machine resolved the commit with ls-remote): a git log in
// the mirror, which the deploy recipe runs in the export's command.
func (g *gitStrategy) RevisionTime(c *tasks.Context, l deploy.Layout, rev Revision) (time.Time, []string, error) {
	if err := checkSHA(rev); err != nil {
		return time.Time{}, nil, err
	}
	return time.Time{}, []string{"git", "--git-dir=" + l.Repo(), "log", "-1", "--format=%ct", rev.ID}, nil
}

// checkSHA refuses a revision id that is not a full commit sha (a dry
// run's placeholder stands for one).
func checkSHA(rev Revision) error {
	if !rev.Placeholder && !isFullSHA(rev.ID) {
		return fmt.Errorf("revision id %q is not a full commit sha", rev.ID)
	}
	return nil
}

// shortSHA is a commit id cut for a label.
func shortSHA(id string) string {
	if len(id) > 12 && isFullSHA(id) {
		return id[:12]
	}
	return id
}

// Close has nothing to remove: the mirror on each host is kept on purpose.
func (g *gitStrategy) Close() error { return nil }

// checkReleaseDir refuses a relative release directory: the strategies run
// their extraction from other directories (repo/, .davit/), where a
// relative path would land the release somewhere else.
func checkReleaseDir(dir string) error {
	if !path.IsAbs(dir) {
		return fmt.Errorf("release directory %q is not an absolute path", dir)
	}
	return nil
}
