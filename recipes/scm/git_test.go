package scm

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/tasks"
)

func TestGitResolve(t *testing.T) {
	repo := newTestRepo(t)
	tests := []struct {
		name     string
		vars     map[string]any
		override map[string]string
		wantID   string // label in repo.shas
		branch   string
	}{
		{"default branch", nil, nil, "c5", "main"},
		{"branch", map[string]any{"branch": "feature"}, nil, "f1", "feature"},
		{"lightweight tag", map[string]any{"tag": "v1.3.0"}, nil, "c1", "v1.3.0"},
		{"annotated tag peeled", map[string]any{"tag": "v1.4.0"}, nil, "c2", "v1.4.0"},
		{"version caret", map[string]any{"version": "^1.4"}, nil, "c3", "v1.4.2"},
		{"version tilde", map[string]any{"version": "~1.3"}, nil, "c1", "v1.3.0"},
		{"version range", map[string]any{"version": ">=1.2, <2"}, nil, "c3", "v1.4.2"},
		{"prerelease only when asked", map[string]any{"version": "^1.5.0-rc.0"}, nil, "c4", "v1.5.0-rc.1"},
		{"highest", map[string]any{"version": "*"}, nil, "c5", "v2.0.0"},
		{"full revision", map[string]any{"revision": "SHA:c2"}, nil, "c2", "SHA:c2"},
		{"short revision of a tip", map[string]any{"revision": "SHORT:f1"}, nil, "f1", "SHORT:f1"},
		{"branch given but tag wins", map[string]any{"branch": "feature", "tag": "v1.3.0"}, nil, "c1", "v1.3.0"},
		{"command line wins over version", map[string]any{"version": "^1.4"}, map[string]string{"branch": "feature"}, "f1", "feature"},
	}
	expand := func(v string) string {
		if l, ok := strings.CutPrefix(v, "SHA:"); ok {
			return repo.shas[l]
		}
		if l, ok := strings.CutPrefix(v, "SHORT:"); ok {
			return repo.shas[l][:7]
		}
		return v
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, localHosts("app1"), nil)
			e.set("repo_url", repo.url)
			for k, v := range tt.vars {
				if s, ok := v.(string); ok {
					v = expand(s)
				}
				e.set(k, v)
			}
			for k, v := range tt.override {
				e.ex.Vars.Override(k, v)
			}
			s, _ := New("git")
			rev, err := s.Resolve(e.ctx())
			if err != nil {
				t.Fatal(err)
			}
			want := Revision{ID: repo.shas[tt.wantID], Branch: expand(tt.branch)}
			if rev != want {
				t.Errorf("Resolve = %+v, want %+v", rev, want)
			}
			if msgs := strings.Join(e.rec.messages(), "\n"); !strings.Contains(msgs, "resolved on the control machine") && tt.vars["revision"] == nil {
				t.Errorf("messages do not say where the revision was resolved:\n%s", msgs)
			}
			// Resolved once: a second call answers without commands.
			n := len(e.rec.commands())
			if again, err := s.Resolve(e.ctx()); err != nil || again != rev || len(e.rec.commands()) != n {
				t.Errorf("second Resolve = %+v, %v after %d more commands", again, err, len(e.rec.commands())-n)
			}
			// Nothing ran on the hosts: resolution is the control machine's.
			if b := e.host("app1"); b != nil {
				t.Errorf("Resolve ran commands on app1: %v", b.lines)
			}
		})
	}
}

func TestGitResolveErrors(t *testing.T) {
	repo := newTestRepo(t)
	tests := []struct {
		name string
		vars map[string]any
		want []string
	}{
		{"no such version", map[string]any{"version": "^3"}, []string{`version "^3": no tag satisfies it`, "v2.0.0, v1.5.0-rc.1, v1.4.2, v1.4.0, v1.3.0"}},
		{"no such branch", map[string]any{"branch": "mian"}, []string{`branch "mian" not found in ` + repo.url, "did you mean main?", "branches: feature, main"}},
		{"no such tag", map[string]any{"tag": "v1.4.1"}, []string{`tag "v1.4.1" not found`, "did you mean v1.4.0?"}},
		{"unknown short revision", map[string]any{"revision": "0000000"}, []string{"no branch or tag points at a commit starting with it"}},
		{"two selectors", map[string]any{"tag": "v1.3.0", "version": "^1"}, []string{"tag and version are both set"}},
		{"no repo_url", map[string]any{"repo_url": nil}, []string{"repo_url is not set"}},
		{"option as url", map[string]any{"repo_url": "--upload-pack=touch /tmp/x"}, []string{"starts with '-'"}},
		{"ext transport", map[string]any{"repo_url": "ext::sh -c touch% /tmp/pwned"}, []string{"transport runs commands"}},
		{"bad constraint", map[string]any{"version": "one point four"}, []string{`version "one point four": not a semver constraint`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			e.set("repo_url", repo.url)
			for k, v := range tt.vars {
				e.set(k, v)
			}
			s, _ := New("git")
			_, err := s.Resolve(e.ctx())
			if err == nil {
				t.Fatal("Resolve succeeded")
			}
			mustContain(t, "error", err.Error(), tt.want...)
		})
	}
}

