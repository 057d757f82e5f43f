package scm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/runner"
	"github.com/davit-deploy/davit/tasks"
	"github.com/davit-deploy/davit/tasks/semvertag"
)

// place is where a resolving command runs: the control machine (host nil)
// or one of the run's hosts. Resolution happens once per run, on one
// machine, so that every host deploys the same revision even if a branch
// moves half-way through.
type place struct {
	c    *tasks.Context
	host *deploy.Host
}

func (p place) String() string {
	if p.host == nil {
		return "the control machine"
	}
	return "host " + p.host.String()
}

// do runs fn there.
func (p place) do(fn func(*tasks.HostContext) error) error {
	if p.host == nil {
		return p.c.RunLocally(fn)
	}
	return p.c.On([]*deploy.Host{p.host}, runner.Sequence{}, fn)
}

// primaryHost is the host that resolves a revision when the control
// machine cannot reach the repository: among the hosts this run targets
// (narrowed by --roles/--hosts), the app role's primary, else any host
// marked primary, else the first. It must be a targeted host: a filtered-out
// primary may be the very machine the user is avoiding.
func primaryHost(c *tasks.Context) *deploy.Host {
	targets := c.Roles("all")
	if h := deploy.Primary(targets, "app"); h != nil {
		return h
	}
	return deploy.Primary(targets, "all")
}

// firstReachable runs fn on the control machine and, if that fails (the
// repository is behind a firewall only the servers pass, or the tool is
// missing here), on the primary host. fn should only run the commands and
// keep their output; deciding what the output means comes after, so that
// "no such branch" is an answer, not a reason to ask elsewhere. With
// fallback false only the control machine is tried (the copy strategy
// builds its archive there, so a host reaching the repository is no help).
func firstReachable(c *tasks.Context, tool, url string, fallback bool, fn func(*tasks.HostContext) error) (place, error) {
	local := place{c: c}
	lerr := local.do(fn)
	if lerr == nil {
		return local, nil
	}
	if errors.Is(lerr, context.Canceled) || c.Ctx().Err() != nil || !fallback {
		return place{}, fmt.Errorf("%s: query %s on the control machine: %w", tool, url, lerr)
	}
	h := primaryHost(c)
	if h == nil {
		return place{}, fmt.Errorf("%s: query %s on the control machine: %w (and the run targets no host to try instead)", tool, url, lerr)
	}
	c.Warn(fmt.Sprintf("%s: the control machine cannot query %s (%s); asking %s instead", tool, url, reason(lerr), h))
	remote := place{c: c, host: h}
	if rerr := remote.do(fn); rerr != nil {
		return place{}, fmt.Errorf("%s: query %s: on the control machine: %s; on host %s: %w", tool, url, reason(lerr), h, rerr)
	}
	return remote, nil
}

// reason is the most telling line of a failed command for a one-line
// message: git's first "fatal:" line (the "error:" lines before it are
// symptoms, the lines after it advice), else the first line of the
// stderr tail (svn's "svn: E…" comes first).
func reason(err error) string {
	var ce *tasks.CommandError
	if errors.As(err, &ce) {
		if r := stderrReason(ce.StderrTail); r != "" {
			return r
		}
		if ce.Err != nil {
			return ce.Err.Error()
		}
		return fmt.Sprintf("exit status %d", ce.ExitStatus)
	}
	return err.Error()
}

// stderrReason picks reason's line from stderr lines, or "" when they
// are all empty.
func stderrReason(lines []string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, "fatal:") {
			return strings.TrimSpace(l)
		}
	}
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

// gitEnv makes git fail instead of prompting: no terminal prompts, askpass
// helpers that refuse, and ssh's passphrase and host-key questions routed
// to the same refusing helper (SSH_ASKPASS_REQUIRE, OpenSSH 8.4+). A
// deploy must never hang waiting for a password nobody is there to type;
// and the local backend runs commands in their own process group, where
// reading the terminal would stop the process rather than prompt.
// Credential helpers and ssh-agent keep working.
func gitEnv() map[string]string {
	return map[string]string{
		"GIT_TERMINAL_PROMPT": "0",
		"GIT_ASKPASS":         "false",
		"SSH_ASKPASS":         "false",
		"SSH_ASKPASS_REQUIRE": "force",
		"GCM_INTERACTIVE":     "never",
	}
}

// remoteRefs is the parsed output of git ls-remote.
type remoteRefs struct {
	heads map[string]string // branch name -> commit
	tags  map[string]string // tag name -> commit (peeled for annotated tags)
	all   map[string]string // every ref listed -> its object
}

