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
	script := "if ! command -v git >/dev/null; then " + problemLine("git is not installed (no git on the PATH)") + "; exit 0; fi; " +
		"command -v tar >/dev/null || " + problemLine("tar is not installed (it unpacks git archive's output into each release)")
	if src.url != "" && validateRepoURL(src.url) == nil {
		script += "; " + failedCapture("git ls-remote -- "+deploy.Quote(src.url)+" HEAD")
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
	return problems, &tasks.Step{Name: "check git and the repository", Script: script, Env: gitEnv()}, parse
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
	cached, err := hc.Test([]string{"test", "-f", g.CacheFile(l)}, tasks.CommandOptions{})
	if err != nil {
		return fail(err)
	}
	step, err := g.UpdateStep(hc.Context, l, rev, cached)
	if err != nil {
		return fail(err)
	}
	// The fused deploy leaves the commit's check to the export (see
	// ReleaseStep); on its own, Update checks it itself.
	check := tasks.Step{Name: "check the commit", Script: "cd " + deploy.Quote(l.Repo()) + " && " + missingCommit(hc.Context, l, rev, "git cat-file -e "+deploy.Quote(rev.ID+"^{commit}")), Env: gitEnv()}
	_, err = runSteps(hc, "git update", *step, check)
	return err
}

// missingCommit runs test (a command that fails when rev's commit is not
// in the mirror) and, when it fails, says so in words and fails.
func missingCommit(c *tasks.Context, l deploy.Layout, rev Revision, test string) string {
	url, _ := reqString(c, "repo_url")
	msg := fmt.Sprintf("commit %s (%s) is not in %s after fetching %s", rev.ID, rev.Branch, l.Repo(), url)
	return "{ " + test + " 2>/dev/null || { printf '%s\\n' " + deploy.Quote(msg) + " >&2; exit 1; }; }"
}

// CacheFile is the mirror's HEAD: the mirror exists once it does.
func (g *gitStrategy) CacheFile(l deploy.Layout) string { return path.Join(l.Repo(), "HEAD") }

// UpdateStep is Update's step, a fetch into the mirror or its first clone:
//
//	cd REPO && git remote set-url origin URL && git remote update --prune
//	git clone --mirror --quiet -- URL REPO && cd REPO
//
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
	if !isFullSHA(rev.ID) {
		return nil, fmt.Errorf("revision id %q is not a full commit sha", rev.ID)
	}
	repo, u := deploy.Quote(l.Repo()), deploy.Quote(url)
	script := "git clone --mirror --quiet -- " + u + " " + repo + " && cd " + repo
	name := "clone the git mirror"
	if cached {
		// set-url rewrites the mirror's config; it runs only when the
		// config's origin url line is not exactly repo_url (git writes
		// it as "<TAB>url = VALUE"; a value git had to quote never
		// matches, and is set again, which is harmless).
		same := "known=; sec=; while IFS= read -r l || [ -n \"$l\" ]; do case $l in '[remote \"origin\"]') sec=1 ;; '['*) sec= ;; esac; " +
			"[ -n \"$sec\" ] && [ \"$l\" = " + deploy.Quote("\turl = "+url) + " ] && known=1; done < config"
		script = "cd " + repo + " && { " + same + "; [ -n \"$known\" ] || git remote set-url origin " + u + "; } && git remote update --prune"
		name = "update the git mirror"
	}
	return &tasks.Step{Name: name, Script: script, Env: gitEnv()}, nil
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

// ReleaseStep is Release's step:
//
//	cd REPO && git archive SHA [TREE] | tar -x -f - [--strip-components=N] -C DIR
//
// A pipeline has to be one shell line; every value in it goes through
// deploy.Quote. POSIX sh has no pipefail, but tar fails on the empty or
// truncated input a failing git archive leaves it; the commit is then
// looked for, so a commit the fetch did not bring is named as such. With
// repo_tree the tree is checked first (git cat-file -t) so a wrong path
// gets a clear message.
func (g *gitStrategy) ReleaseStep(c *tasks.Context, l deploy.Layout, rev Revision, dir string) (tasks.Step, error) {
	if err := checkReleaseDir(dir); err != nil {
		return tasks.Step{}, err
	}
	if !isFullSHA(rev.ID) {
		return tasks.Step{}, fmt.Errorf("revision id %q is not a full commit sha", rev.ID)
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
	line := "cd " + deploy.Quote(l.Repo()) + " && "
	if tree != "" {
		msg := fmt.Sprintf("repo_tree %q is not a directory in commit %s (%s)", tree, rev.ID, rev.Branch)
		line += "{ [ \"$(git cat-file -t " + deploy.Quote(rev.ID+":"+tree) + " 2>/dev/null)\" = tree ] || { printf '%s\\n' " + deploy.Quote(msg) + " >&2; exit 1; }; } && "
	}
	line += "git archive " + deploy.Quote(rev.ID)
	if tree != "" {
		line += " " + deploy.Quote(tree)
	}
	line += " | tar -x -f -"
	if n := treeDepth(tree); n > 0 {
		line += " --strip-components=" + strconv.Itoa(n)
	}
	line += " -C " + deploy.Quote(dir)
	// tar fails on the empty input a failing git archive leaves it; only
	// then is the commit looked for, to say why in words.
	line += " || { " + missingCommit(c, l, rev, "git cat-file -e "+deploy.Quote(rev.ID+"^{commit}")) + "; exit 1; }"
	return tasks.Step{Name: "export " + shortSHA(rev.ID), Script: line, Env: gitEnv()}, nil
}

// RevisionTime is the commit's time, which only the hosts' mirrors know
// (the control machine resolved the commit with ls-remote): a git log in
// the mirror, which the deploy recipe runs in the export's command.
func (g *gitStrategy) RevisionTime(c *tasks.Context, l deploy.Layout, rev Revision) (time.Time, string, error) {
	if !isFullSHA(rev.ID) {
		return time.Time{}, "", fmt.Errorf("revision id %q is not a full commit sha", rev.ID)
	}
	return time.Time{}, "git " + deploy.Quote("--git-dir="+l.Repo()) + " log -1 --format=%ct " + deploy.Quote(rev.ID), nil
}

// shortSHA is a commit id cut for a label.
func shortSHA(id string) string {
	if len(id) > 12 {
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
