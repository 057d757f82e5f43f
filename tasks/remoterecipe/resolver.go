package remoterecipe

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/davit-deploy/davit/tasks/semvertag"
)

// Config configures a Resolver.
type Config struct {
	// LockPath is the lock file (LockPathFor the Deployfile).
	LockPath string
	// CacheDir holds the checkouts; "" is DefaultCacheDir.
	CacheDir string
	// Update re-resolves these sources (as load() writes them, without
	// file and version) instead of following the lock; UpdateAll all of
	// them. Either way the lock is rewritten.
	Update    []string
	UpdateAll bool
	// Env is added to the process's environment for git (GIT_SSH_COMMAND,
	// say); credentials stay git's business.
	Env []string
	// Timeout bounds each git command; 0 is two minutes.
	Timeout time.Duration
}

// Resolver resolves the git recipes of one load of a Deployfile. Without
// a lock file it resolves every source and Finish writes the lock (as
// Cargo and npm do on the first build); with one it follows it, offline
// when the cache has the commits, and refuses anything that does not
// match it. Its methods are safe for concurrent use.
type Resolver struct {
	cfg   Config
	git   git
	cache cache

	mu      sync.Mutex
	lock    *Lock                // as read; nil when there is no lock file
	used    map[string]*Checkout // by source, this load
	changed bool                 // something was resolved, not read from the lock
	seen    map[string]bool      // Update sources this load used
}

// Checkout is a source resolved to a commit whose files are in the cache.
type Checkout struct {
	Spec   Spec   // as first loaded (Spec.Path is that first file)
	At     string // where the first load is, for messages ("Deployfile:3:1")
	Tag    string // "" for a commit
	Commit string
	// locked means the files must match the lock's checksums; otherwise
	// they are recorded.
	locked bool
	files  map[string]string
}

// Version is the tag, or the commit's first 12 digits.
func (c *Checkout) Version() string {
	if c.Tag != "" {
		return c.Tag
	}
	return shortCommit(c.Commit)
}

