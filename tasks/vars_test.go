package tasks

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLazyComputedOnceConcurrently(t *testing.T) {
	v := NewVars()
	var calls atomic.Int32
	start := make(chan struct{})
	v.SetLazy("revision", func() (any, error) {
		calls.Add(1)
		<-start // hold every fetcher on the one computation
		return []string{"abc"}, nil
	})
	var wg sync.WaitGroup
	results := make([]any, 50)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			val, err := v.Fetch("revision")
			if err != nil {
				t.Error(err)
			}
			results[i] = val
		}()
	}
	close(start)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("lazy value computed %d times", n)
	}
	for _, r := range results {
		if !reflect.DeepEqual(r, []string{"abc"}) {
			t.Fatalf("got %v", r)
		}
	}
}

func TestLazyErrorAndDefault(t *testing.T) {
	v := NewVars()
	v.Set("broken", Lazy(func() (any, error) { return nil, errors.New("no network") }), Position{File: "Deployfile", Line: 4, Col: 1})
	_, err := v.Fetch("broken")
	if err == nil || err.Error() != "variable broken (set at Deployfile:4:1): no network" {
		t.Fatalf("got %v", err)
	}
	v.SetDefault("keep_releases", 5, Position{})
	v.SetDefault("keep_releases", 9, Position{})
	if n, _ := v.FetchInt("keep_releases"); n != 5 {
		t.Errorf("default replaced: %d", n)
	}
	v.Set("keep_releases", 3, Position{})
	if n, _ := v.FetchInt("keep_releases"); n != 3 {
		t.Errorf("set did not replace default: %d", n)
	}
	if val, err := v.FetchOr("nope", "fallback"); err != nil || val != "fallback" {
		t.Errorf("FetchOr = %v, %v", val, err)
	}
}

func TestOverridesWin(t *testing.T) {
	v := NewVars()
	v.Override("branch", "hotfix")
	v.Override("keep_releases", "7")
	v.Override("verbose", "yes")
	v.Set("branch", "main", Position{})
	v.SetLazy("keep_releases", func() (any, error) { t.Error("overridden lazy value computed"); return 1, nil })
	if s, _ := v.FetchString("branch"); s != "hotfix" {
		t.Errorf("branch = %q", s)
	}
	if n, err := v.FetchInt("keep_releases"); err != nil || n != 7 {
		t.Errorf("keep_releases = %d, %v", n, err)
	}
	if b, err := v.FetchBool("verbose"); err != nil || !b {
		t.Errorf("verbose = %v, %v", b, err)
	}
	v.Override("dirs", "log, tmp/pids")
	if l, _ := v.FetchStrings("dirs"); !reflect.DeepEqual(l, []string{"log", "tmp/pids"}) {
		t.Errorf("dirs = %q", l)
	}
}

func TestUnknownVariableSuggests(t *testing.T) {
	v := NewVars()
	v.Set("deploy_to", "/srv/app", Position{})
	v.Set("application", "payroll", Position{})
	_, err := v.Fetch("deploy_too")
	var uve *UnknownVariableError
	if !errors.As(err, &uve) || err.Error() != `unknown variable "deploy_too" (did you mean deploy_to?)` {
		t.Fatalf("got %v", err)
	}
}

func TestSecretValues(t *testing.T) {
	v := NewVars()
	v.Set("db_password", "hunter2", Position{})
	v.Set("API_TOKEN", "tok-123", Position{})
	v.Set("plain", "visible", Position{})
	v.Set("license", "lic-xyz", Position{})
	v.MarkSecret("license")
	v.Override("aws_secret_key", "AKIA-override")
	v.Set("keys", []any{"k1", "k2"}, Position{})
	v.MarkSecret("keys")
	var forced atomic.Bool
	v.SetLazy("session_secret", func() (any, error) { forced.Store(true); return "lazy-s3cret", nil })

	want := []string{"AKIA-override", "hunter2", "k1", "k2", "lic-xyz", "tok-123"}
	if got := v.SecretValues(); !reflect.DeepEqual(got, want) {
		t.Fatalf("SecretValues = %q, want %q", got, want)
	}
	if forced.Load() {
		t.Fatal("SecretValues forced a lazy value")
	}
	if _, err := v.Fetch("session_secret"); err != nil {
		t.Fatal(err)
	}
	if got := v.SecretValues(); !reflect.DeepEqual(got, []string{"AKIA-override", "hunter2", "k1", "k2", "lazy-s3cret", "lic-xyz", "tok-123"}) {
		t.Fatalf("after fetch SecretValues = %q", got)
	}
	if !v.IsSecret("GitHub_Token") || v.IsSecret("plain") {
		t.Error("IsSecret by name is wrong")
	}
}

// chained makes a LazyChain that fetches each of deps in turn, with the
// chain it was given, and returns their values joined.
func chained(v *Vars, deps ...string) LazyChain {
	return func(chain []string) (any, error) {
		out := ""
		for _, d := range deps {
			val, err := v.FetchChain(chain, d)
			if err != nil {
				return nil, err
			}
			out += fmt.Sprint(val)
		}
		return out, nil
	}
}

