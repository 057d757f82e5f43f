package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/davit-deploy/davit/deploy"
)

func hosts(n int) []*deploy.Host {
	hs := make([]*deploy.Host, n)
	for i := range hs {
		hs[i] = &deploy.Host{Name: fmt.Sprintf("h%d", i)}
	}
	return hs
}

// recorder notes, for each call, which host started when, and the most
// hosts that were in fn at once.
type recorder struct {
	mu      sync.Mutex
	running int
	peak    int
	started []string
	at      map[string]time.Duration
	start   time.Time
}

func newRecorder() *recorder { return &recorder{at: map[string]time.Duration{}, start: time.Now()} }

// fn works for d, failing on the hosts named in fail.
func (r *recorder) fn(d time.Duration, fail ...string) func(context.Context, *deploy.Host) error {
	return func(ctx context.Context, h *deploy.Host) error {
		r.mu.Lock()
		r.running++
		r.peak = max(r.peak, r.running)
		r.started = append(r.started, h.Name)
		r.at[h.Name] = time.Since(r.start)
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			r.running--
			r.mu.Unlock()
		}()
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
		if slices.Contains(fail, h.Name) {
			return fmt.Errorf("boom on %s", h.Name)
		}
		return nil
	}
}

func failedHosts(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var he *HostErrors
	if !errors.As(err, &he) {
		t.Fatalf("error %v is not *HostErrors", err)
	}
	var n []string
	for _, h := range he.Hosts() {
		n = append(n, h.Name)
	}
	return n
}

func TestParallelLimit(t *testing.T) {
	for _, tc := range []struct{ limit, hosts, wantPeak int }{
		{1, 5, 1}, {3, 10, 3}, {10, 4, 4}, {0, 50, DefaultLimit}, {-1, 40, DefaultLimit},
	} {
		synctest.Test(t, func(t *testing.T) {
			r := newRecorder()
			err := Parallel{Limit: tc.limit}.Run(t.Context(), hosts(tc.hosts), r.fn(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if r.peak != tc.wantPeak || len(r.started) != tc.hosts {
				t.Errorf("limit %d, %d hosts: peak %d (want %d), %d ran", tc.limit, tc.hosts, r.peak, tc.wantPeak, len(r.started))
			}
			// Waves of `limit` hosts: the whole run takes ceil(n/limit) seconds.
			want := time.Duration((tc.hosts+tc.wantPeak-1)/tc.wantPeak) * time.Second
			if d := time.Since(r.start); d != want {
				t.Errorf("took %v, want %v", d, want)
			}
		})
	}
}

// TestParallelRealConcurrency checks the limit with real goroutines and no
// fake clock: hosts really overlap, and never more than the limit.
func TestParallelRealConcurrency(t *testing.T) {
	r := newRecorder()
	if err := (Parallel{Limit: 4}).Run(context.Background(), hosts(20), r.fn(20*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if r.peak != 4 {
		t.Errorf("peak concurrency %d, want 4", r.peak)
	}
}

func TestParallelErrorsEveryHostInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		hs := hosts(6)
		// h4 fails before h1 in time; the error still lists host order.
		fn := func(ctx context.Context, h *deploy.Host) error {
			d := map[string]time.Duration{"h1": 3 * time.Second, "h4": time.Second}[h.Name]
			return r.fn(d, "h1", "h4")(ctx, h)
		}
		err := Parallel{}.Run(t.Context(), hs, fn)
		if got := failedHosts(t, err); !slices.Equal(got, []string{"h1", "h4"}) {
			t.Errorf("failed hosts %q", got)
		}
		if len(r.started) != 6 {
			t.Errorf("one failure stopped other hosts: %d ran", len(r.started))
		}
		want := "2 hosts failed:\n  h1: boom on h1\n  h4: boom on h4"
		if err.Error() != want {
			t.Errorf("Error() =\n%s\nwant\n%s", err, want)
		}
	})
}

func TestHostErrors(t *testing.T) {
	sentinel := errors.New("sentinel")
	one := &HostErrors{Errors: []*HostError{{Host: &deploy.Host{Name: "a", User: "u"}, Err: sentinel}}}
	if one.Error() != "u@a: sentinel" {
		t.Errorf("one error: %q", one.Error())
	}
	multi := &HostErrors{Errors: []*HostError{
		{Host: &deploy.Host{Name: "a"}, Err: errors.New("line1\nline2")},
		{Host: &deploy.Host{Name: "b", Port: 2222}, Err: fmt.Errorf("wrapped: %w", sentinel)},
	}}
	want := "2 hosts failed:\n  a: line1\n    line2\n  b:2222: wrapped: sentinel"
	if multi.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", multi.Error(), want)
	}
	if !errors.Is(multi, sentinel) || !errors.Is(one, sentinel) {
		t.Error("errors.Is does not see a host's error")
	}
	var he *HostError
	if !errors.As(multi, &he) || he.Host.Name != "a" {
		t.Errorf("errors.As HostError = %v", he)
	}
}

