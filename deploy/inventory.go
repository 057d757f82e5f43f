package deploy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// StaticSource is the Source of hosts the Deployfile declares itself with
// server() and role().
const StaticSource = "static"

// DefaultSourceTimeout bounds how long a run waits for its host sources.
const DefaultSourceTimeout = 30 * time.Second

// Inventory is a run's hosts and where they came from.
type Inventory struct {
	// Hosts are the declared servers and every source's hosts, merged by
	// name and port, in declaration order, then each source's order.
	Hosts []*Host
	// Declared counts the servers the Deployfile declared (after merging).
	Declared int
	// Sources says what each host source was asked and how many hosts it
	// gave, in the order the sources were recorded.
	Sources []SourceResult
}

// SourceResult is one host source's answer.
type SourceResult struct {
	Name, Describe string
	Count          int
}

// Describe says where the inventory's hosts came from, for messages about
// hosts that are missing: "2 declared servers; ec2 (running EC2 instances
// tagged App=payroll): none". Nil says nothing ("").
func (inv *Inventory) Describe() string {
	if inv == nil {
		return ""
	}
	parts := []string{fmt.Sprintf("%d declared %s", inv.Declared, plural(inv.Declared, "server", "servers"))}
	for _, s := range inv.Sources {
		n := "none"
		if s.Count > 0 {
			n = fmt.Sprintf("%d %s", s.Count, plural(s.Count, "host", "hosts"))
		}
		parts = append(parts, fmt.Sprintf("%s (%s): %s", s.Name, s.Describe, n))
	}
	return strings.Join(parts, "; ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ResolveInventory asks every source for its hosts once, all at the same
// time, and merges their answers with the declared hosts by name and port
// (MergeHosts). It waits at most timeout (DefaultSourceTimeout when zero)
// for all of them. A failing or silent source is an error naming it and
// what it was asked; every failing source is reported, not only the first.
func ResolveInventory(ctx context.Context, declared []*Host, sources []HostSource, timeout time.Duration) (*Inventory, error) {
	declared = MergeHosts(declared)
	for _, h := range declared {
		if h.Source == "" {
			h.Source = StaticSource
		}
	}
	inv := &Inventory{Declared: len(declared)}
	if len(sources) == 0 {
		inv.Hosts = declared
		return inv, nil
	}
	if timeout <= 0 {
		timeout = DefaultSourceTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	found := make([][]*Host, len(sources))
	errs := make([]error, len(sources))
	var wg sync.WaitGroup
	for i, src := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			found[i], errs[i] = askSource(ctx, src, timeout)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	all := slices.Clone(declared)
	for i, src := range sources {
		inv.Sources = append(inv.Sources, SourceResult{Name: src.Name(), Describe: src.Describe(), Count: len(found[i])})
		all = append(all, found[i]...)
	}
	inv.Hosts = MergeHosts(all)
	return inv, nil
}

// askSource calls one source, giving up when ctx ends even if the source
// does not (its goroutine then finishes on its own).
func askSource(ctx context.Context, src HostSource, timeout time.Duration) ([]*Host, error) {
	type answer struct {
		hosts []*Host
		err   error
	}
	ch := make(chan answer, 1)
	go func() {
		hs, err := src.Hosts(ctx)
		ch <- answer{hs, err}
	}()
	var a answer
	select {
	case a = <-ch:
	case <-ctx.Done():
		a.err = ctx.Err()
	}
	what := fmt.Sprintf("host source %s (%s)", src.Name(), src.Describe())
	switch {
	case errors.Is(a.err, context.DeadlineExceeded):
		return nil, fmt.Errorf("%s: no answer within %s", what, timeout)
	case a.err != nil:
		return nil, fmt.Errorf("%s: %w", what, a.err)
	}
	out := make([]*Host, 0, len(a.hosts))
	for _, h := range a.hosts {
		if h == nil || h.Name == "" {
			return nil, fmt.Errorf("%s: returned a host without a name", what)
		}
		c := *h
		c.Roles, c.Props = slices.Clone(h.Roles), maps.Clone(h.Props)
		c.Source = src.Name()
		out = append(out, &c)
	}
	return out, nil
}

// MergeHosts folds repeated declarations of one server (same name and port)
// into one host, in first-declaration order: roles unioned, properties
// overlaid, primary if any says so, the first non-empty user, and every
// source it came from ("static+ec2"). The hosts returned are fresh copies.
func MergeHosts(decls []*Host) []*Host {
	var out []*Host
	index := map[string]*Host{}
	for _, d := range decls {
		key := fmt.Sprintf("%s:%d", d.Name, d.Port)
		if h, ok := index[key]; ok {
			h.Merge(d)
			if h.User == "" {
				h.User = d.User
			}
			if d.Source != "" && !slices.Contains(strings.Split(h.Source, "+"), d.Source) {
				h.Source = strings.TrimPrefix(h.Source+"+"+d.Source, "+")
			}
			continue
		}
		h := &Host{Name: d.Name, Address: d.Address, User: d.User, Port: d.Port,
			Roles: slices.Clone(d.Roles), Primary: d.Primary, Backend: d.Backend, Source: d.Source,
			Props: maps.Clone(d.Props)}
		index[key] = h
		out = append(out, h)
	}
	return out
}
