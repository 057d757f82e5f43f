package tasks

import (
	"context"
	"slices"
	"sync"
	"testing"

	"os/exec"

	"davit/deploy"
	"davit/deploy/backend/local"
	"davit/deploy/output"
)

// recorder is a Sink that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []output.Event
}

func (r *recorder) Emit(ev output.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) all() []output.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) kinds(k output.Kind) []output.Event {
	var out []output.Event
	for _, ev := range r.all() {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

// localHosts makes hosts that all run on this machine through the local
// backend, so multi-host behaviour is tested with real commands.
func localHosts(names ...string) []*deploy.Host {
	var hs []*deploy.Host
	for _, n := range names {
		hs = append(hs, &deploy.Host{Name: n, Backend: "local", Roles: []string{"app"}})
	}
	return hs
}

func newExecutor(t *testing.T, hosts []*deploy.Host) (*Executor, *recorder) {
	t.Helper()
	dir := t.TempDir()
	pool := deploy.NewPool(func(ctx context.Context, h *deploy.Host) (deploy.Backend, error) {
		return local.New(dir), nil
	})
	t.Cleanup(func() { pool.Close() })
	rec := &recorder{}
	return &Executor{
		Registry: NewRegistry(),
		Vars:     NewVars(),
		Hosts:    hosts,
		Pool:     pool,
		Local:    local.New(dir),
		Sink:     rec,
	}, rec
}

// define registers a task that appends its name to *log.
func define(t *testing.T, r *Registry, log *[]string, mu *sync.Mutex, name string) {
	t.Helper()
	err := r.Define(&Task{Name: name, Run: func(*Context) error {
		mu.Lock()
		defer mu.Unlock()
		*log = append(*log, name)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
}

func execCommand(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }
