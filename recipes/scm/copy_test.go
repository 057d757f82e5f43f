package scm

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/tasks"
)

// deployCopy runs Update and Release of rev on every host of e into
// release id, each host under base/<host>.
func deployCopy(t *testing.T, e *env, s Strategy, rev Revision, base, id string) error {
	t.Helper()
	return onEach(t, e, base, func(hc *tasks.HostContext, l deploy.Layout) error {
		if err := s.Update(hc, l, rev); err != nil {
			return err
		}
		if err := os.MkdirAll(l.Release(id), 0o755); err != nil {
			return err
		}
		return s.Release(hc, l, rev, l.Release(id))
	})
}

// The copy strategy archives a local directory once, uploads it once per
// host, and every host's release equals the source minus copy_exclude.
func TestCopyFromDir(t *testing.T) {
	e := newEnv(t, localHosts("app1", "app2"), nil)
	site := filepath.Join(e.project, "site")
	writeFiles(t, site, map[string]string{
		"index.html":         "<h1>copy</h1>\n",
		"css/site.css":       "body{}\n",
		"bin/run":            "#!/bin/sh\n",
		".git/HEAD":          "ref: refs/heads/main\n",
		"debug.log":          "noise\n",
		"deep/trace.log":     "noise\n",
		"tmp/cache/blob":     "cached\n",
		"tmp/keep":           "kept\n",
		"name with space.md": "spaces survive\n",
	})
	if err := os.Chmod(filepath.Join(site, "bin/run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("index.html", filepath.Join(site, "home.html")); err != nil {
		t.Fatal(err)
	}
	// Relative to the Deployfile's directory, where run_locally starts.
	e.set("copy_dir", "site")
	e.set("copy_exclude", []any{".git", "*.log", "tmp/cache"})

	s, _ := New("copy")
	rev, err := s.Resolve(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if len(rev.ID) != 16 || !copyIDPattern.MatchString(rev.ID) || rev.Branch != "site" {
		t.Errorf("Resolve = %+v", rev)
	}
	cs := s.(*copyStrategy)
	tmp := cs.tmp
	if _, err := os.Stat(cs.archive); err != nil {
		t.Fatalf("no archive after Resolve: %v", err)
	}
	// Once: a second Resolve neither rebuilds nor changes anything.
	if again, err := s.Resolve(e.ctx()); err != nil || again != rev || cs.tmp != tmp {
		t.Errorf("second Resolve = %+v, %v", again, err)
	}

	base := t.TempDir()
	if err := deployCopy(t, e, s, rev, base, "1"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"bin/", "bin/run: #!/bin/sh\n (x)", "css/", "css/site.css: body{}\n", "deep/",
		"home.html -> index.html", "index.html: <h1>copy</h1>\n",
		"name with space.md: spaces survive\n", "tmp/", "tmp/keep: kept\n",
	}
	for _, h := range []string{"app1", "app2"} {
		if got := tree(t, filepath.Join(base, h, "releases", "1")); !slices.Equal(got, want) {
			t.Errorf("%s release:\n got %q\nwant %q", h, got, want)
		}
		// One transfer per host: the archive streams into tar.
		_, uploads := e.host(h).recorded()
		if len(uploads) != 1 || !strings.Contains(uploads[0], "tar -x -z -f - -C") {
			t.Errorf("%s transfers = %q, want the archive streamed once into tar", h, uploads)
		}
		if left, _ := filepath.Glob(filepath.Join(base, h, ".davit", "*")); len(left) != 0 {
			t.Errorf("%s: upload not removed: %q", h, left)
		}
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("temporary directory %s still there after Close (%v)", tmp, err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// After Close there is nothing to release.
	if err := deployCopy(t, e, s, rev, base, "2"); err == nil || !strings.Contains(err.Error(), "no archive") {
		t.Errorf("Release after Close: %v", err)
	}

	// The id is a content digest: a touch keeps it, an edit changes it.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(site, "index.html"), later, later); err != nil {
		t.Fatal(err)
	}
	resolve := func() Revision {
		t.Helper()
		s, _ := New("copy")
		defer s.Close()
		r, err := s.Resolve(e.ctx())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := resolve(); r.ID != rev.ID {
		t.Errorf("touch changed the id: %s -> %s", rev.ID, r.ID)
	}
	writeFiles(t, site, map[string]string{"debug.log": "excluded, so no change\n"})
	if r := resolve(); r.ID != rev.ID {
		t.Errorf("an excluded file changed the id: %s -> %s", rev.ID, r.ID)
	}
	writeFiles(t, site, map[string]string{"index.html": "<h1>edited</h1>\n"})
	if r := resolve(); r.ID == rev.ID {
		t.Errorf("an edit kept the id %s", r.ID)
	}
}

func TestCopyDirErrors(t *testing.T) {
	e := newEnv(t, localHosts("app1"), nil)
	e.set("copy_dir", "missing")
	s, _ := New("copy")
	if _, err := s.Resolve(e.ctx()); err == nil || !strings.Contains(err.Error(), `copy: copy_dir "missing"`) {
		t.Errorf("missing copy_dir: %v", err)
	}
	e.set("copy_dir", ".")
	e.set("copy_exclude", "[oops")
	if _, err := s.Resolve(e.ctx()); err == nil || !strings.Contains(err.Error(), `copy_exclude pattern "[oops"`) {
		t.Errorf("bad pattern: %v", err)
	}
	// Release before Resolve.
	err := onEach(t, e, t.TempDir(), func(hc *tasks.HostContext, l deploy.Layout) error {
		return s.Release(hc, l, Revision{ID: strings.Repeat("a", 16)}, l.Release("1"))
	})
	if err == nil || !strings.Contains(err.Error(), "copy release on app1: no archive") {
		t.Errorf("Release before Resolve: %v", err)
	}
}

// Without copy_dir, the copy strategy archives a git revision on the
// control machine: here a tag's subtree, with an exclusion.
func TestCopyFromGit(t *testing.T) {
	repo := newTestRepo(t)
	e := newEnv(t, localHosts("app1", "app2"), nil)
	e.set("repo_url", repo.url)
	e.set("tag", "v1.4.0")
	e.set("repo_tree", "app")
	e.ex.Vars.Override("copy_exclude", "worker/")
	s, _ := New("copy")
	defer s.Close()
	rev, err := s.Resolve(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if want := (Revision{ID: repo.shas["c2"], Branch: "v1.4.0"}); rev != want {
		t.Errorf("Resolve = %+v, want %+v", rev, want)
	}
	// Only the archive stays on the control machine.
	cs := s.(*copyStrategy)
	if left, _ := filepath.Glob(filepath.Join(cs.tmp, "*")); !slices.Equal(left, []string{cs.archive}) {
		t.Errorf("temporary files: %q", left)
	}
	base := t.TempDir()
	if err := deployCopy(t, e, s, rev, base, "1"); err != nil {
		t.Fatal(err)
	}
	want := []string{"web/", "web/index.html: <h1>hi</h1>\n", "web/sub/", "web/sub/page.txt: page\n"}
	for _, h := range []string{"app1", "app2"} {
		if got := tree(t, filepath.Join(base, h, "releases", "1")); !slices.Equal(got, want) {
			t.Errorf("%s release:\n got %q\nwant %q", h, got, want)
		}
		if _, uploads := e.host(h).recorded(); len(uploads) != 1 {
			t.Errorf("%s: %d uploads, want 1", h, len(uploads))
		}
		// The hosts never ran git: the point of the copy strategy.
		lines, _ := e.host(h).recorded()
		for _, l := range lines {
			if strings.Contains(l, "git ") {
				t.Errorf("%s ran git: %q", h, l)
			}
		}
	}
	// Resolved on the control machine only (no fallback to a host).
	mustContain(t, "messages", strings.Join(e.rec.messages(), "\n"), "resolved on the control machine")
}

// A repository the control machine cannot reach is an error for the copy
// strategy: asking a host would not help build the archive here.
func TestCopyFromGitNoFallback(t *testing.T) {
	e := newEnv(t, localHosts("app1"), nil)
	e.set("repo_url", "file:///nonexistent/repo.git")
	s, _ := New("copy")
	_, err := s.Resolve(e.ctx())
	if err == nil || !strings.Contains(err.Error(), "copy: query file:///nonexistent/repo.git on the control machine") {
		t.Errorf("Resolve = %v", err)
	}
	if b := e.host("app1"); b != nil {
		t.Errorf("a host was asked: %v", b.lines)
	}
}

func TestCopyCheck(t *testing.T) {
	e := newEnv(t, localHosts("app1"), nil)
	e.set("copy_dir", ".")
	e.set("copy_exclude", []any{"ok", 3})
	s, _ := New("copy")
	problems := checkProblems(t, e, s)
	if len(problems) != 1 || !strings.Contains(problems[0], "copy_exclude: element 1 is int") {
		t.Errorf("problems = %q", problems)
	}
}
