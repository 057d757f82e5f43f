package tasks

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy/output"
)

// joiner records each group it runs ("a+b+c") and each task body that ran
// on its own ("a"), in one log.
type joiner struct {
	mu   sync.Mutex
	log  []string
	fail string        // a task whose work fails
	gate chan struct{} // if set, RunCombined waits for it
}

func (j *joiner) add(s string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.log = append(j.log, s)
}

func (j *joiner) got() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.log)
}

func (j *joiner) RunCombined(c *Context, group []*Task) error {
	if j.gate != nil {
		<-j.gate
	}
	var names []string
	for _, t := range group {
		names = append(names, t.Name)
	}
	j.add(strings.Join(names, "+"))
	for _, t := range group {
		if t.Name == j.fail {
			return &TaskError{Task: t.Name, Err: errors.New("broken")}
		}
	}
	return nil
}

// sequenceRegistry defines a, b, c with j as their Combiner and d
// without, each body logging its name.
func sequenceRegistry(t *testing.T, j *joiner) *Executor {
	t.Helper()
	ex, _ := newExecutor(t, nil)
	for _, name := range []string{"a", "b", "c", "d", "h1", "h2"} {
		task := &Task{Name: name, Run: func(*Context) error { j.add(name); return nil }}
		if name == "a" || name == "b" || name == "c" {
			task.Combine = j
		}
		if err := ex.Registry.Define(task); err != nil {
			t.Fatal(err)
		}
	}
	return ex
}

func invokeSequence(t *testing.T, ex *Executor, names ...string) error {
	t.Helper()
	return NewContext(t.Context(), ex, &Task{Name: "parent"}).InvokeSequence(names...)
}

