// Package outputtest helps tests observe what a run reports.
package outputtest

import (
	"slices"
	"sync"

	"github.com/davit-deploy/davit/deploy/output"
)

// Recorder is an output.Sink that keeps every event, safe for the
// concurrent emits of many hosts.
type Recorder struct {
	mu     sync.Mutex
	events []output.Event
}

// Emit implements output.Sink.
func (r *Recorder) Emit(ev output.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

// Events returns a copy of every event so far, in emit order.
func (r *Recorder) Events() []output.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Of returns the events of one kind, in emit order.
func (r *Recorder) Of(k output.Kind) []output.Event {
	var out []output.Event
	for _, ev := range r.Events() {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}
