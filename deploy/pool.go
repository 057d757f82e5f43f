package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

var errPoolClosed = errors.New("connection pool is closed")

// Connect opens a backend for a host.
type Connect func(ctx context.Context, h *Host) (Backend, error)

// Pool hands out one backend per host for the whole run, so every command of
// every task on a host reuses the same connection.
type Pool struct {
	connect Connect
	mu      sync.Mutex
	conns   map[string]*poolEntry
	opened  []string // hosts connected, in the order they connected
	closed  bool
}

type poolEntry struct {
	once sync.Once
	b    Backend
	err  error
}

// NewPool returns a pool that opens backends with connect.
func NewPool(connect Connect) *Pool {
	return &Pool{connect: connect, conns: map[string]*poolEntry{}}
}

// Get returns the host's backend, connecting on first use. Concurrent
// callers for one host share a single connection attempt. A failed attempt
// is remembered for the run, so a host that is down is reported once, not
// retried by every task.
func (p *Pool) Get(ctx context.Context, h *Host) (Backend, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errPoolClosed
	}
	e, ok := p.conns[h.Key()]
	if !ok {
		e = &poolEntry{}
		p.conns[h.Key()] = e
	}
	p.mu.Unlock()
	e.once.Do(func() {
		e.b, e.err = p.connect(ctx, h)
		if e.err != nil {
			e.err = fmt.Errorf("connect %s: %w", h, e.err)
			return
		}
		p.mu.Lock()
		p.opened = append(p.opened, h.Key())
		p.mu.Unlock()
	})
	return e.b, e.err
}

// Close closes every backend the pool opened.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	entries := p.conns
	p.conns = map[string]*poolEntry{}
	p.mu.Unlock()
	var errs []error
	for _, e := range entries {
		// Wait for a connect in flight, then close what it produced. A Get
		// that found the entry but has not started connecting yet gets an
		// error instead of a nil backend.
		e.once.Do(func() { e.err = errPoolClosed })
		if e.b != nil {
			errs = append(errs, e.b.Close())
		}
	}
	return errors.Join(errs...)
}

// Opened lists the hosts (by Key) the pool connected to, in the order it
// did, even after Close: after an interrupted run, the hosts where
// something may have been left running or half done.
func (p *Pool) Opened() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.opened)
}