// Consecutive tasks sharing a Combiner run as one group; the others run
// their own bodies; the grouped ones count as run and emit their events.
func TestInvokeSequenceGroups(t *testing.T) {
	j := &joiner{}
	ex := sequenceRegistry(t, j)
	rec := &recorder{}
	ex.Sink = rec
	if err := invokeSequence(t, ex, "d", "a", "b", "c", "d"); err != nil {
		t.Fatal(err)
	}
	if got, want := j.got(), []string{"d", "a+b+c"}; !slices.Equal(got, want) {
		t.Errorf("ran %q, want %q", got, want)
	}
	for _, name := range []string{"a", "b", "c"} {
		if err := ex.Invoke(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	}
	if got := j.got(); len(got) != 2 {
		t.Errorf("invoking a grouped task again ran it: %q", got)
	}
	var events []string
	for _, ev := range rec.Events() {
		events = append(events, fmt.Sprintf("%s %s", ev.Kind, ev.Task))
	}
	want := []string{"task_start d", "task_end d", "task_start a", "task_start b", "task_start c", "task_end a", "task_end b", "task_end c"}
	if !slices.Equal(events, want) {
		t.Errorf("events %q, want %q", events, want)
	}

	// Invoked alone, a task with a Combiner does its own work.
	j2 := &joiner{}
	ex2 := sequenceRegistry(t, j2)
	if err := ex2.Invoke(t.Context(), "b"); err != nil {
		t.Fatal(err)
	}
	if err := invokeSequence(t, ex2, "a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	// b already ran, so it ends a's group and starts none: a alone, c alone.
	if got, want := j2.got(), []string{"b", "a", "c"}; !slices.Equal(got, want) {
		t.Errorf("ran %q, want %q", got, want)
	}
}

// A hook at a boundary inside a group splits it there, and runs in its
// place; hooks at the group's ends run before and after the group.
func TestInvokeSequenceHooksSplit(t *testing.T) {
	for _, tc := range []struct {
		name string
		hook func(r *Registry) error
		want []string
	}{
		{"after a", func(r *Registry) error { return r.After("a", "h1", Position{}) }, []string{"a", "h1", "b+c"}},
		{"before c", func(r *Registry) error { return r.Before("c", "h1", Position{}) }, []string{"a+b", "h1", "c"}},
		{"at the ends", func(r *Registry) error {
			if err := r.Before("a", "h1", Position{}); err != nil {
				return err
			}
			return r.After("c", "h2", Position{})
		}, []string{"h1", "a+b+c", "h2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := &joiner{}
			ex := sequenceRegistry(t, j)
			if err := tc.hook(ex.Registry); err != nil {
				t.Fatal(err)
			}
			if err := invokeSequence(t, ex, "a", "b", "c"); err != nil {
				t.Fatal(err)
			}
			if got := j.got(); !slices.Equal(got, tc.want) {
				t.Errorf("ran %q, want %q", got, tc.want)
			}
		})
	}
}

// A task defined again (a Deployfile's override) has no Combiner: it runs
// its own body and breaks the group in two.
func TestInvokeSequenceRedefinedTaskBreaksGroup(t *testing.T) {
	j := &joiner{}
	ex := sequenceRegistry(t, j)
	if err := ex.Registry.Define(&Task{Name: "b", Run: func(*Context) error { j.add("my b"); return nil }}); err != nil {
		t.Fatal(err)
	}
	if err := invokeSequence(t, ex, "a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	if got, want := j.got(), []string{"a", "my b", "c"}; !slices.Equal(got, want) {
		t.Errorf("ran %q, want %q", got, want)
	}
}

// A failure in the group belongs to the task it names: the tasks before
// it ran, it failed, the ones after it never ran and may run later; the
// sequence stops.
func TestInvokeSequenceFailure(t *testing.T) {
	j := &joiner{fail: "b"}
	ex := sequenceRegistry(t, j)
	err := invokeSequence(t, ex, "a", "b", "c", "d")
	var te *TaskError
	if !errors.As(err, &te) || te.Task != "b" {
		t.Fatalf("error %v, want task b's", err)
	}
	if err := ex.Invoke(t.Context(), "a"); err != nil {
		t.Errorf("a: %v", err)
	}
	if err := ex.Invoke(t.Context(), "b"); err == nil {
		t.Error("b succeeded when invoked again; it failed")
	}
	if err := ex.Invoke(t.Context(), "c"); err != nil {
		t.Fatal(err)
	}
	if got, want := j.got(), []string{"a+b+c", "c"}; !slices.Equal(got, want) {
		t.Errorf("ran %q, want %q (d never, c afresh)", got, want)
	}
}

// An invoke of a grouped task from another goroutine while the group runs
// waits for the group to end and does not run the task again.
func TestInvokeSequenceConcurrentInvokeWaits(t *testing.T) {
	j := &joiner{gate: make(chan struct{})}
	ex := sequenceRegistry(t, j)
	seqDone := make(chan error, 1)
	go func() { seqDone <- invokeSequence(t, ex, "a", "b", "c") }()
	// Wait until the group has claimed its tasks.
	for !ex.hasRun("c") {
		time.Sleep(time.Millisecond)
	}
	invDone := make(chan error, 1)
	go func() { invDone <- ex.Invoke(t.Context(), "b") }()
	select {
	case err := <-invDone:
		t.Fatalf("invoke of b returned (%v) while its group was still running", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(j.gate)
	if err := <-seqDone; err != nil {
		t.Fatal(err)
	}
	if err := <-invDone; err != nil {
		t.Fatal(err)
	}
	if got, want := j.got(), []string{"a+b+c"}; !slices.Equal(got, want) {
		t.Errorf("ran %q, want %q", got, want)
	}
}

// The events of a failed group: task_end with the error for the failing
// task, "not run" for those after it.
func TestInvokeSequenceFailureEvents(t *testing.T) {
	j := &joiner{fail: "b"}
	ex := sequenceRegistry(t, j)
	rec := &recorder{}
	ex.Sink = rec
	_ = invokeSequence(t, ex, "a", "b", "c")
	var ends []string
	for _, ev := range rec.Of(output.TaskEnd) {
		ends = append(ends, ev.Task+": "+ev.Error)
	}
	want := []string{"a: ", "b: task b failed: broken", "c: not run: b failed"}
	if !slices.Equal(ends, want) {
		t.Errorf("task_end events %q, want %q", ends, want)
	}
}
