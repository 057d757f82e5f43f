package remoterecipe

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/davit-deploy/davit/tasks/remoterecipe/recipetest"
)

func TestParseSpec(t *testing.T) {
	for name, want := range map[string]Spec{
		"git+https://git.example.com/acme/davit-recipes.git//rails/rails.star@^1.2": {
			Source: "git+https://git.example.com/acme/davit-recipes.git", URL: "https://git.example.com/acme/davit-recipes.git", Path: "rails/rails.star", Ref: "^1.2"},
		"git+ssh://git@127.0.0.2:2222/srv/r.git//a.star@v1.0.0": {
			Source: "git+ssh://git@127.0.0.2:2222/srv/r.git", URL: "ssh://git@127.0.0.2:2222/srv/r.git", Path: "a.star", Ref: "v1.0.0"},
		"git+file:///tmp/x/r.git//lib/b.star@>=1.3.0-0 <2": {
			Source: "git+file:///tmp/x/r.git", URL: "file:///tmp/x/r.git", Path: "lib/b.star", Ref: ">=1.3.0-0 <2"},
	} {
		got, err := ParseSpec(name)
		if err != nil || got != want {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", name, got, err, want)
		}
	}
	for name, msg := range map[string]string{
		"git+http://h/r.git//a.star@^1":    `unsupported scheme "http"`,
		"git+https://h/r.git/a.star@^1":    "no // between",
		"git+https://h/r.git//a.star":      "no version after @",
		"git+https://h/r.git//a.star@":     "no version after @",
		"git+https://h/r.git//../a.star@1": "not a clean path",
		"git+https:///a.star@^1":           "no // between",
		"git+https://h/r.git//@^1":         "no file after //",
	} {
		if _, err := ParseSpec(name); err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "want git+https://") {
			t.Errorf("ParseSpec(%q) error = %v; want %q", name, err, msg)
		}
	}
}

func TestJoin(t *testing.T) {
	if p, err := Join("rails/rails.star", "../lib/x.star"); err != nil || p != "lib/x.star" {
		t.Errorf("Join = %q, %v", p, err)
	}
	if _, err := Join("rails/rails.star", "../../x.star"); err == nil || !strings.Contains(err.Error(), "leaves the repository") {
		t.Errorf("escape: %v", err)
	}
	if _, err := Join("rails/rails.star", "/etc/passwd"); err == nil || !strings.Contains(err.Error(), "absolute path") {
		t.Errorf("absolute: %v", err)
	}
}

// releases makes the repository the issue describes: tags v1.0.0,
// v1.2.0, v1.3.0-rc.1 and v2.0.0 (every other one annotated), each
// commit's rails.star saying its version.
func releases(t *testing.T, dir string) (*recipetest.Repo, map[string]string) {
	repo := recipetest.New(t, dir)
	commits := map[string]string{}
	for i, v := range []string{"v1.0.0", "v1.2.0", "v1.3.0-rc.1", "v2.0.0"} {
		commits[v] = repo.Commit(map[string]string{"rails/rails.star": "VERSION = " + `"` + v + `"` + "\n", "rails/lib.star": "X = 1\n"})
		repo.Tag(v, i%2 == 1)
	}
	return repo, commits
}

type env struct {
	t     *testing.T
	dir   string
	cache string
	lock  string
}

func newEnv(t *testing.T) *env {
	d := t.TempDir()
	return &env{t: t, dir: d, cache: filepath.Join(d, "cache"), lock: filepath.Join(d, "Deployfile.lock")}
}

