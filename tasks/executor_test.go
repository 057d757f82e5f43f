package tasks

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/davit-deploy/davit/deploy/output"
)

func TestHooksOrder(t *testing.T) {
	ex, rec := newExecutor(t, nil)
	r := ex.Registry
	var log []string
	var mu sync.Mutex
	for _, n := range []string{"deploy", "check", "lock", "notify", "cleanup", "check:git"} {
		define(t, r, &log, &mu, n)
	}
	// Hooks may be declared before their tasks exist; order of
	// declaration is order of running.
	must(t, r.Before("deploy", "check", Position{File: "Deployfile", Line: 3, Col: 1}))
	must(t, r.Before("deploy", "lock", Position{}))
	must(t, r.After("deploy", "notify", Position{}))
	must(t, r.After("deploy", "cleanup", Position{}))
	must(t, r.Before("check", "check:git", Position{}))
	if err := ex.Invoke(context.Background(), "deploy"); err != nil {
		t.Fatal(err)
	}
	want := []string{"check:git", "check", "lock", "deploy", "notify", "cleanup"}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("ran %v, want %v", log, want)
	}
	var starts []string
	for _, ev := range rec.Of(output.TaskStart) {
		starts = append(starts, ev.Task)
	}
	if !reflect.DeepEqual(starts, want) {
		t.Errorf("TaskStart events %v, want %v", starts, want)
	}
	if n := len(rec.Of(output.TaskEnd)); n != len(want) {
		t.Errorf("%d TaskEnd events, want %d", n, len(want))
	}
}

func TestRunOnceAndReinvoke(t *testing.T) {
	ex, _ := newExecutor(t, nil)
	r := ex.Registry
	var log []string
	var mu sync.Mutex
	define(t, r, &log, &mu, "a")
	define(t, r, &log, &mu, "b")
	define(t, r, &log, &mu, "shared")
	must(t, r.Before("a", "shared", Position{}))
	must(t, r.Before("b", "shared", Position{}))
	ctx := context.Background()
	for _, n := range []string{"a", "b", "a"} {
		if err := ex.Invoke(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"shared", "a", "b"}; !reflect.DeepEqual(log, want) {
		t.Fatalf("after invokes ran %v, want %v", log, want)
	}
	// Reinvoke runs the body again, not the hooks that already ran.
	if err := ex.Reinvoke(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"shared", "a", "b", "a"}; !reflect.DeepEqual(log, want) {
		t.Fatalf("after reinvoke ran %v, want %v", log, want)
	}
}

func TestInvokeFromBody(t *testing.T) {
	ex, _ := newExecutor(t, nil)
	var log []string
	var mu sync.Mutex
	define(t, ex.Registry, &log, &mu, "inner")
	must(t, ex.Registry.Define(&Task{Name: "outer", Run: func(c *Context) error {
		if err := c.Invoke("inner"); err != nil {
			return err
		}
		if err := c.Invoke("inner"); err != nil { // no-op
			return err
		}
		return c.Reinvoke("inner")
	}}))
	must(t, ex.Invoke(context.Background(), "outer"))
	if want := []string{"inner", "inner"}; !reflect.DeepEqual(log, want) {
		t.Fatalf("ran %v, want %v", log, want)
	}
	// A body that reinvokes its own task would recurse forever.
	must(t, ex.Registry.Define(&Task{Name: "loop", Run: func(c *Context) error { return c.Reinvoke("loop") }}))
	err := ex.Invoke(context.Background(), "loop")
	if err == nil || !strings.Contains(err.Error(), "task loop invokes itself: loop -> loop") {
		t.Fatalf("got %v", err)
	}
}

func TestHookCycle(t *testing.T) {
	ex, _ := newExecutor(t, nil)
	r := ex.Registry
	var log []string
	var mu sync.Mutex
	for _, n := range []string{"a", "b", "c"} {
		define(t, r, &log, &mu, n)
	}
	must(t, r.Before("a", "b", Position{File: "Deployfile", Line: 1, Col: 1}))
	must(t, r.After("b", "c", Position{File: "Deployfile", Line: 2, Col: 1}))
	must(t, r.Before("c", "a", Position{File: "Deployfile", Line: 3, Col: 1}))
	err := ex.Invoke(context.Background(), "a")
	if err == nil {
		t.Fatal("cycle not detected")
	}
	for _, want := range []string{"hook cycle: a -> b -> c -> a", "before Deployfile:1:1", "after Deployfile:2:1", "before Deployfile:3:1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if len(log) != 0 {
		t.Errorf("tasks ran despite the cycle: %v", log)
	}
	if err := r.Before("x", "x", Position{}); err == nil {
		t.Error("a task hooking itself was accepted")
	}
}

func TestUnknownHookAndDidYouMean(t *testing.T) {
	ex, _ := newExecutor(t, nil)
	r := ex.Registry
	var log []string
	var mu sync.Mutex
	define(t, r, &log, &mu, "deploy")
	define(t, r, &log, &mu, "deploy:check")
	must(t, r.After("deploy", "deploy:chek", Position{File: "Deployfile", Line: 7, Col: 1}))
	err := ex.Invoke(context.Background(), "deploy")
	want := `after hook of task deploy at Deployfile:7:1: unknown task "deploy:chek" (did you mean deploy:check?)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if len(log) != 0 {
		t.Errorf("deploy ran although its hook is unknown: %v", log)
	}
	_, err = r.Lookup("deplyo")
	var ute *UnknownTaskError
	if !errors.As(err, &ute) || ute.Suggestion != "deploy" {
		t.Fatalf("Lookup(deplyo) = %v", err)
	}
	if _, err := r.Lookup("zzzzzzzzzz"); err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Errorf("unrelated name got a suggestion: %v", err)
	}
	names := []string{}
	for _, tk := range r.List() {
		names = append(names, tk.Name)
	}
	if want := []string{"deploy", "deploy:check"}; !reflect.DeepEqual(names, want) {
		t.Errorf("List = %v", names)
	}
}

func TestRedefineWins(t *testing.T) {
	ex, _ := newExecutor(t, nil)
	r := ex.Registry
	var got string
	must(t, r.Define(&Task{Name: "x", Run: func(*Context) error { got = "recipe"; return nil }}))
	must(t, r.Define(&Task{Name: "x", Run: func(*Context) error { got = "deployfile"; return nil }}))
	must(t, ex.Invoke(context.Background(), "x"))
	if got != "deployfile" {
		t.Fatalf("ran the %s definition", got)
	}
}

func TestTaskErrorAndPanic(t *testing.T) {
	ex, rec := newExecutor(t, nil)
	must(t, ex.Registry.Define(&Task{Name: "boom", Run: func(*Context) error { return errors.New("kaput") }}))
	must(t, ex.Registry.Define(&Task{Name: "wrapper", Run: func(c *Context) error { return c.Invoke("boom") }}))
	must(t, ex.Registry.Define(&Task{Name: "panics", Run: func(*Context) error { panic("oops") }}))
	err := ex.Invoke(context.Background(), "wrapper")
	if err == nil || err.Error() != "task boom failed: kaput" {
		t.Fatalf("got %v", err)
	}
	ends := rec.Of(output.TaskEnd)
	if len(ends) != 2 || ends[0].Error != "kaput" || ends[1].Task != "wrapper" {
		t.Errorf("TaskEnd events %+v", ends)
	}
	err = ex.Invoke(context.Background(), "panics")
	if err == nil || !strings.HasPrefix(err.Error(), "task panics failed: panic: oops") {
		t.Fatalf("got %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
