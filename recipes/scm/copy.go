package scm

// The copy strategy is for hosts that cannot reach the repository (or when
// there is none): the control machine builds ONE archive of the release
// and uploads it to every host, which extracts it. The archive comes from
// a local directory (copy_dir) or, when copy_dir is unset, from a git
// revision of repo_url, fetched and archived on the control machine.
//
// Variables (read when each method runs, so command-line overrides count):
//
//	copy_dir      unset   a local directory to deploy (a build output, the
//	                      project itself). A relative path is relative to
//	                      the Deployfile's directory, where run_locally
//	                      commands start. Revision.ID is a content digest
//	                      (the first 16 hex digits of a sha256 over every
//	                      entry's path, type, permissions, link target and
//	                      content: not times, so a touch or a fresh checkout
//	                      does not change it); Revision.Branch is copy_dir.
//	copy_exclude  []      patterns of paths to leave out, for either source:
//	                      a name glob without '/' matches at any depth
//	                      (".git", "*.log"), a pattern with '/' matches the
//	                      path from the release root ("tmp/cache"), a
//	                      trailing '/' matches directories only ("log/").
//	                      On the command line: copy_exclude=.git,log
//	repo_url, branch, tag, revision, version, repo_tree
//	                      as for the git strategy, used when copy_dir is
//	                      unset; the revision is resolved on the control
//	                      machine only. Revision.ID is the commit sha.
//
// Deploying the project directory itself, exclude at least ".git" and
// "log" (davit writes its run log to log/ while archiving it).
//
// The control machine needs git (for a git source); the hosts need tar
// and gzip. Each host receives the archive once, streamed into
// `tar -x -z -f - -C RELEASE` (one command, no temporary file on the
// host); Close removes the control machine's copy.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/tasks"
)

// copyStrategy is the "copy" strategy. After Resolve it holds the one
// archive every host receives; Close removes it.
type copyStrategy struct {
	mu       sync.Mutex
	tmp      string // temporary directory on the control machine
	archive  string // the .tar.gz in tmp
	resolved *Revision
	// revTime is the commit's time for a git source; zero for copy_dir,
	// whose files have no one time.
	revTime time.Time
}

func (s *copyStrategy) Name() string { return "copy" }

// copyIDPattern is what a copy Revision.ID looks like (a digest prefix or a
// commit sha); the upload's file name is built from it.
var copyIDPattern = regexp.MustCompile(`^[0-9a-f]{12,64}$`)

// copySource is what the copy strategy reads from variables.
type copySource struct {
	dir     string // copy_dir, or "" for a git source
	exclude *Excluder
	git     gitSource
}

// readCopyOptions reads and validates copy_dir and copy_exclude.
func readCopyOptions(c *tasks.Context) (copySource, error) {
	var s copySource
	var err error
	if s.dir, err = optString(c, "copy_dir"); err != nil {
		return s, err
	}
	for _, r := range s.dir {
		if unicode.IsControl(r) {
			return s, fmt.Errorf("copy_dir %q: contains a control character (%U)", s.dir, r)
		}
	}
	if strings.HasPrefix(s.dir, "-") {
		// `cd -` is the previous directory, `cd -x` an option.
		return s, fmt.Errorf("copy_dir %q: starts with '-' (write ./%s)", s.dir, s.dir)
	}
	patterns, err := optStrings(c, "copy_exclude")
	if err != nil {
		return s, err
	}
	if s.exclude, err = NewExcluder(patterns); err != nil {
		return s, err
	}
	return s, nil
}

func readCopySource(c *tasks.Context) (copySource, error) {
	s, err := readCopyOptions(c)
	if err != nil {
		return s, err
	}
	if s.dir == "" {
		if s.git, err = readGitSource(c); err != nil {
			return s, fmt.Errorf("%w (copy_dir is unset, so the copy strategy archives a git revision)", err)
		}
	}
	return s, nil
}

// Check reports invalid variables and a host without tar or gzip. What
// the control machine needs (copy_dir, git access) is reported by Resolve,
// once, rather than by every host's check.
func (s *copyStrategy) Check(hc *tasks.HostContext, l deploy.Layout) ([]string, error) {
	var problems []string
	if _, err := readCopySource(hc.Context); err != nil {
		problems = append(problems, err.Error())
	}
	ok, err := hc.Test([]string{copyToolsScript}, tasks.CommandOptions{Label: "check tar and gzip"})
	if err != nil {
		return nil, fmt.Errorf("copy check on %s: %w", hc.Host, err)
	}
	if !ok {
		problems = append(problems, "tar or gzip is not installed (both are needed to unpack the release archive)")
	}
	return problems, nil
}