func (e *env) resolver(cfg Config) *Resolver {
	e.t.Helper()
	cfg.LockPath, cfg.CacheDir = e.lock, e.cache
	r, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// load resolves name, reads its file and finishes, as one Deployfile load
// of that one recipe does.
func load(t *testing.T, r *Resolver, name string) (*Checkout, string, error) {
	t.Helper()
	spec, err := ParseSpec(name)
	if err != nil {
		t.Fatal(err)
	}
	co, err := r.Resolve(context.Background(), spec, "Deployfile:1:1")
	if err != nil {
		return nil, "", err
	}
	data, err := r.ReadFile(co, spec.Path)
	if err != nil {
		return co, "", err
	}
	if _, err := r.Finish(); err != nil {
		return co, "", err
	}
	return co, string(data), nil
}

func TestResolveConstraints(t *testing.T) {
	e := newEnv(t)
	repo, commits := releases(t, filepath.Join(e.dir, "recipes.git"))
	for ref, want := range map[string]string{
		"^1.2":         "v1.2.0",
		"^1.3.0-0":     "v1.3.0-rc.1",
		">=1.3.0-0 <2": "v1.3.0-rc.1",
		">=1.3.0-0":    "v2.0.0", // the highest satisfying it
		"~1.0":         "v1.0.0",
		"v2.0.0":       "v2.0.0", // a plain tag
	} {
		os.Remove(e.lock)
		co, data, err := load(t, e.resolver(Config{}), repo.URL()+"//rails/rails.star@"+ref)
		if err != nil {
			t.Errorf("@%s: %v", ref, err)
			continue
		}
		if co.Tag != want || co.Commit != commits[want] || !strings.Contains(data, want) {
			t.Errorf("@%s = %s %s %q; want %s %s", ref, co.Tag, co.Commit, data, want, commits[want])
		}
	}
	// A full commit needs no tag.
	os.Remove(e.lock)
	co, data, err := load(t, e.resolver(Config{}), repo.URL()+"//rails/rails.star@"+commits["v1.0.0"])
	if err != nil || co.Tag != "" || co.Version() != commits["v1.0.0"][:12] || !strings.Contains(data, "v1.0.0") {
		t.Errorf("@commit = %+v %q %v", co, data, err)
	}
	for ref, msg := range map[string]string{
		"^3":        `version "^3": no tag satisfies it; version tags: v2.0.0, v1.3.0-rc.1, v1.2.0, v1.0.0`,
		"release-7": `"release-7" is neither a tag of the repository nor a version constraint`,
	} {
		os.Remove(e.lock)
		_, _, err := load(t, e.resolver(Config{}), repo.URL()+"//rails/rails.star@"+ref)
		if err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "(Deployfile:1:1)") {
			t.Errorf("@%s: error %v; want %q", ref, err, msg)
		}
	}
	// A file the commit does not have.
	os.Remove(e.lock)
	_, _, err = load(t, e.resolver(Config{}), repo.URL()+"//rails/nope.star@^1")
	if err == nil || !strings.Contains(err.Error(), "rails/nope.star: file not found in "+repo.URL()+" at v1.2.0") {
		t.Errorf("missing file: %v", err)
	}
}

func TestLockWrittenThenUsedOffline(t *testing.T) {
	e := newEnv(t)
	repo, commits := releases(t, filepath.Join(e.dir, "recipes.git"))
	name := repo.URL() + "//rails/rails.star@^1.2"
	if _, _, err := load(t, e.resolver(Config{}), name); err != nil {
		t.Fatal(err)
	}
	l, err := ReadLock(e.lock)
	if err != nil || l == nil {
		t.Fatalf("lock: %v %v", l, err)
	}
	got := l.Sources[repo.URL()]
	if got == nil || got.Constraint != "^1.2" || got.Tag != "v1.2.0" || got.Commit != commits["v1.2.0"] || len(got.Files) != 1 || !strings.HasPrefix(got.Files["rails/rails.star"], "sha256:") {
		t.Fatalf("lock entry = %+v", got)
	}
	before, _ := os.ReadFile(e.lock)

	// The repository is gone: the lock and the cache are enough.
	if err := os.Rename(repo.Dir, repo.Dir+".moved"); err != nil {
		t.Fatal(err)
	}
	co, data, err := load(t, e.resolver(Config{}), name)
	if err != nil || co.Tag != "v1.2.0" || !strings.Contains(data, "v1.2.0") {
		t.Fatalf("offline: %+v %q %v", co, data, err)
	}
	after, _ := os.ReadFile(e.lock)
	if string(before) != string(after) {
		t.Errorf("a run that followed the lock rewrote it:\n%s\n%s", before, after)
	}
	// Offline with the lock but a cold cache fails, saying so.
	e.cache = filepath.Join(e.dir, "cold")
	_, _, err = load(t, e.resolver(Config{}), name)
	if err == nil || !strings.Contains(err.Error(), "is locked at v1.2.0 (commit "+commits["v1.2.0"]+"), which is not in the recipe cache") {
		t.Errorf("cold cache offline: %v", err)
	}
	// Offline without a lock fails, saying so.
	os.Remove(e.lock)
	_, _, err = load(t, e.resolver(Config{}), name)
	if err == nil || !strings.Contains(err.Error(), "a git recipe that Deployfile.lock does not pin is resolved from its repository, which must be reachable") {
		t.Errorf("no lock offline: %v", err)
	}
}

