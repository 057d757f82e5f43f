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
	"errors"
	"fmt"
	"path"
	"strconv"
	"sync"

	"davit/deploy"
	"davit/tasks"
)

// gitStrategy is the "git" strategy. Its only state is the revision
// resolved for this run.
type gitStrategy struct {
	mu       sync.Mutex
	resolved *Revision
}

func (g *gitStrategy) Name() string { return "git" }

// Check reports invalid variables, a missing git or tar, and a repository
// the host cannot list.
func (g *gitStrategy) Check(hc *tasks.HostContext, l deploy.Layout) ([]string, error) {
	var problems []string
	src, srcErr := readGitSource(hc.Context)
	if srcErr != nil {
		problems = append(problems, srcErr.Error())
	}
	ok, err := hc.Test([]string{"git", "--version"}, tasks.CommandOptions{})
	if err != nil {
		return nil, fmt.Errorf("git check on %s: %w", hc.Host, err)
	}
	if !ok {
		return append(problems, "git is not installed (git --version failed)"), nil
	}
	if ok, err := hc.Test([]string{"command -v tar >/dev/null"}, tasks.CommandOptions{}); err != nil {
		return nil, fmt.Errorf("git check on %s: %w", hc.Host, err)
	} else if !ok {
		problems = append(problems, "tar is not installed (it unpacks git archive's output into each release)")
	}
	if src.url == "" || validateRepoURL(src.url) != nil {
		return problems, nil
	}
	if _, err := lsRemote(hc, src.url, nil, "HEAD"); err != nil {
		var ce *tasks.CommandError
		if errors.As(err, &ce) && ce.Err == nil {
			return append(problems, fmt.Sprintf("cannot read repo_url %s: %s", src.url, reason(err))), nil
		}
		return nil, fmt.Errorf("git check on %s: %w", hc.Host, err)
	}
	return problems, nil
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
	url, err := reqString(hc.Context, "repo_url")
	if err != nil {
		return fail(err)
	}
	if err := validateRepoURL(url); err != nil {
		return fail(err)
	}
	if !isFullSHA(rev.ID) {
		return fail(fmt.Errorf("revision id %q is not a full commit sha", rev.ID))
	}
	repo := l.Repo()
	env := tasks.CommandOptions{Env: gitEnv()}
	in := tasks.CommandOptions{Env: gitEnv(), Within: repo}
	exists, err := hc.Test([]string{"test", "-f", path.Join(repo, "HEAD")}, tasks.CommandOptions{})
	if err != nil {
		return fail(err)
	}
	if exists {
		if err := hc.Execute([]string{"git", "remote", "set-url", "origin", url}, in); err != nil {
			return fail(err)
		}
		if err := hc.Execute([]string{"git", "remote", "update", "--prune"}, in); err != nil {
			return fail(err)
		}
	} else {
		if err := hc.Execute([]string{"git", "clone", "--mirror", "--quiet", "--", url, repo}, env); err != nil {
			return fail(err)
		}
	}
	ok, err := hc.Test([]string{"git", "cat-file", "-e", rev.ID + "^{commit}"}, in)
	if err != nil {
		return fail(err)
	}
	if !ok {
		return fail(fmt.Errorf("commit %s (%s) is not in %s after fetching %s", rev.ID, rev.Branch, repo, url))
	}
	return nil
}

// Release exports rev (or its repo_tree subdirectory) into dir:
//
//	git archive SHA [TREE] | tar -x -f - [--strip-components=N] -C DIR
//
// A pipeline has to be one shell line; every value in it goes through
// deploy.Quote. POSIX sh has no pipefail, but tar fails on the empty or
// truncated input a failing git archive leaves it, and the commit and tree
// are checked first so the usual failures get a clear message.
func (g *gitStrategy) Release(hc *tasks.HostContext, l deploy.Layout, rev Revision, dir string) error {
	fail := func(err error) error { return fmt.Errorf("git release on %s: %w", hc.Host, err) }
	if err := checkReleaseDir(dir); err != nil {
		return fail(err)
	}
	if !isFullSHA(rev.ID) {
		return fail(fmt.Errorf("revision id %q is not a full commit sha", rev.ID))
	}
	tree, err := optString(hc.Context, "repo_tree")
	if err != nil {
		return fail(err)
	}
	if tree != "" {
		if err := ValidateRef(KindRepoTree, tree); err != nil {
			return fail(err)
		}
	}
	in := tasks.CommandOptions{Env: gitEnv(), Within: l.Repo()}
	if tree != "" {
		if err := checkTree(hc, in, rev, tree); err != nil {
			return fail(err)
		}
	}
	line := "git archive " + deploy.Quote(rev.ID)
	if tree != "" {
		line += " " + deploy.Quote(tree)
	}
	line += " | tar -x -f -"
	if n := treeDepth(tree); n > 0 {
		line += " --strip-components=" + strconv.Itoa(n)
	}
	line += " -C " + deploy.Quote(dir)
	if err := hc.Execute([]string{line}, in); err != nil {
		return fail(err)
	}
	return nil
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