func TestLazyChainCycle(t *testing.T) {
	v := NewVars()
	v.Set("a", chained(v, "b"), Position{})
	v.Set("b", chained(v, "c"), Position{})
	v.Set("c", chained(v, "a"), Position{})
	_, err := v.Fetch("a")
	var ce *CycleError
	if !errors.As(err, &ce) || !reflect.DeepEqual(ce.Chain, []string{"a", "b", "c", "a"}) {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), "variable cycle: a -> b -> c -> a") {
		t.Errorf("message: %v", err)
	}
}

// A cycle whose halves are computed by different goroutines would deadlock
// on the two sync.Onces; the wait graph makes one of them an error, which
// then reaches both.
func TestLazyChainCycleAcrossGoroutines(t *testing.T) {
	v := NewVars()
	var started sync.WaitGroup
	started.Add(2)
	hold := func(next string) LazyChain {
		return func(chain []string) (any, error) {
			started.Done()
			started.Wait() // both computations are under way before either fetches
			return v.FetchChain(chain, next)
		}
	}
	v.Set("a", hold("b"), Position{})
	v.Set("b", hold("a"), Position{})
	errs := make(chan error, 2)
	for _, name := range []string{"a", "b"} {
		go func() {
			_, err := v.Fetch(name)
			errs <- err
		}()
	}
	for range 2 {
		select {
		case err := <-errs:
			var ce *CycleError
			if !errors.As(err, &ce) {
				t.Fatalf("want a cycle error, got %v", err)
			}
			if c := strings.Join(ce.Chain, " -> "); c != "a -> b -> a" && c != "b -> a -> b" {
				t.Errorf("chain %s", c)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("deadlock: the cycle across goroutines was not detected")
		}
	}
}

// Many goroutines fetching overlapping chains of lazy values that wait for
// each other get the values and no false cycle, and leave no wait behind.
func TestLazyChainConcurrentOverlap(t *testing.T) {
	v := NewVars()
	v.Set("base", "x", Position{})
	const n = 12
	for i := range n {
		deps := []string{"base"}
		if i > 0 {
			deps = append(deps, fmt.Sprintf("v%d", i-1))
		}
		if i > 2 {
			deps = append(deps, fmt.Sprintf("v%d", i-3))
		}
		v.Set(fmt.Sprintf("v%d", i), chained(v, deps...), Position{})
	}
	var wg sync.WaitGroup
	results := make([]any, 8*n)
	errs := make([]error, len(results))
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = v.Fetch(fmt.Sprintf("v%d", n-1-i%n))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		want, _ := v.Fetch(fmt.Sprintf("v%d", n-1-i%n))
		if results[i] != want || want == "" {
			t.Fatalf("fetch %d = %v, want %v", i, results[i], want)
		}
	}
	if len(v.waits.edges) != 0 {
		t.Errorf("waits left behind: %v", v.waits.edges)
	}
}

func TestAddSecretValue(t *testing.T) {
	v := NewVars()
	v.AddSecretValue("from-env")
	v.AddSecretValue("")
	v.Set("db_password", "hunter2", Position{})
	if got := v.SecretValues(); !reflect.DeepEqual(got, []string{"from-env", "hunter2"}) {
		t.Errorf("SecretValues = %q", got)
	}
	if !LooksSecret("DEPLOY_TOKEN") || LooksSecret("DEPLOY_BRANCH") {
		t.Error("LooksSecret is wrong")
	}
}

// Durations are seconds (numbers, or strings of them as overrides come)
// or Go duration strings, read the same way by every recipe.
func TestFetchDuration(t *testing.T) {
	v := NewVars()
	for name, val := range map[string]any{"int": 3, "float": 0.5, "str": " 2 ", "go": "1m30s", "empty": "", "unset": nil, "bad": "soon", "list": []any{1}} {
		v.Set(name, val, Position{})
	}
	for name, want := range map[string]time.Duration{"int": 3 * time.Second, "float": 500 * time.Millisecond, "str": 2 * time.Second, "go": 90 * time.Second, "empty": 0, "unset": 0} {
		if d, err := v.FetchDuration(name); err != nil || d != want {
			t.Errorf("%s: %v, %v; want %v", name, d, err, want)
		}
	}
	if _, err := v.FetchDuration("bad"); err == nil || err.Error() != `bad "soon": want seconds or a duration like 90s` {
		t.Errorf("bad: %v", err)
	}
	if _, err := v.FetchDuration("list"); err == nil || !strings.Contains(err.Error(), "list is []interface {}; want seconds or a duration") {
		t.Errorf("list: %v", err)
	}
	if _, err := Duration("often"); err == nil || !strings.Contains(err.Error(), `"often" is not a duration`) {
		t.Errorf("Duration(often): %v", err)
	}
}