func TestLockFormat(t *testing.T) {
	e := newEnv(t)
	repo, commits := releases(t, filepath.Join(e.dir, "recipes.git"))
	if _, _, err := load(t, e.resolver(Config{}), repo.URL()+"//rails/rails.star@^1"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(e.lock)
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	sum := checksum([]byte(`VERSION = "v1.2.0"` + "\n"))
	want := `{
  "comment": "` + lockComment + `",
  "lock_version": 1,
  "sources": {
    "` + repo.URL() + `": {
      "constraint": "^1",
      "tag": "v1.2.0",
      "commit": "` + commits["v1.2.0"] + `",
      "files": {
        "rails/rails.star": "` + sum + `"
      }
    }
  }
}
`
	if string(data) != want {
		t.Errorf("lock:\n%s\nwant:\n%s", data, want)
	}
	for content, msg := range map[string]string{
		"{":                                 "not a davit lock file",
		`{"lock_version": 7, "sources":{}}`: "lock_version 7, this davit reads version 1",
		`{"lock_version": 1, "sources":{"git+file:///x": {"constraint":"^1","commit":"abc"}}}`: "source git+file:///x has no valid commit",
		`{"lock_version": 1, "extra": 1}`: "not a davit lock file",
		`{"lock_version": 1, "sources":{"git+file:///x": {"constraint":"^1","tag":"v1:refs/heads/x","commit":"` + commits["v1.0.0"] + `"}}}`: `"v1:refs/heads/x" is not a tag name`,
	} {
		os.WriteFile(e.lock, []byte(content), 0o644)
		if _, err := New(Config{LockPath: e.lock, CacheDir: e.cache}); err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), e.lock) {
			t.Errorf("lock %s: %v; want %q", content, err, msg)
		}
	}
}

func TestTagMovedRefused(t *testing.T) {
	e := newEnv(t)
	repo, commits := releases(t, filepath.Join(e.dir, "recipes.git"))
	name := repo.URL() + "//rails/rails.star@^1.2"
	if _, _, err := load(t, e.resolver(Config{}), name); err != nil {
		t.Fatal(err)
	}
	moved := repo.Commit(map[string]string{"rails/rails.star": "fail('evil')\n"})
	repo.Tag("v1.2.0", false)
	e.cache = filepath.Join(e.dir, "fresh-cache") // another machine, say
	_, _, err := load(t, e.resolver(Config{}), name)
	if err == nil || !strings.Contains(err.Error(), repo.URL()+": tag v1.2.0 now points at commit "+moved+", but Deployfile.lock records commit "+commits["v1.2.0"]) {
		t.Fatalf("moved tag: %v", err)
	}
	// recipes update accepts it when it is meant.
	co, data, err := load(t, e.resolver(Config{Update: []string{repo.URL()}}), name)
	if err != nil || co.Commit != moved || !strings.Contains(data, "evil") {
		t.Fatalf("update after the move: %+v %v", co, err)
	}
}