func TestSequence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		err := Sequence{Wait: 2 * time.Second}.Run(t.Context(), hosts(4), r.fn(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.started, []string{"h0", "h1", "h2", "h3"}) || r.peak != 1 {
			t.Errorf("order %q, peak %d", r.started, r.peak)
		}
		// Each host works 1s, then the next starts after a 2s wait.
		for i, h := range r.started {
			if want := time.Duration(3*i) * time.Second; r.at[h] != want {
				t.Errorf("%s started at %v, want %v", h, r.at[h], want)
			}
		}
		if d := time.Since(r.start); d != 10*time.Second {
			t.Errorf("took %v, want 10s (no wait after the last host)", d)
		}
	})
}

func TestSequenceStopsAtFirstFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		err := Sequence{}.Run(t.Context(), hosts(5), r.fn(time.Second, "h2", "h3"))
		if got := failedHosts(t, err); !slices.Equal(got, []string{"h2"}) {
			t.Errorf("failed hosts %q", got)
		}
		if !slices.Equal(r.started, []string{"h0", "h1", "h2"}) {
			t.Errorf("ran %q", r.started)
		}
	})
}

func TestBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		err := Batches{Size: 2, Wait: 5 * time.Second}.Run(t.Context(), hosts(5), r.fn(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if r.peak != 2 {
			t.Errorf("peak %d, want 2", r.peak)
		}
		// Batches {h0 h1} at 0s, {h2 h3} at 6s, {h4} at 12s.
		want := map[string]time.Duration{"h0": 0, "h1": 0, "h2": 6 * time.Second, "h3": 6 * time.Second, "h4": 12 * time.Second}
		for h, at := range want {
			if r.at[h] != at {
				t.Errorf("%s started at %v, want %v", h, r.at[h], at)
			}
		}
	})
}

func TestBatchesStopAfterFailedBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		err := Batches{Size: 3}.Run(t.Context(), hosts(9), r.fn(time.Second, "h3", "h5"))
		if got := failedHosts(t, err); !slices.Equal(got, []string{"h3", "h5"}) {
			t.Errorf("failed hosts %q", got)
		}
		slices.Sort(r.started)
		if !slices.Equal(r.started, []string{"h0", "h1", "h2", "h3", "h4", "h5"}) {
			t.Errorf("ran %q: the failed batch must finish, the next must not start", r.started)
		}
	})
	// A size of zero or less means one at a time.
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		if err := (Batches{}).Run(t.Context(), hosts(3), r.fn(time.Second)); err != nil || r.peak != 1 {
			t.Errorf("Batches{}: %v, peak %d", err, r.peak)
		}
	})
}

func TestEmptyHostList(t *testing.T) {
	for _, r := range []Runner{Parallel{}, Sequence{}, Batches{Size: 2}} {
		if err := r.Run(context.Background(), nil, func(context.Context, *deploy.Host) error {
			t.Error("fn called")
			return nil
		}); err != nil {
			t.Errorf("%T: %v", r, err)
		}
	}
}

// TestCancel: once the run's context is cancelled, running hosts see it and
// no further host starts.
func TestCancel(t *testing.T) {
	for _, r := range []Runner{Parallel{Limit: 2}, Sequence{}, Batches{Size: 2}} {
		name := strings.TrimPrefix(fmt.Sprintf("%T", r), "runner.")
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				rec := newRecorder()
				go func() {
					time.Sleep(1500 * time.Millisecond)
					cancel()
				}()
				err := r.Run(ctx, hosts(8), rec.fn(time.Second))
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("error %v, want context.Canceled", err)
				}
				// 1.5s in: Parallel{2} and Batches{2} started h0-h3, Sequence h0-h1.
				want := 4
				if _, ok := r.(Sequence); ok {
					want = 2
				}
				if len(rec.started) != want {
					t.Errorf("%d hosts started (%q), want %d", len(rec.started), rec.started, want)
				}
				if d := time.Since(rec.start); d != 1500*time.Millisecond {
					t.Errorf("returned after %v, want at once on cancel", d)
				}
			})
		})
	}
}

// TestCancelledBeforeStart: no host runs under a context already cancelled.
func TestCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, r := range []Runner{Parallel{}, Parallel{Limit: 1}, Sequence{}, Batches{Size: 3}} {
		for range 50 { // the bug this guards against was a random select
			var called atomic.Bool
			err := r.Run(ctx, hosts(4), func(context.Context, *deploy.Host) error { called.Store(true); return nil })
			if called.Load() || !errors.Is(err, context.Canceled) {
				t.Fatalf("%T: called %v, error %v", r, called.Load(), err)
			}
		}
	}
}

// TestCancelStopsQueuedHosts: a host that finishes frees a slot while the
// run is cancelled; the next host must not start.
func TestCancelStopsQueuedHosts(t *testing.T) {
	for range 100 {
		ctx, cancel := context.WithCancel(context.Background())
		var mu sync.Mutex
		var ran []string
		err := Parallel{Limit: 1}.Run(ctx, hosts(5), func(ctx context.Context, h *deploy.Host) error {
			mu.Lock()
			ran = append(ran, h.Name)
			mu.Unlock()
			cancel() // the first host's work ends with the run cancelled
			return nil
		})
		if len(ran) != 1 {
			t.Fatalf("hosts started after cancel: %q", ran)
		}
		if got := failedHosts(t, err); !slices.Equal(got, []string{"h1", "h2", "h3", "h4"}) {
			t.Fatalf("failed hosts %q", got)
		}
	}
}