// A branch name with shell metacharacters is refused before any command
// runs anywhere: not on the control machine, not on a host.
func TestGitRejectsMetacharactersBeforeRunning(t *testing.T) {
	e := newEnv(t, localHosts("app1"), nil)
	e.set("repo_url", "file:///nonexistent")
	e.set("branch", "main;rm -rf /")
	s, _ := New("git")
	_, err := s.Resolve(e.ctx())
	if err == nil || !strings.Contains(err.Error(), `branch "main;rm -rf /": contains ';' (not allowed in a branch name)`) {
		t.Fatalf("Resolve error = %v", err)
	}
	e.set("branch", "main")
	e.set("repo_tree", "app/$(reboot)")
	err = onEach(t, e, t.TempDir(), func(hc *tasks.HostContext, l deploy.Layout) error {
		return s.Release(hc, l, Revision{ID: strings.Repeat("a", 40), Branch: "main"}, l.Release("1"))
	})
	if err == nil || !strings.Contains(err.Error(), `repo_tree "app/$(reboot)": contains '$'`) {
		t.Fatalf("Release error = %v", err)
	}
	if cmds := e.rec.commands(); len(cmds) != 0 {
		t.Errorf("commands ran: %q", cmds)
	}
	if lines := e.allLines(); len(lines) != 0 {
		t.Errorf("backends ran: %q", lines)
	}
}

// Update clones the mirror the first time and fetches with prune later;
// Release exports exactly the commit's files.
func TestGitUpdateRelease(t *testing.T) {
	repo := newTestRepo(t)
	e := newEnv(t, localHosts("app1"), nil)
	e.set("repo_url", repo.url)
	base := t.TempDir()
	layout := deploy.Layout{DeployTo: filepath.Join(base, "app1")}

	deploy1 := func(s Strategy, rev Revision, id string) []string {
		t.Helper()
		err := onEach(t, e, base, func(hc *tasks.HostContext, l deploy.Layout) error {
			if err := s.Update(hc, l, rev); err != nil {
				return err
			}
			if err := os.MkdirAll(l.Release(id), 0o755); err != nil {
				return err
			}
			return s.Release(hc, l, rev, l.Release(id))
		})
		if err != nil {
			t.Fatal(err)
		}
		return tree(t, layout.Release(id))
	}

	s1, _ := New("git")
	rev1, err := s1.Resolve(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	got := deploy1(s1, rev1, "1")
	if want := archiveTree(t, repo.dir, repo.shas["c5"], ""); !slices.Equal(got, want) {
		t.Errorf("release 1:\n got %q\nwant %q", got, want)
	}
	lines, _ := e.host("app1").recorded()
	mustContain(t, "first deploy", strings.Join(lines, "\n"), gitCloneScript, "step0 "+layout.Repo()+" "+repo.url)
	// Every git command is told never to prompt.
	for _, l := range lines {
		if strings.Contains(l, "git ") && !strings.Contains(l, "GIT_ASKPASS=false GIT_TERMINAL_PROMPT=0 SSH_ASKPASS=false SSH_ASKPASS_REQUIRE=force") {
			t.Errorf("git command without the no-prompt environment: %q", l)
		}
	}
	// The mirror has the feature branch.
	run(t, layout.Repo(), "git", "rev-parse", "--verify", "refs/heads/feature")

	// A new commit on main, and the feature branch deleted upstream.
	writeFiles(t, repo.dir, map[string]string{"NEW": "new\n"})
	run(t, repo.dir, "git", "add", "-A")
	run(t, repo.dir, "git", "commit", "--quiet", "-m", "c6")
	c6 := run(t, repo.dir, "git", "rev-parse", "HEAD")
	run(t, repo.dir, "git", "branch", "--quiet", "-D", "feature")

	s2, _ := New("git")
	rev2, err := s2.Resolve(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if rev2.ID != c6 {
		t.Fatalf("second Resolve = %s, want %s", rev2.ID, c6)
	}
	got = deploy1(s2, rev2, "2")
	if !slices.Contains(got, "NEW: new\n") {
		t.Errorf("release 2 lacks the new file: %q", got)
	}
	lines, _ = e.host("app1").recorded()
	all := strings.Join(lines, "\n")
	mustContain(t, "second deploy", all, gitFetchScript, "step0 "+layout.Repo()+" "+repo.url)
	if strings.Count(all, "git clone") != 1 {
		t.Errorf("cloned more than once:\n%s", all)
	}
	if out := run(t, layout.Repo(), "git", "branch", "--list", "feature"); out != "" {
		t.Errorf("deleted branch not pruned from the mirror: %q", out)
	}
	// Release 1 is untouched by release 2.
	if !slices.Contains(tree(t, layout.Release("1")), "README: v2.0.0\n") {
		t.Errorf("release 1 changed")
	}
}

// repo_tree exports one directory's contents at the release root.
func TestGitRepoTree(t *testing.T) {
	repo := newTestRepo(t)
	e := newEnv(t, localHosts("app1"), nil)
	e.set("repo_url", repo.url)
	e.set("tag", "v1.4.0")
	e.set("repo_tree", "app/web")
	s, _ := New("git")
	rev, err := s.Resolve(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	err = onEach(t, e, base, func(hc *tasks.HostContext, l deploy.Layout) error {
		if err := s.Update(hc, l, rev); err != nil {
			return err
		}
		mkdir(t, l.Release("1"))
		return s.Release(hc, l, rev, l.Release("1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	got := tree(t, filepath.Join(base, "app1", "releases", "1"))
	want := []string{"index.html: <h1>hi</h1>\n", "sub/", "sub/page.txt: page\n"}
	if !slices.Equal(got, want) {
		t.Errorf("release:\n got %q\nwant %q", got, want)
	}

	// A tree that is not in the commit fails with a clear message.
	e.set("repo_tree", "app/mobile")
	err = onEach(t, e, base, func(hc *tasks.HostContext, l deploy.Layout) error {
		mkdir(t, l.Release("2"))
		return s.Release(hc, l, rev, l.Release("2"))
	})
	if err == nil || !strings.Contains(err.Error(), `repo_tree "app/mobile" is not a directory in commit `+rev.ID+" (v1.4.0)") {
		t.Errorf("Release of a missing tree: %v", err)
	}
}

// Update fails clearly when the commit is not in the repository.
func TestGitUpdateMissingCommit(t *testing.T) {
	repo := newTestRepo(t)
	e := newEnv(t, localHosts("app1"), nil)
	e.set("repo_url", repo.url)
	s, _ := New("git")
	missing := Revision{ID: strings.Repeat("d", 40), Branch: strings.Repeat("d", 40)}
	err := onEach(t, e, t.TempDir(), func(hc *tasks.HostContext, l deploy.Layout) error {
		return s.Update(hc, l, missing)
	})
	if err == nil || !strings.Contains(err.Error(), "commit "+missing.ID) || !strings.Contains(err.Error(), "git update on app1") {
		t.Errorf("Update = %v", err)
	}
}

func TestGitCheck(t *testing.T) {
	repo := newTestRepo(t)
	e := newEnv(t, localHosts("app1"), nil)
	s, _ := New("git")
	check := func() []string {
		t.Helper()
		return checkProblems(t, e, s)
	}
	e.set("repo_url", repo.url)
	if p := check(); len(p) != 0 {
		t.Errorf("problems with a good setup: %q", p)
	}
	e.set("repo_url", "file:///nonexistent/repo.git")
	e.set("branch", "a..b")
	p := check()
	if len(p) != 2 {
		t.Fatalf("want 2 problems, have %q", p)
	}
	mustContain(t, "problem", p[0], `branch "a..b": contains ".."`)
	mustContain(t, "problem", p[1], "cannot read repo_url file:///nonexistent/repo.git", "does not appear to be a git repository")

	// A server that asks for a password gets a refusal, not a prompt
	// that would hang the deploy.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	e.set("branch", "main")
	e.set("repo_url", srv.URL+"/private.git")
	start := time.Now()
	p = check()
	if len(p) != 1 || !strings.Contains(p[0], "terminal prompts disabled") {
		t.Errorf("problems with a password-protected repository: %q", p)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("check took %s", d)
	}
}
