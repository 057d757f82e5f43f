// Package recipetest makes real git repositories of recipes for tests:
// commits of files, tags (lightweight or moved by force), all with the
// git binary.
package recipetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Repo is a git repository with a work tree, in a test's temporary
// directory.
type Repo struct {
	Dir string
	t   testing.TB
}

// New makes an empty repository at dir (created).
func New(t testing.TB, dir string) *Repo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git binary")
	}
	r := &Repo{Dir: dir, t: t}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.Git("init", "-q", "-b", "main")
	return r
}

// URL is the repository as a git+file:// source.
func (r *Repo) URL() string { return "git+file://" + r.Dir }

// Git runs git in the repository and returns its output; a failure ends
// the test.
func (r *Repo) Git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=Recipe Test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
	cmd.Dir = r.Dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Commit writes files (path → content; "" removes the file) and commits
// them, returning the commit.
func (r *Repo) Commit(files map[string]string) string {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.Dir, name)
		if content == "" {
			r.Git("rm", "-q", "--", name)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
		r.Git("add", "--", name)
	}
	r.Git("commit", "-q", "--allow-empty", "-m", "recipes")
	return r.Git("rev-parse", "HEAD")
}

// Tag tags HEAD, moving the tag by force if it exists; annotated makes
// an annotated tag (ls-remote lists its peeled commit).
func (r *Repo) Tag(name string, annotated bool) {
	r.t.Helper()
	if annotated {
		r.Git("tag", "-f", "-a", "-m", "release "+name, name)
		return
	}
	r.Git("tag", "-f", name)
}

// Release commits files and tags the commit with each tag (lightweight).
func (r *Repo) Release(files map[string]string, tags ...string) string {
	r.t.Helper()
	c := r.Commit(files)
	for _, tag := range tags {
		r.Tag(tag, false)
	}
	return c
}