// parseLsRemote reads "SHA<TAB>REF" lines. An annotated tag is listed twice,
// as the tag object and as REF^{} (peeled, the commit); the commit wins,
// since a release is a commit and REVISION files name commits.
func parseLsRemote(out string) remoteRefs {
	r := remoteRefs{heads: map[string]string{}, tags: map[string]string{}, all: map[string]string{}}
	peeled := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		sha, ref, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if !ok || !isFullSHA(sha) {
			continue
		}
		r.all[ref] = sha
		switch {
		case strings.HasPrefix(ref, "refs/heads/"):
			r.heads[strings.TrimPrefix(ref, "refs/heads/")] = sha
		case strings.HasPrefix(ref, "refs/tags/") && strings.HasSuffix(ref, "^{}"):
			name := strings.TrimSuffix(strings.TrimPrefix(ref, "refs/tags/"), "^{}")
			r.tags[name] = sha
			peeled[name] = true
		case strings.HasPrefix(ref, "refs/tags/"):
			name := strings.TrimPrefix(ref, "refs/tags/")
			if !peeled[name] {
				r.tags[name] = sha
			}
		}
	}
	return r
}

// gitSource is what the git-based strategies read from variables.
type gitSource struct {
	url  string
	sel  selector
	tree string
}

// readGitSource reads and validates repo_url, the selector (branch, tag,
// revision, version) and repo_tree.
func readGitSource(c *tasks.Context) (gitSource, error) {
	var s gitSource
	var err error
	if s.url, err = reqString(c, "repo_url"); err != nil {
		return s, err
	}
	if err := validateRepoURL(s.url); err != nil {
		return s, err
	}
	url := s.url
	s, err = readGitSelection(c)
	s.url = url
	return s, err
}

// readGitSelection reads and validates what to deploy of the repository
// (the selector and repo_tree), leaving url empty.
func readGitSelection(c *tasks.Context) (gitSource, error) {
	var s gitSource
	var err error
	if s.sel, err = readSelector(c); err != nil {
		return s, err
	}
	if s.tree, err = optString(c, "repo_tree"); err != nil {
		return s, err
	}
	if s.tree != "" {
		if err := ValidateRef(KindRepoTree, s.tree); err != nil {
			return s, err
		}
	}
	return s, nil
}

// lsRemote runs git ls-remote with args (options and patterns around the
// URL) and returns its stdout.
func lsRemote(hc *tasks.HostContext, url string, opts []string, patterns ...string) (string, error) {
	args := append([]string{"git", "ls-remote"}, opts...)
	args = append(append(args, "--", url), patterns...)
	return hc.Capture(args, tasks.CommandOptions{Env: gitEnv(), Label: "list the repository's refs (git ls-remote)"})
}