// Resolve builds the archive on the control machine, once per strategy
// value, and returns its revision.
func (s *copyStrategy) Resolve(c *tasks.Context) (Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resolved != nil {
		return *s.resolved, nil
	}
	src, err := readCopySource(c)
	if err != nil {
		return Revision{}, fmt.Errorf("copy: %w", err)
	}
	if c.DryRun() {
		// A dry run builds no archive (nor a temporary directory for it).
		rev, err := s.dryRunRevision(c, src)
		if err != nil {
			return Revision{}, err
		}
		s.resolved = &rev
		return rev, nil
	}
	tmp, err := os.MkdirTemp("", "davit-copy-")
	if err != nil {
		return Revision{}, fmt.Errorf("copy: %w", err)
	}
	archive := filepath.Join(tmp, "release.tar.gz")
	var rev Revision
	if src.dir != "" {
		rev, err = s.fromDir(c, src, archive)
	} else {
		rev, err = s.fromGit(c, src, tmp, archive)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return Revision{}, err
	}
	s.tmp, s.archive, s.resolved = tmp, archive, &rev
	return rev, nil
}

// dryRunRevision is the revision a dry run deploys: a placeholder for
// the content of copy_dir, or the git revision's (resolveGit's dry run).
func (s *copyStrategy) dryRunRevision(c *tasks.Context, src copySource) (Revision, error) {
	if src.dir == "" {
		return resolveGit(c, "copy", src.git, false)
	}
	dir := filepath.Clean(src.dir)
	c.Info(fmt.Sprintf("copy: dry run: copy_dir %s would be archived here and uploaded to each host", dir))
	rev := placeholderRevision("content", "directory "+dir, dir)
	rev.Source = "directory " + dir
	return rev, nil
}

// fromDir archives copy_dir. The directory is located by a run_locally
// command (`cd DIR && pwd -P`), so a relative copy_dir means the same as
// in the Deployfile's own run_locally commands and a missing one fails
// with the shell's message.
func (s *copyStrategy) fromDir(c *tasks.Context, src copySource, archive string) (Revision, error) {
	var abs string
	err := c.RunLocally(func(hc *tasks.HostContext) error {
		var err error
		abs, err = hc.Capture([]string{"pwd", "-P"}, tasks.CommandOptions{Within: src.dir, Label: "locate copy_dir " + src.dir})
		return err
	})
	if err != nil {
		return Revision{}, fmt.Errorf("copy: copy_dir %q: %w", src.dir, err)
	}
	f, err := os.Create(archive)
	if err != nil {
		return Revision{}, fmt.Errorf("copy: %w", err)
	}
	defer f.Close()
	a := newArchiveWriter(f)
	skipped, err := archiveDir(a, abs, src.exclude)
	if err != nil {
		return Revision{}, fmt.Errorf("copy: archive copy_dir %s: %w", abs, err)
	}
	digest, err := a.close()
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return Revision{}, fmt.Errorf("copy: write %s: %w", archive, err)
	}
	if len(skipped) > 0 {
		c.Warn(fmt.Sprintf("copy: left out %d special files (sockets, devices, pipes): %s", len(skipped), listSome(skipped, 10)))
	}
	dir := filepath.Clean(src.dir)
	rev := Revision{ID: digest[:16], Branch: dir, Source: "directory " + dir}
	c.Info(fmt.Sprintf("copy: archived %s (%d files, %s) as %s", abs, a.files, sizeString(archive), rev.ID))
	return rev, nil
}

// fromGit resolves the revision on the control machine and archives it
// from a temporary bare repository there. It first fetches just that
// commit (depth 1, which servers speaking git protocol v2 allow); a server
// that refuses gets a full fetch of branches and tags instead.
func (s *copyStrategy) fromGit(c *tasks.Context, src copySource, tmp, archive string) (Revision, error) {
	rev, err := resolveGit(c, "copy", src.git, false)
	if err != nil {
		return Revision{}, err
	}
	bare := filepath.Join(tmp, "repo.git")
	gitTar := filepath.Join(tmp, "git.tar")
	url, tree := src.git.url, src.git.tree
	err = c.RunLocally(func(hc *tasks.HostContext) error {
		if err := hc.Execute([]string{"git", "init", "--bare", "--quiet", bare}, tasks.CommandOptions{Env: gitEnv(), Label: "make a scratch repository"}); err != nil {
			return err
		}
		in := func(label string) tasks.CommandOptions {
			return tasks.CommandOptions{Env: gitEnv(), Within: bare, Label: label}
		}
		if err := hc.Execute([]string{"git", "fetch", "--quiet", "--depth=1", "--", url, rev.ID}, in("fetch commit "+shortSHA(rev.ID))); err != nil {
			c.Warn(fmt.Sprintf("copy: %s refused a fetch of commit %s alone (%s); fetching all branches and tags", url, rev.ID, reason(err)))
			if err := hc.Execute([]string{"git", "fetch", "--quiet", "--", url, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"}, in("fetch every branch and tag")); err != nil {
				return err
			}
		}
		ok, err := hc.Test([]string{"git", "cat-file", "-e", rev.ID + "^{commit}"}, in("check commit "+shortSHA(rev.ID)))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("commit %s (%s) is not in %s", rev.ID, rev.Branch, url)
		}
		if tree != "" {
			if err := checkTree(hc, in(""), rev, tree); err != nil {
				return err
			}
		}
		ct, err := hc.Capture([]string{"git", "log", "-1", "--format=%ct", rev.ID}, in("read the commit's time"))
		if err != nil {
			return err
		}
		if sec, err := strconv.ParseInt(strings.TrimSpace(ct), 10, 64); err == nil {
			s.revTime = time.Unix(sec, 0).UTC()
		}
		args := []string{"git", "archive", "--format=tar", "-o", gitTar, rev.ID}
		if tree != "" {
			args = append(args, tree)
		}
		return hc.Execute(args, in("export commit "+shortSHA(rev.ID)))
	})
	if err != nil {
		return Revision{}, fmt.Errorf("copy: archive %s of %s: %w", rev.ID, url, err)
	}
	in, err := os.Open(gitTar)
	if err != nil {
		return Revision{}, fmt.Errorf("copy: %w", err)
	}
	defer in.Close()
	out, err := os.Create(archive)
	if err != nil {
		return Revision{}, fmt.Errorf("copy: %w", err)
	}
	defer out.Close()
	a := newArchiveWriter(out)
	if err := copyTar(a, in, tree, src.exclude); err != nil {
		return Revision{}, fmt.Errorf("copy: %w", err)
	}
	if _, err = a.close(); err == nil {
		err = out.Close()
	}
	if err != nil {
		return Revision{}, fmt.Errorf("copy: write %s: %w", archive, err)
	}
	// Only the archive is needed from here on.
	in.Close()
	if err := errors.Join(os.RemoveAll(bare), os.Remove(gitTar)); err != nil {
		c.Warn(fmt.Sprintf("copy: could not remove temporary files: %v", err))
	}
	c.Info(fmt.Sprintf("copy: archived %s of %s (%d files, %s)", rev.ID, url, a.files, sizeString(archive)))
	return rev, nil
}

