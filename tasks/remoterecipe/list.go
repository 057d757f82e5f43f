package remoterecipe

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/davit-deploy/davit/tasks/semvertag"
)

// Status is one locked source as `davit recipes list` shows it.
type Status struct {
	Source string
	Entry  Entry
	// Pinned says the constraint names one tag or commit, so no other
	// version can satisfy it.
	Pinned bool
	// Newer is the highest tag satisfying the constraint when that is a
	// higher version than the locked tag; "" when the lock has the newest.
	Newer string
	// Err is why the repository could not be asked (offline, say).
	Err error
}

// Statuses reads the lock at cfg.LockPath and asks each source's
// repository (git ls-remote, in parallel) whether a newer version
// satisfies its constraint. No lock is (nil, nil).
func Statuses(ctx context.Context, cfg Config) ([]Status, error) {
	l, err := ReadLock(cfg.LockPath)
	if err != nil || l == nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	g := git{env: cfg.Env, timeout: cfg.Timeout}
	srcs := slices.Sorted(maps.Keys(l.Sources))
	out := make([]Status, len(srcs))
	done := make(chan struct{})
	for i, src := range srcs {
		out[i] = Status{Source: src, Entry: *l.Sources[src]}
		go func() {
			defer func() { done <- struct{}{} }()
			out[i].check(ctx, g)
		}()
	}
	for range srcs {
		<-done
	}
	return out, nil
}

func (s *Status) check(ctx context.Context, g git) {
	e := s.Entry
	if IsCommit(e.Constraint) {
		s.Pinned = true
		return
	}
	spec, err := ParseSpec(s.Source + "//x@" + e.Constraint)
	if err != nil {
		s.Err = err
		return
	}
	tags, err := g.tags(ctx, spec.URL)
	if err != nil {
		s.Err = err
		return
	}
	if _, ok := tags[e.Constraint]; ok {
		s.Pinned = true
		return
	}
	best, err := semvertag.Pick(e.Constraint, slices.Collect(maps.Keys(tags)))
	if err != nil {
		s.Err = err
		return
	}
	bv, _ := semvertag.Parse(best)
	lv, ok := semvertag.Parse(e.Tag)
	if !ok || bv.GreaterThan(lv) {
		s.Newer = best
	}
}
