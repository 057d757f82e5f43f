// Package runner decides how many hosts work at once: all in parallel (up
// to a limit), one after another, or in fixed-size batches.
package runner

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/davit-deploy/davit/deploy"
)

// Runner calls fn for each host. It returns nil or a *HostErrors naming
// every host that failed.
type Runner interface {
	Run(ctx context.Context, hosts []*deploy.Host, fn func(context.Context, *deploy.Host) error) error
}

// DefaultLimit bounds Parallel when no limit is given.
const DefaultLimit = 32

// Parallel runs all hosts at once, at most Limit at a time (DefaultLimit
// when zero). One host failing does not stop the others: a deploy needs to
// know every host's state.
type Parallel struct{ Limit int }

// Sequence runs one host at a time, waiting Wait between hosts, and stops at
// the first failure.
type Sequence struct{ Wait time.Duration }

// Batches runs Size hosts at a time in parallel, waiting Wait between
// batches, and stops after a batch with a failure.
type Batches struct {
	Size int
	Wait time.Duration
}

// HostError is one host's failure.
type HostError struct {
	Host *deploy.Host
	Err  error
}

func (e *HostError) Error() string { return fmt.Sprintf("%s: %v", e.Host, e.Err) }
func (e *HostError) Unwrap() error { return e.Err }

// HostErrors collects the failures of one run, in host order.
type HostErrors struct{ Errors []*HostError }

func (e *HostErrors) Error() string {
	if len(e.Errors) == 1 {
		return e.Errors[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d hosts failed:", len(e.Errors))
	for _, he := range e.Errors {
		b.WriteString("\n  " + strings.ReplaceAll(he.Error(), "\n", "\n    "))
	}
	return b.String()
}

// Unwrap lets errors.Is/As see every host's error.
func (e *HostErrors) Unwrap() []error {
	out := make([]error, len(e.Errors))
	for i, he := range e.Errors {
		out[i] = he
	}
	return out
}

// Hosts lists the hosts that failed.
func (e *HostErrors) Hosts() []*deploy.Host {
	out := make([]*deploy.Host, len(e.Errors))
	for i, he := range e.Errors {
		out[i] = he.Host
	}
	return out
}

func (p Parallel) Run(ctx context.Context, hosts []*deploy.Host, fn func(context.Context, *deploy.Host) error) error {
	limit := p.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	return runGroup(ctx, hosts, limit, fn)
}

func (s Sequence) Run(ctx context.Context, hosts []*deploy.Host, fn func(context.Context, *deploy.Host) error) error {
	return Batches{Size: 1, Wait: s.Wait}.Run(ctx, hosts, fn)
}

func (b Batches) Run(ctx context.Context, hosts []*deploy.Host, fn func(context.Context, *deploy.Host) error) error {
	size := b.Size
	if size <= 0 {
		size = 1
	}
	for start := 0; start < len(hosts); start += size {
		if start > 0 && b.Wait > 0 {
			if err := sleep(ctx, b.Wait); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := hosts[start:min(start+size, len(hosts))]
		if err := runGroup(ctx, batch, size, fn); err != nil {
			return err
		}
	}
	return nil
}

// runGroup runs fn on every host with at most limit at once and gathers
// failures in the hosts' order.
func runGroup(ctx context.Context, hosts []*deploy.Host, limit int, fn func(context.Context, *deploy.Host) error) error {
	errs := make([]error, len(hosts))
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i, h := range hosts {
		select {
		case sem <- struct{}{}:
			// The select picks at random when the run was cancelled and a
			// slot is free as well: no host may start once cancelled.
			if err := ctx.Err(); err != nil {
				<-sem
				errs[i] = err
				continue
			}
		case <-ctx.Done():
			errs[i] = ctx.Err()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(ctx, h)
		}()
	}
	wg.Wait()
	var he HostErrors
	for i, err := range errs {
		if err != nil {
			he.Errors = append(he.Errors, &HostError{Host: hosts[i], Err: err})
		}
	}
	if len(he.Errors) == 0 {
		return nil
	}
	return &he
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
