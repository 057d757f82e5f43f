package tasks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/output"
)

// TestDeriveKeepsEveryField fails when a field is added to Executor and
// Derive forgets it (as the deploy recipe's own copy once dropped LocalDir).
func TestDeriveKeepsEveryField(t *testing.T) {
	ex, _ := newExecutor(t, localHosts("a", "b", "c"))
	ex.Inventory = &deploy.Inventory{Declared: 3}
	ex.Filter = deploy.Filter{Roles: []string{"app"}}
	ex.LocalDir = t.TempDir()
	ex.DefaultParallel = 3
	ex.Prompter = &fakePrompter{}
	ex.DryRun = true
	d := ex.Derive(ex.Hosts[1:2])
	v, dv := reflect.ValueOf(ex).Elem(), reflect.ValueOf(d).Elem()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() || f.Name == "Filter" {
			continue
		}
		if v.Field(i).IsZero() {
			t.Errorf("test gives Executor.%s no value: set one so Derive is checked for it", f.Name)
		}
		if !reflect.DeepEqual(v.Field(i).Interface(), dv.Field(i).Interface()) {
			t.Errorf("Derive dropped Executor.%s", f.Name)
		}
	}
	if got := d.Filter.Apply(ex.Hosts); len(got) != 1 || got[0].Name != "b" {
		t.Errorf("derived executor sees %v; want only b", got)
	}
	// Narrowing keeps the parent's filter: a host the parent filters out
	// stays out.
	ex.Filter = deploy.Filter{Hosts: []string{"a"}}
	if got := ex.Derive(ex.Hosts).Filter.Apply(ex.Hosts); len(got) != 1 || got[0].Name != "a" {
		t.Errorf("derived from a filtered executor sees %v; want only a", got)
	}
	if got := ex.Derive(nil).Filter.Apply(ex.Hosts); len(got) != 0 {
		t.Errorf("derived for no hosts sees %v", got)
	}
}

// A derived executor runs tasks afresh but shares the run's Ask answers,
// its command ids and its LocalDir.
func TestDeriveSharesAnswersAndIDs(t *testing.T) {
	ex, rec := newExecutor(t, localHosts("a", "b"))
	p := &fakePrompter{}
	ex.Prompter = p
	ex.LocalDir = t.TempDir()
	if err := os.WriteFile(filepath.Join(ex.LocalDir, "payload"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "payload")
	ran := 0
	must(t, ex.Registry.Define(&Task{Name: "step", Run: func(c *Context) error {
		ran++
		if _, err := c.Ask("color", "", "", false); err != nil {
			return err
		}
		return c.On(c.Executor.Hosts, nil, func(h *HostContext) error {
			if err := h.UploadFile("payload", dest, 0o644); err != nil {
				return err
			}
			return h.Execute([]string{"true"}, CommandOptions{})
		})
	}}))
	ctx := context.Background()
	for _, hosts := range [][]*deploy.Host{ex.Hosts[:1], ex.Hosts[1:]} {
		if err := ex.Derive(hosts).Invoke(ctx, "step"); err != nil {
			t.Fatal(err)
		}
	}
	if ran != 2 {
		t.Errorf("step ran %d times; want once per derived executor", ran)
	}
	if p.calls.Load() != 1 {
		t.Errorf("asked %d times; want once for the whole run", p.calls.Load())
	}
	ids := map[uint64]bool{}
	for _, ev := range rec.Of(output.CommandStart) {
		if ids[ev.ID] {
			t.Errorf("command id %d used twice", ev.ID)
		}
		ids[ev.ID] = true
	}
	if len(ids) != 4 { // two uploads, two commands
		t.Errorf("%d commands; want 4", len(ids))
	}
}

// An invoke of a task that another goroutine is running waits for it to
// end, and gets its error.
func TestInvokeWaitsForARunningTask(t *testing.T) {
	ex, _ := newExecutor(t, nil)
	started, release := make(chan struct{}), make(chan struct{})
	var done atomic.Bool
	must(t, ex.Registry.Define(&Task{Name: "slow", Run: func(*Context) error {
		close(started)
		<-release
		done.Store(true)
		return errors.New("slow broke")
	}}))
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- ex.Invoke(ctx, "slow") }()
	<-started
	second := make(chan error, 1)
	go func() { second <- ex.Invoke(ctx, "slow") }()
	select {
	case err := <-second:
		t.Fatalf("second invoke returned while the task was running: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-second; err == nil || !strings.Contains(err.Error(), "slow broke") || !done.Load() {
		t.Errorf("second invoke = %v (task done: %v); want the task's own error after it ended", err, done.Load())
	}
	<-first

	// Waiting is cancellable.
	ex2, _ := newExecutor(t, nil)
	block := make(chan struct{})
	defer close(block)
	running := make(chan struct{})
	must(t, ex2.Registry.Define(&Task{Name: "stuck", Run: func(*Context) error { close(running); <-block; return nil }}))
	go ex2.Invoke(ctx, "stuck")
	<-running
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := ex2.Invoke(cctx, "stuck"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled wait = %v", err)
	}
}

func TestDryRunIsVisibleToTasks(t *testing.T) {
	for _, dry := range []bool{false, true} {
		ex, _ := newExecutor(t, nil)
		ex.DryRun = dry
		var saw bool
		must(t, ex.Registry.Define(&Task{Name: "api", Run: func(c *Context) error { saw = c.DryRun(); return nil }}))
		if err := ex.Invoke(context.Background(), "api"); err != nil {
			t.Fatal(err)
		}
		if saw != dry {
			t.Errorf("DryRun() = %v in a run with DryRun %v", saw, dry)
		}
	}
}
