package remoterecipe

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/davit-deploy/davit/tasks/remoterecipe/recipetest"
)

// BenchmarkLockedWarm is what a git recipe costs every run once it is
// locked and cached: read the lock, check the cache, read and checksum
// two files. No git command runs.
func BenchmarkLockedWarm(b *testing.B) {
	dir := b.TempDir()
	repo := recipetest.New(b, filepath.Join(dir, "recipes"))
	repo.Release(map[string]string{"rails/rails.star": "load('lib.star', 'X')\n", "rails/lib.star": "X = 1\n"}, "v1.2.0")
	cfg := Config{LockPath: filepath.Join(dir, "Deployfile.lock"), CacheDir: filepath.Join(dir, "cache")}
	spec, err := ParseSpec(repo.URL() + "//rails/rails.star@^1.2")
	if err != nil {
		b.Fatal(err)
	}
	once := func() {
		r, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		co, err := r.Resolve(context.Background(), spec, "Deployfile:1:1")
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range []string{"rails/rails.star", "rails/lib.star"} {
			if _, err := r.ReadFile(co, f); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := r.Finish(); err != nil {
			b.Fatal(err)
		}
	}
	once() // resolves, fills the cache, writes the lock
	b.ResetTimer()
	for b.Loop() {
		once()
	}
}

// BenchmarkResolveCold is the first run's cost per source: git ls-remote,
// a shallow fetch into an empty cache, the checkout and the lock.
func BenchmarkResolveCold(b *testing.B) {
	dir := b.TempDir()
	repo := recipetest.New(b, filepath.Join(dir, "recipes"))
	repo.Release(map[string]string{"rails/rails.star": "X = 1\n"}, "v1.2.0")
	spec, err := ParseSpec(repo.URL() + "//rails/rails.star@^1.2")
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		d := filepath.Join(dir, "run", strconv.Itoa(i))
		r, err := New(Config{LockPath: filepath.Join(d, "Deployfile.lock"), CacheDir: filepath.Join(d, "cache")})
		if err != nil {
			b.Fatal(err)
		}
		co, err := r.Resolve(context.Background(), spec, "Deployfile:1:1")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.ReadFile(co, spec.Path); err != nil {
			b.Fatal(err)
		}
	}
}