// resolveGit turns src's selector into a commit with git ls-remote, on the
// control machine or (fallback) the primary host, and says which in a
// message. tool names the strategy in messages and errors.
func resolveGit(c *tasks.Context, tool string, src gitSource, fallback bool) (Revision, error) {
	sel := src.sel
	if sel.kind == KindRevision && isFullSHA(sel.value) {
		// Nothing to look up: a full sha is its own answer, and a commit
		// that no ref points at any more could not be listed anyway.
		// Update (or the copy strategy's fetch) checks that it exists.
		c.Info(fmt.Sprintf("%s: deploying revision %s of %s", tool, sel.value, src.url))
		return Revision{ID: sel.value, Branch: sel.value}, nil
	}
	if c.DryRun() {
		// A dry run runs nothing, not even ls-remote; what it would
		// resolve stands in for the commit.
		c.Info(fmt.Sprintf("%s: dry run: the commit of %s %s would be looked up in %s", tool, sel.kind, sel.value, src.url))
		return placeholderRevision("revision", sel.kind+" "+sel.value, sel.value), nil
	}
	var opts, patterns []string
	switch sel.kind {
	case KindBranch:
		opts, patterns = []string{"--heads"}, []string{"refs/heads/" + sel.value}
	case KindTag:
		// The peeled line of an annotated tag is listed only when asked
		// for by name.
		opts, patterns = []string{"--tags"}, []string{"refs/tags/" + sel.value, "refs/tags/" + sel.value + "^{}"}
	case KindVersion:
		opts = []string{"--tags"}
	case KindRevision:
		opts = []string{"--heads", "--tags"}
	}
	var out string
	where, err := firstReachable(c, tool, src.url, fallback, func(hc *tasks.HostContext) error {
		var err error
		out, err = lsRemote(hc, src.url, opts, patterns...)
		return err
	})
	if err != nil {
		return Revision{}, err
	}
	refs := parseLsRemote(out)
	// list fetches every branch or tag name, only to explain a miss.
	list := func(opt string) []string {
		var names []string
		_ = where.do(func(hc *tasks.HostContext) error {
			o, err := lsRemote(hc, src.url, []string{opt})
			r := parseLsRemote(o)
			m := r.heads
			if opt == "--tags" {
				m = r.tags
			}
			for n := range m {
				names = append(names, n)
			}
			return err
		})
		slices.Sort(names)
		return names
	}
	var rev Revision
	switch sel.kind {
	case KindBranch:
		sha, ok := refs.heads[sel.value]
		if !ok {
			return Revision{}, notFound(tool, "branch", sel.value, src.url, list("--heads"))
		}
		rev = Revision{ID: sha, Branch: sel.value}
	case KindTag:
		sha, ok := refs.tags[sel.value]
		if !ok {
			return Revision{}, notFound(tool, "tag", sel.value, src.url, list("--tags"))
		}
		rev = Revision{ID: sha, Branch: sel.value}
	case KindVersion:
		tag, err := pickVersion(sel.value, refs.tags)
		if err != nil {
			return Revision{}, fmt.Errorf("%s: %s: %w", tool, src.url, err)
		}
		rev = Revision{ID: refs.tags[tag], Branch: tag}
		c.Info(fmt.Sprintf("%s: version %s selects tag %s", tool, sel.value, tag))
	case KindRevision:
		sha, err := expandRevision(sel.value, refs)
		if err != nil {
			return Revision{}, fmt.Errorf("%s: %s: %w", tool, src.url, err)
		}
		rev = Revision{ID: sha, Branch: sel.value}
	}
	c.Info(fmt.Sprintf("%s: %s %s of %s is commit %s (resolved on %s)", tool, sel.kind, sel.value, src.url, rev.ID, where))
	return rev, nil
}

// notFound explains a missing branch or tag, suggesting the closest name.
func notFound(tool, kind, name, url string, have []string) error {
	plural := map[string]string{"branch": "branches", "tag": "tags"}[kind]
	msg := fmt.Sprintf("%s: %s %q not found in %s", tool, kind, name, url)
	if s := tasks.Suggest(name, have); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	}
	if len(have) == 0 {
		return fmt.Errorf("%s; the repository has no %s", msg, plural)
	}
	return fmt.Errorf("%s; %s: %s", msg, plural, listSome(have, 20))
}

// listSome joins up to n names, saying how many more there are.
func listSome(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s, … (%d more)", strings.Join(names[:n], ", "), len(names)-n)
}

// expandRevision finds the commit a short sha names among the branch and
// tag tips. A short sha of a commit no ref points at cannot be expanded
// without fetching the repository, so that is an error asking for all of
// it, rather than a REVISION file holding an abbreviation.
func expandRevision(short string, refs remoteRefs) (string, error) {
	var found []string
	for _, m := range []map[string]string{refs.heads, refs.tags} {
		for _, sha := range m {
			if strings.HasPrefix(sha, short) && !slices.Contains(found, sha) {
				found = append(found, sha)
			}
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("revision %s: no branch or tag points at a commit starting with it; give the full 40-digit sha", short)
	}
	slices.Sort(found)
	return "", fmt.Errorf("revision %s is ambiguous (%s); give more digits", short, strings.Join(found, ", "))
}

// pickVersion returns the tag with the highest version satisfying
// constraint, by davit's one rule for version constraints (semvertag.Pick,
// shared with load() of git recipes).
func pickVersion(constraint string, tags map[string]string) (string, error) {
	return semvertag.Pick(constraint, slices.Collect(maps.Keys(tags)))
}

// checkTree fails unless tree is a directory in commit rev of the
// repository the options' Within points at. (A "rev:path" spec cannot take
// a ^{tree} suffix: everything after the colon is the path.)
func checkTree(hc *tasks.HostContext, in tasks.CommandOptions, rev Revision, tree string) error {
	in.Label = "check repo_tree " + tree
	kind, err := hc.Capture([]string{"git", "cat-file", "-t", rev.ID + ":" + tree}, in)
	var ce *tasks.CommandError
	if errors.As(err, &ce) && ce.Err == nil {
		kind = "missing"
	} else if err != nil {
		return err
	}
	if kind != "tree" {
		return fmt.Errorf("repo_tree %q is not a directory in commit %s (%s)", tree, rev.ID, rev.Branch)
	}
	return nil
}