// New reads the lock file, if there is one.
func New(cfg Config) (*Resolver, error) {
	if cfg.CacheDir == "" {
		dir, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		cfg.CacheDir = dir
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	l, err := ReadLock(cfg.LockPath)
	if err != nil {
		return nil, err
	}
	return &Resolver{
		cfg:   cfg,
		git:   git{env: cfg.Env, timeout: cfg.Timeout},
		cache: cache{root: cfg.CacheDir},
		lock:  l,
		used:  map[string]*Checkout{},
		seen:  map[string]bool{},
	}, nil
}

func (r *Resolver) lockName() string { return filepath.Base(r.cfg.LockPath) }

func (r *Resolver) updating(source string) bool {
	return r.cfg.UpdateAll || slices.Contains(r.cfg.Update, source)
}

// Resolve returns the checkout of spec's source, loaded at at (a
// position, for messages). One load of a Deployfile uses one version of a
// source: loading it again with another REF is an error.
func (r *Resolver) Resolve(ctx context.Context, spec Spec, at string) (*Checkout, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if co, ok := r.used[spec.Source]; ok {
		if co.Spec.Ref != spec.Ref {
			return nil, fmt.Errorf("%s is loaded at two versions, @%s (%s) and @%s; a project uses one version of a source, so give both loads the same one",
				spec.Source, co.Spec.Ref, co.At, spec.Ref)
		}
		return co, nil
	}
	var co *Checkout
	var err error
	if r.updating(spec.Source) {
		r.seen[spec.Source] = true
		co, err = r.resolveRemote(ctx, spec, at)
	} else if r.lock == nil {
		co, err = r.resolveRemote(ctx, spec, at)
	} else {
		co, err = r.resolveLocked(ctx, spec, at)
	}
	if err != nil {
		return nil, err
	}
	r.used[spec.Source] = co
	return co, nil
}

// resolveLocked follows the lock's entry for spec's source.
func (r *Resolver) resolveLocked(ctx context.Context, spec Spec, at string) (*Checkout, error) {
	e, ok := r.lock.Sources[spec.Source]
	if !ok {
		return nil, fmt.Errorf("%s does not match the Deployfile: it has no entry for %s (added at %s); run `davit recipes update %s` to resolve it and add it to the lock",
			r.lockName(), spec.Source, at, spec.Source)
	}
	if e.Constraint != spec.Ref {
		return nil, fmt.Errorf("%s does not match the Deployfile: it pins %s at @%s (%s), but %s asks for @%s; run `davit recipes update %s` to resolve the new version",
			r.lockName(), spec.Source, e.Constraint, e.version(), at, spec.Ref, spec.Source)
	}
	co := &Checkout{Spec: spec, At: at, Tag: e.Tag, Commit: e.Commit, locked: true, files: e.Files}
	if r.cache.has(spec.URL, e.Commit) {
		return co, nil
	}
	_, err := r.cache.fill(ctx, r.git, spec.URL, e.Tag, e.Commit)
	var moved *errMoved
	switch {
	case errors.As(err, &moved):
		return nil, fmt.Errorf("%s: tag %s now points at commit %s, but %s records commit %s: the tag was moved, or the repository was tampered with; refusing it. If the new commit is meant, `davit recipes update %s` accepts it",
			spec.Source, e.Tag, moved.got, r.lockName(), e.Commit, spec.Source)
	case err != nil:
		return nil, fmt.Errorf("%s is locked at %s (commit %s), which is not in the recipe cache (%s), and fetching it failed: %w",
			spec.Source, e.version(), e.Commit, r.cache.repoDir(spec.URL), err)
	}
	return co, nil
}

// resolveRemote asks the repository: the tags (git ls-remote), then the
// highest satisfying a constraint, or the tag named, or the commit given.
func (r *Resolver) resolveRemote(ctx context.Context, spec Spec, at string) (*Checkout, error) {
	tag, commit, err := r.pick(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("resolve %s@%s (%s): %w", spec.Source, spec.Ref, at, err)
	}
	got, err := r.cache.fill(ctx, r.git, spec.URL, tag, commit)
	var moved *errMoved
	if errors.As(err, &moved) {
		err = fmt.Errorf("tag %s moved to commit %s while it was being fetched (it was %s); try again", tag, moved.got, commit)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch %s@%s (%s): %w", spec.Source, spec.Ref, at, err)
	}
	r.changed = true
	return &Checkout{Spec: spec, At: at, Tag: tag, Commit: got, files: map[string]string{}}, nil
}

// pick chooses the tag and commit spec.Ref names.
func (r *Resolver) pick(ctx context.Context, spec Spec) (tag, commit string, err error) {
	if IsCommit(spec.Ref) {
		return "", spec.Ref, nil
	}
	tags, err := r.git.tags(ctx, spec.URL)
	if err != nil {
		return "", "", fmt.Errorf("list its tags: %w; a git recipe that %s does not pin is resolved from its repository, which must be reachable", err, r.lockName())
	}
	if sha, ok := tags[spec.Ref]; ok {
		return spec.Ref, sha, nil
	}
	if _, cerr := semvertag.Constraint(spec.Ref); cerr != nil {
		return "", "", fmt.Errorf("%q is neither a tag of the repository nor a version constraint (%v)", spec.Ref, cerr)
	}
	tag, err = semvertag.Pick(spec.Ref, slices.Collect(maps.Keys(tags)))
	if err != nil {
		return "", "", err
	}
	return tag, tags[tag], nil
}

// ReadFile reads file of co's commit, checking its SHA-256 against the
// lock, or recording it when co was just resolved.
func (r *Resolver) ReadFile(co *Checkout, file string) ([]byte, error) {
	data, err := r.cache.readFile(co.Spec.URL, co.Commit, file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: file not found in %s at %s (commit %s)", file, co.Spec.Source, co.Version(), shortCommit(co.Commit))
	}
	if err != nil {
		return nil, fmt.Errorf("read %s from %s at %s: %w", file, co.Spec.Source, co.Version(), err)
	}
	sum := checksum(data)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !co.locked {
		co.files[file] = sum
		return data, nil
	}
	want, ok := co.files[file]
	if !ok {
		return nil, fmt.Errorf("%s does not match the Deployfile: it lists no file %s for %s; run `davit recipes update %s` to record it",
			r.lockName(), file, co.Spec.Source, co.Spec.Source)
	}
	if want != sum {
		return nil, fmt.Errorf("%s: %s at %s (commit %s) has checksum %s, but %s records %s: the cached copy (%s) was changed, or the lock was; refusing it. If the lock is right, delete that directory and davit fetches the commit again",
			co.Spec.Source, file, co.Version(), co.Commit, sum, r.lockName(), want, r.cache.dir(co.Spec.URL, co.Commit))
	}
	return data, nil
}

// Finish ends the load: it writes the lock when a source was resolved
// rather than read from it, and says which sources the lock lists that
// this load did not use (stale: `davit recipes update` drops them). An
// Update source the Deployfile does not load is an error.
func (r *Resolver) Finish() (stale []string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, src := range r.cfg.Update {
		if !r.seen[src] {
			have := slices.Sorted(maps.Keys(r.used))
			if len(have) == 0 {
				return nil, fmt.Errorf("the Deployfile loads no git recipe from %s; it loads none at all", src)
			}
			return nil, fmt.Errorf("the Deployfile loads no git recipe from %s; it loads from: %s", src, strings.Join(have, ", "))
		}
	}
	if r.lock != nil {
		for src := range r.lock.Sources {
			if _, ok := r.used[src]; !ok && !r.cfg.UpdateAll {
				stale = append(stale, src)
			}
		}
		slices.Sort(stale)
	}
	if !r.changed && !r.cfg.UpdateAll || r.lock == nil && len(r.used) == 0 {
		return stale, nil
	}
	next := &Lock{Sources: map[string]*Entry{}}
	if r.lock != nil && !r.cfg.UpdateAll {
		maps.Copy(next.Sources, r.lock.Sources)
	}
	for src, co := range r.used {
		next.Sources[src] = &Entry{Constraint: co.Spec.Ref, Tag: co.Tag, Commit: co.Commit, Files: co.files}
	}
	if err := WriteLock(r.cfg.LockPath, next); err != nil {
		return stale, err
	}
	r.lock, r.changed = next, false
	return stale, nil
}

// Sources are the checkouts this load used, by source.
func (r *Resolver) Sources() []*Checkout {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Checkout
	for _, src := range slices.Sorted(maps.Keys(r.used)) {
		out = append(out, r.used[src])
	}
	return out
}