// sizeString is the archive's size for a message.
func sizeString(p string) string {
	st, err := os.Stat(p)
	if err != nil {
		return "size unknown"
	}
	n := float64(st.Size())
	for _, unit := range []string{"B", "KiB", "MiB", "GiB"} {
		if n < 1024 || unit == "GiB" {
			if unit == "B" {
				return fmt.Sprintf("%d B", st.Size())
			}
			return fmt.Sprintf("%.1f %s", n, unit)
		}
		n /= 1024
	}
	return ""
}

// Update does nothing: the archive goes straight into the release.
func (s *copyStrategy) Update(hc *tasks.HostContext, l deploy.Layout, rev Revision) error {
	return nil
}

// Release streams the archive into tar on the host, extracting it into
// dir.
func (s *copyStrategy) Release(hc *tasks.HostContext, l deploy.Layout, rev Revision, dir string) error {
	fail := func(err error) error { return fmt.Errorf("copy release on %s: %w", hc.Host, err) }
	if err := checkReleaseDir(dir); err != nil {
		return fail(err)
	}
	unpack := func(in io.Reader) error {
		err := hc.Execute([]string{"tar", "-x", "-z", "-f", "-", "-C", dir}, tasks.CommandOptions{
			Stdin: in,
			Label: "upload and unpack release archive " + shortID(rev.ID),
		})
		if err != nil {
			return fail(err)
		}
		return nil
	}
	if rev.Placeholder {
		// A dry run built no archive: the command is all it shows.
		return unpack(strings.NewReader(""))
	}
	s.mu.Lock()
	archive, resolved := s.archive, s.resolved
	s.mu.Unlock()
	switch {
	case resolved == nil || archive == "":
		return fail(errors.New("no archive: Resolve has not run (or Close already removed it)"))
	case resolved.ID != rev.ID:
		return fail(fmt.Errorf("asked for revision %s, but the archive holds %s", rev.ID, resolved.ID))
	case !copyIDPattern.MatchString(rev.ID):
		return fail(fmt.Errorf("revision id %q is not a digest or commit sha", rev.ID))
	}
	// The archive streams into tar on the host: one command, one transfer,
	// and no temporary file to clean up if the connection drops.
	f, err := os.Open(archive)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	return unpack(f)
}

// shortID is a revision id cut for a label: a sha or digest to 12 digits.
func shortID(id string) string {
	if len(id) > 12 && copyIDPattern.MatchString(id) {
		return id[:12]
	}
	return id
}

// RevisionTime is the commit's time for a git source (read from the
// control machine's fetch), and unknown for copy_dir: the recipe then
// writes the release's time.
func (s *copyStrategy) RevisionTime(c *tasks.Context, l deploy.Layout, rev Revision) (time.Time, []string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resolved == nil || s.resolved.ID != rev.ID {
		return time.Time{}, nil, nil
	}
	return s.revTime, nil, nil
}

// Close removes the control machine's archive. It may be called more than
// once.
func (s *copyStrategy) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tmp := s.tmp
	s.tmp, s.archive, s.resolved, s.revTime = "", "", nil, time.Time{}
	if tmp == "" {
		return nil
	}
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("copy: remove %s: %w", tmp, err)
	}
	return nil
}
