package deployfile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/davit-deploy/davit/recipes"
	"github.com/davit-deploy/davit/tasks/remoterecipe"
	"github.com/davit-deploy/davit/tasks/remoterecipe/recipetest"
)

// gitCache points the default recipe cache into the test's directory.
func gitCache(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", dir)
	return dir
}

func TestGitRecipe(t *testing.T) {
	cache := gitCache(t)
	repo := recipetest.New(t, filepath.Join(t.TempDir(), "recipes"))
	for _, v := range []string{"1.0.0", "1.2.0", "1.3.0-rc.1", "2.0.0"} {
		repo.Release(map[string]string{
			"rails/rails.star": `load("lib.star", "X")
load("davit/doctor.star", "doctor")
def rails():
    task("rails:migrate", lambda: None, desc = "migrate " + X)
VERSION = "` + v + `"
`,
			"rails/lib.star": `X = "` + v + `"` + "\n",
		}, "v"+v)
	}
	// Work after the release: relative loads must not see it.
	repo.Commit(map[string]string{"rails/lib.star": `X = "unreleased"` + "\n"})

	p, dir := load(t, `load("`+repo.URL()+`//rails/rails.star@^1.2", "rails", "VERSION")
rails()
set("recipe_version", VERSION)
`)
	if v, _ := p.Vars().FetchString("recipe_version"); v != "1.2.0" {
		t.Errorf("recipe_version = %q", v)
	}
	task, err := p.Registry().Lookup("rails:migrate")
	if err != nil || task.Desc != "migrate 1.2.0" {
		t.Fatalf("rails:migrate = %+v, %v", task, err)
	}
	if !strings.HasPrefix(task.Pos.File, repo.URL()+"//rails/rails.star@v1.2.0") {
		t.Errorf("task position %q", task.Pos.File)
	}
	l, err := remoterecipe.ReadLock(filepath.Join(dir, "Deployfile.lock"))
	if err != nil || l == nil {
		t.Fatalf("lock: %v, %v", l, err)
	}
	e := l.Sources[repo.URL()]
	if e == nil || e.Tag != "v1.2.0" || len(e.Files) != 2 || e.Files["rails/lib.star"] == "" {
		t.Errorf("lock entry %+v", e)
	}
	if src := p.RemoteSources(); len(src) != 1 || src[0].Tag != "v1.2.0" {
		t.Errorf("RemoteSources = %+v", src)
	}
	if _, err := os.Stat(filepath.Join(cache, "davit", "recipes")); err != nil {
		t.Errorf("cache not under XDG_CACHE_HOME: %v", err)
	}

	// The repository moved away: the lock and the cache still load it.
	os.Rename(repo.Dir, repo.Dir+".moved")
	p2, err := Load(context.Background(), filepath.Join(dir, "Deployfile"), Options{Version: "1.4.0", Recipes: recipes.Starlark()})
	if err != nil {
		t.Fatalf("offline: %v", err)
	}
	if v, _ := p2.Vars().FetchString("recipe_version"); v != "1.2.0" {
		t.Errorf("offline recipe_version = %q", v)
	}
}

// releaseRepo makes a repository at dir with files tagged v1.0.0.
func releaseRepo(t *testing.T, dir string, files map[string]string) *recipetest.Repo {
	r := recipetest.New(t, dir)
	r.Release(files, "v1.0.0")
	return r
}

func TestGitRecipeErrors(t *testing.T) {
	gitCache(t)
	base := t.TempDir()
	a, b := filepath.Join(base, "a"), filepath.Join(base, "b")
	aURL, bURL := "git+file://"+a, "git+file://"+b
	releaseRepo(t, a, map[string]string{
		"a.star":       `load("` + bURL + `//b.star@^1", "B")` + "\nA = 1\n",
		"missing.star": "\n" + `load("` + bURL + `//nope.star@^1", "N")` + "\n",
		"escape.star":  `load("../../etc/x.star", "X")` + "\n",
		"abs.star":     `load("/etc/x.star", "X")` + "\n",
		"old.star":     "\n\nrequire(\"davit\", \">=2\")\n",
	})
	releaseRepo(t, b, map[string]string{"b.star": `load("` + aURL + `//a.star@^1", "A")` + "\nB = 2\n"})

	for src, want := range map[string][]string{
		`load("` + aURL + `//a.star@^1", "A")`: {
			"load cycle: " + aURL + "//a.star@v1.0.0 -> " + bURL + "//b.star@v1.0.0 -> " + aURL + "//a.star@v1.0.0",
			bURL + "//b.star@v1.0.0:1:1: ",
		},
		`load("` + aURL + `//missing.star@^1", "N")`: {
			aURL + "//missing.star@v1.0.0:2:1: cannot load " + bURL + "//nope.star@^1: nope.star: file not found in " + bURL + " at v1.0.0",
		},
		`load("` + aURL + `//escape.star@^1", "X")`:  {`"../../etc/x.star" leaves the repository`},
		`load("` + aURL + `//abs.star@^1", "X")`:     {"cannot load an absolute path"},
		`load("` + aURL + `//old.star@v1.0.0", "X")`: {aURL + "//old.star@v1.0.0:3:8: require: recipe old.star v1.0.0 requires davit >=2, this is davit 1.4.0"},
		`load("` + aURL + `//a.star@^7", "X")`:       {"Deployfile:1:1: cannot load " + aURL + "//a.star@^7: resolve " + aURL + "@^7 (Deployfile:1:1): version \"^7\": no tag satisfies it; version tags: v1.0.0"},
		`load("https://example.com/x.star", "X")`:    {"a recipe from a repository is loaded as git+https://"},
		`load("git+ftp://h/r//x.star@1", "X")`:       {`unsupported scheme "ftp"`},
	} {
		err := loadErr(t, src)
		for _, w := range want {
			contains(t, err, w)
		}
	}
}
