package remoterecipe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// git runs the git binary for one source. Its environment is the
// process's (so ssh keys, ssh-agent, GIT_SSH_COMMAND and credential
// helpers work as for the user's own git) with prompts turned off: a run
// must fail rather than wait for a password nobody is there to type.
type git struct {
	env     []string
	timeout time.Duration
}

func (g git) run(ctx context.Context, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), g.env...),
		"GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=false", "SSH_ASKPASS=false", "SSH_ASKPASS_REQUIRE=force", "GCM_INTERACTIVE=never")
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("git %s: %w (timeout %s)", args[0], context.Cause(ctx), g.timeout)
		}
		return "", fmt.Errorf("git %s: %s", args[0], gitReason(stderr.String(), err))
	}
	return stdout.String(), nil
}

// gitReason is what git and its ssh said up to git's "fatal:" line (ssh's
// "Host key verification failed." comes before git's "fatal: Could not
// read from remote repository.", and git's advice after it), at most
// three lines; without a fatal line, the first line.
func gitReason(stderr string, err error) string {
	var said []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "hint:") {
			continue
		}
		said = append(said, l)
		if strings.HasPrefix(l, "fatal:") {
			return strings.Join(said[max(0, len(said)-3):], "; ")
		}
	}
	if len(said) > 0 {
		return said[0]
	}
	return err.Error()
}

// tags lists the repository's tags with their commits (the peeled commit
// of an annotated tag).
func (g git) tags(ctx context.Context, url string) (map[string]string, error) {
	out, err := g.run(ctx, "", "ls-remote", "--tags", "--", url)
	if err != nil {
		return nil, err
	}
	tags := map[string]string{}
	peeled := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		sha, ref, ok := strings.Cut(strings.TrimSpace(line), "\t")
		name, isTag := strings.CutPrefix(ref, "refs/tags/")
		if !ok || !isTag || !IsCommit(sha) {
			continue
		}
		if n, ok := strings.CutSuffix(name, "^{}"); ok {
			tags[n], peeled[n] = sha, true
		} else if !peeled[name] {
			tags[name] = sha
		}
	}
	return tags, nil
}

// cache holds checkouts: ROOT/KEY/COMMIT/ is the tree of COMMIT of the
// repository whose URL hashes to KEY. A checkout appears by one rename of
// a complete directory, so a reader sees all of it or none, and two
// processes filling the same one at once both succeed (the second rename
// loses, and that process uses the winner's, identical, copy).
type cache struct{ root string }

// DefaultCacheDir is $XDG_CACHE_HOME/davit/recipes (os.UserCacheDir).
func DefaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("recipe cache: %w", err)
	}
	return filepath.Join(dir, "davit", "recipes"), nil
}

func (c cache) repoDir(url string) string {
	sum := sha256.Sum256([]byte(url))
	base := strings.TrimSuffix(filepath.Base(strings.TrimRight(url, "/")), ".git")
	base = strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, base)
	return filepath.Join(c.root, base+"-"+hex.EncodeToString(sum[:8]))
}

// dir is where commit's checkout is, whether or not it is there yet.
func (c cache) dir(url, commit string) string { return filepath.Join(c.repoDir(url), commit) }

func (c cache) has(url, commit string) bool {
	fi, err := os.Stat(c.dir(url, commit))
	return err == nil && fi.IsDir()
}

// errMoved is a tag that points at another commit than expected.
type errMoved struct{ got string }

func (e *errMoved) Error() string { return "the tag points at commit " + e.got }

// fill fetches ref (a tag name or a full commit) of url into the cache
// and returns its commit. With want set, the fetched commit must be it
// (*errMoved otherwise), and a checkout already there is used as is.
func (c cache) fill(ctx context.Context, g git, url, tag, commit string) (string, error) {
	if commit != "" && c.has(url, commit) {
		return commit, nil
	}
	repo := c.repoDir(url)
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return "", fmt.Errorf("recipe cache: %w", err)
	}
	c.sweep(repo)
	tmp, err := os.MkdirTemp(repo, ".fetch-")
	if err != nil {
		return "", fmt.Errorf("recipe cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := g.run(ctx, tmp, "init", "-q"); err != nil {
		return "", err
	}
	target := "FETCH_HEAD"
	if tag != "" {
		_, err = g.run(ctx, tmp, "fetch", "-q", "--depth=1", "--no-tags", "--", url, "refs/tags/"+tag)
	} else {
		// Servers speaking git's protocol v2 (git 2.26+, the big hosts)
		// give any commit by id; older ones only the tips of refs, so
		// then fetch them all and look for it.
		if _, err = g.run(ctx, tmp, "fetch", "-q", "--depth=1", "--no-tags", "--", url, commit); err != nil {
			_, err = g.run(ctx, tmp, "fetch", "-q", "--no-tags", "--", url, "+refs/heads/*:refs/davit/heads/*", "+refs/tags/*:refs/davit/tags/*")
			target = commit
		}
	}
	if err != nil {
		return "", err
	}
	out, err := g.run(ctx, tmp, "rev-parse", "--verify", "--quiet", target+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("commit %s is not in the repository", commit)
	}
	got := strings.TrimSpace(out)
	if commit != "" && got != commit {
		return "", &errMoved{got: got}
	}
	if c.has(url, got) {
		return got, nil
	}
	if _, err := g.run(ctx, tmp, "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", got); err != nil {
		return "", err
	}
	if err := os.RemoveAll(filepath.Join(tmp, ".git")); err != nil {
		return "", fmt.Errorf("recipe cache: %w", err)
	}
	final := c.dir(url, got)
	if err := os.Rename(tmp, final); err != nil {
		if c.has(url, got) {
			// Another process filled it first: its copy is the same commit.
			return got, nil
		}
		return "", fmt.Errorf("recipe cache: %w", err)
	}
	return got, nil
}

// abandoned is how old a temporary fetch directory must be to be
// another davit's leftover (killed half-way) rather than a fetch in
// progress: far longer than the timeouts of a fetch's git commands.
const abandoned = time.Hour

// sweep removes temporary fetch directories davit processes killed
// half-way left behind in repo.
func (c cache) sweep(repo string) {
	entries, _ := os.ReadDir(repo)
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), ".fetch-") {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > abandoned {
			os.RemoveAll(filepath.Join(repo, e.Name()))
		}
	}
}

// readFile reads a file of a checkout; the path cannot leave it, not even
// by a symbolic link.
func (c cache) readFile(url, commit, file string) ([]byte, error) {
	root, err := os.OpenRoot(c.dir(url, commit))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	data, err := root.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return data, err
}

func checksum(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}
