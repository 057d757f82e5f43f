package tasks

import (
	"context"
	"sync"
	"testing"

	"os/exec"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/backend/local"
	"github.com/davit-deploy/davit/deploy/output/outputtest"
)

// recorder keeps every event of a run.
type recorder struct{ outputtest.Recorder }

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