func TestCacheTamperingRefused(t *testing.T) {
	e := newEnv(t)
	repo, commits := releases(t, filepath.Join(e.dir, "recipes.git"))
	name := repo.URL() + "//rails/rails.star@^1.2"
	if _, _, err := load(t, e.resolver(Config{}), name); err != nil {
		t.Fatal(err)
	}
	l, _ := ReadLock(e.lock)
	locked := l.Sources[repo.URL()].Files["rails/rails.star"]
	cached := filepath.Join(cache{e.cache}.dir("file://"+repo.Dir, commits["v1.2.0"]), "rails", "rails.star")
	evil := "fail('tampered')\n"
	if err := os.WriteFile(cached, []byte(evil), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := load(t, e.resolver(Config{}), name)
	if err == nil || !strings.Contains(err.Error(), repo.URL()+": rails/rails.star at v1.2.0 (commit "+commits["v1.2.0"]+") has checksum "+checksum([]byte(evil))+", but Deployfile.lock records "+locked) {
		t.Fatalf("tampered cache: %v", err)
	}
	// Deleting the checkout fetches it again.
	os.RemoveAll(filepath.Dir(filepath.Dir(cached)))
	if _, data, err := load(t, e.resolver(Config{}), name); err != nil || !strings.Contains(data, "v1.2.0") {
		t.Fatalf("after removing the checkout: %q %v", data, err)
	}
}

func TestUpdateMovesToNewTag(t *testing.T) {
	e := newEnv(t)
	repo, _ := releases(t, filepath.Join(e.dir, "recipes.git"))
	name := repo.URL() + "//rails/rails.star@^1"
	if co, _, err := load(t, e.resolver(Config{}), name); err != nil || co.Tag != "v1.2.0" {
		t.Fatalf("first: %+v %v", co, err)
	}
	v14 := repo.Release(map[string]string{"rails/rails.star": `VERSION = "v1.4.0"` + "\n"}, "v1.4.0")
	// The lock wins over the newer tag...
	if co, _, err := load(t, e.resolver(Config{}), name); err != nil || co.Tag != "v1.2.0" {
		t.Fatalf("locked: %+v %v", co, err)
	}
	st, err := Statuses(context.Background(), Config{LockPath: e.lock})
	if err != nil || len(st) != 1 || st[0].Newer != "v1.4.0" || st[0].Entry.Tag != "v1.2.0" || st[0].Err != nil {
		t.Fatalf("statuses: %+v %v", st, err)
	}
	// ...until an update.
	co, data, err := load(t, e.resolver(Config{UpdateAll: true}), name)
	if err != nil || co.Tag != "v1.4.0" || co.Commit != v14 || !strings.Contains(data, "v1.4.0") {
		t.Fatalf("update: %+v %v", co, err)
	}
	l, _ := ReadLock(e.lock)
	if l.Sources[repo.URL()].Tag != "v1.4.0" {
		t.Errorf("lock after update: %+v", l.Sources[repo.URL()])
	}
	st, _ = Statuses(context.Background(), Config{LockPath: e.lock})
	if st[0].Newer != "" {
		t.Errorf("statuses after update: %+v", st)
	}
	// Updating a source the Deployfile does not load says what it loads.
	_, _, err = load(t, e.resolver(Config{Update: []string{"git+file:///elsewhere"}}), name)
	if err == nil || !strings.Contains(err.Error(), "the Deployfile loads no git recipe from git+file:///elsewhere; it loads from: "+repo.URL()) {
		t.Errorf("update of an unknown source: %v", err)
	}
	// Offline, the list says it could not ask.
	os.Rename(repo.Dir, repo.Dir+".gone")
	st, _ = Statuses(context.Background(), Config{LockPath: e.lock})
	if st[0].Err == nil {
		t.Errorf("statuses offline: %+v", st)
	}
}

func TestLockMismatch(t *testing.T) {
	e := newEnv(t)
	repo, _ := releases(t, filepath.Join(e.dir, "recipes.git"))
	other, _ := releases(t, filepath.Join(e.dir, "other.git"))
	if _, _, err := load(t, e.resolver(Config{}), repo.URL()+"//rails/rails.star@^1.2"); err != nil {
		t.Fatal(err)
	}
	_, _, err := load(t, e.resolver(Config{}), repo.URL()+"//rails/rails.star@^2")
	if err == nil || !strings.Contains(err.Error(), "Deployfile.lock does not match the Deployfile: it pins "+repo.URL()+" at @^1.2 (v1.2.0), but Deployfile:1:1 asks for @^2; run `davit recipes update "+repo.URL()+"`") {
		t.Errorf("constraint changed: %v", err)
	}
	_, _, err = load(t, e.resolver(Config{}), other.URL()+"//rails/rails.star@^1.2")
	if err == nil || !strings.Contains(err.Error(), "Deployfile.lock does not match the Deployfile: it has no entry for "+other.URL()+" (added at Deployfile:1:1); run `davit recipes update "+other.URL()+"`") {
		t.Errorf("source added: %v", err)
	}
	_, _, err = load(t, e.resolver(Config{}), repo.URL()+"//rails/lib.star@^1.2")
	if err == nil || !strings.Contains(err.Error(), "it lists no file rails/lib.star for "+repo.URL()) {
		t.Errorf("file added: %v", err)
	}
	// Two versions of one source in one load.
	r := e.resolver(Config{})
	spec, _ := ParseSpec(repo.URL() + "//rails/rails.star@^1.2")
	if _, err := r.Resolve(context.Background(), spec, "Deployfile:1:1"); err != nil {
		t.Fatal(err)
	}
	spec.Ref = "^2"
	if _, err := r.Resolve(context.Background(), spec, "Deployfile:2:1"); err == nil || !strings.Contains(err.Error(), "is loaded at two versions, @^1.2 (Deployfile:1:1) and @^2") {
		t.Errorf("two versions: %v", err)
	}
	// A source the lock lists that the Deployfile no longer loads is stale.
	os.Remove(e.lock)
	r = e.resolver(Config{})
	for _, n := range []string{repo.URL(), other.URL()} {
		spec, _ := ParseSpec(n + "//rails/rails.star@^1")
		co, err := r.Resolve(context.Background(), spec, "x")
		if err == nil {
			_, err = r.ReadFile(co, spec.Path)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r.Finish()
	if _, _, err := load(t, e.resolver(Config{}), repo.URL()+"//rails/rails.star@^1"); err != nil {
		t.Fatal(err)
	}
	r = e.resolver(Config{})
	spec, _ = ParseSpec(repo.URL() + "//rails/rails.star@^1")
	co, _ := r.Resolve(context.Background(), spec, "x")
	r.ReadFile(co, spec.Path)
	if stale, err := r.Finish(); err != nil || len(stale) != 1 || stale[0] != other.URL() {
		t.Errorf("stale = %v, %v", stale, err)
	}
}

// TestConcurrentResolvers: resolvers of their own (as two davit
// processes have), one cache, one source, at once.
func TestConcurrentResolvers(t *testing.T) {
	e := newEnv(t)
	repo, commits := releases(t, filepath.Join(e.dir, "recipes.git"))
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			r, err := New(Config{LockPath: filepath.Join(e.dir, "p"+string(rune('a'+i)), "Deployfile.lock"), CacheDir: e.cache})
			if err == nil {
				os.MkdirAll(filepath.Join(e.dir, "p"+string(rune('a'+i))), 0o755)
				var co *Checkout
				_, _, err = func() (*Checkout, string, error) {
					spec, _ := ParseSpec(repo.URL() + "//rails/rails.star@^1.2")
					co, err = r.Resolve(context.Background(), spec, "Deployfile:1:1")
					if err != nil {
						return nil, "", err
					}
					data, err := r.ReadFile(co, spec.Path)
					if err == nil && !strings.Contains(string(data), "v1.2.0") {
						t.Errorf("resolver %d read %q", i, data)
					}
					return co, "", err
				}()
				if err == nil && co.Commit != commits["v1.2.0"] {
					t.Errorf("resolver %d: commit %s", i, co.Commit)
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("resolver %d: %v", i, err)
		}
	}
	entries, _ := os.ReadDir(cache{e.cache}.repoDir("file://" + repo.Dir))
	if len(entries) != 1 || entries[0].Name() != commits["v1.2.0"] {
		var names []string
		for _, en := range entries {
			names = append(names, en.Name())
		}
		t.Errorf("cache holds %v; want only the commit's checkout", names)
	}
}

// TestLeftoversSwept: a fetch directory a killed davit left behind is
// removed by the next fetch; a recent one (a fetch in progress) is not.
func TestLeftoversSwept(t *testing.T) {
	e := newEnv(t)
	repo, _ := releases(t, filepath.Join(e.dir, "recipes.git"))
	dir := cache{e.cache}.repoDir("file://" + repo.Dir)
	old, recent := filepath.Join(dir, ".fetch-old"), filepath.Join(dir, ".fetch-recent")
	for _, d := range []string{old, recent} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-2 * abandoned)
	os.Chtimes(old, long, long)
	if _, _, err := load(t, e.resolver(Config{}), repo.URL()+"//rails/rails.star@^1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("old leftover still there: %v", err)
	}
	if _, err := os.Stat(recent); err != nil {
		t.Errorf("recent fetch directory removed: %v", err)
	}
}
