package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeBackend counts Close calls; Run and the transfers are not used here.
type fakeBackend struct {
	name   string
	closed atomic.Int32
}

func (f *fakeBackend) Run(context.Context, *Command, io.Writer, io.Writer) (*Result, error) {
	return &Result{}, nil
}
func (f *fakeBackend) Upload(context.Context, io.Reader, string, fs.FileMode) error { return nil }
func (f *fakeBackend) Download(context.Context, string, io.Writer) error            { return nil }
func (f *fakeBackend) Close() error                                                 { f.closed.Add(1); return nil }

func TestPoolOneConnectPerHost(t *testing.T) {
	var mu sync.Mutex
	connects := map[string]int{}
	opened := map[string]*fakeBackend{}
	pool := NewPool(func(ctx context.Context, h *Host) (Backend, error) {
		time.Sleep(5 * time.Millisecond) // widen the window for duplicates
		mu.Lock()
		defer mu.Unlock()
		connects[h.Key()]++
		b := &fakeBackend{name: h.Key()}
		opened[h.Key()] = b
		return b, nil
	})
	hosts := []*Host{{Name: "a"}, {Name: "b"}, {Name: "c", User: "u"}, {Name: "c"}}
	var wg sync.WaitGroup
	got := make([][]Backend, len(hosts))
	for i, h := range hosts {
		got[i] = make([]Backend, 20)
		for j := range 20 {
			wg.Go(func() {
				// A new *Host with the same key shares the connection.
				b, err := pool.Get(context.Background(), &Host{Name: h.Name, User: h.User})
				if err != nil {
					t.Error(err)
				}
				got[i][j] = b
			})
		}
	}
	wg.Wait()
	for i, h := range hosts {
		if connects[h.Key()] != 1 {
			t.Errorf("%s: %d connects", h, connects[h.Key()])
		}
		for _, b := range got[i] {
			if b != opened[h.Key()] {
				t.Errorf("%s: got backend %v, want the one opened", h, b)
			}
		}
	}
	if err := pool.Close(); err != nil {
		t.Fatal(err)
	}
	for k, b := range opened {
		if n := b.closed.Load(); n != 1 {
			t.Errorf("%s closed %d times", k, n)
		}
	}
	if _, err := pool.Get(context.Background(), hosts[0]); err == nil {
		t.Error("Get after Close succeeded")
	}
	if err := pool.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestPoolRemembersFailure(t *testing.T) {
	var calls atomic.Int32
	boom := errors.New("connection refused")
	pool := NewPool(func(ctx context.Context, h *Host) (Backend, error) {
		calls.Add(1)
		return nil, boom
	})
	h := &Host{Name: "down", Port: 2222}
	for range 3 {
		b, err := pool.Get(context.Background(), h)
		if b != nil || !errors.Is(err, boom) || err.Error() != "connect down:2222: connection refused" {
			t.Errorf("Get = %v, %v", b, err)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("%d connect attempts, want 1", calls.Load())
	}
	if err := pool.Close(); err != nil {
		t.Errorf("Close after failed connect: %v", err)
	}
}

func TestPoolCloseErrors(t *testing.T) {
	pool := NewPool(func(ctx context.Context, h *Host) (Backend, error) {
		return closeErr{fmt.Errorf("close %s", h.Name)}, nil
	})
	pool.Get(context.Background(), &Host{Name: "x"})
	if err := pool.Close(); err == nil || err.Error() != "close x" {
		t.Errorf("Close = %v", err)
	}
}

type closeErr struct{ err error }

func (c closeErr) Run(context.Context, *Command, io.Writer, io.Writer) (*Result, error) {
	return nil, nil
}
func (c closeErr) Upload(context.Context, io.Reader, string, fs.FileMode) error { return nil }
func (c closeErr) Download(context.Context, string, io.Writer) error            { return nil }
func (c closeErr) Close() error                                                 { return c.err }

// TestPoolCloseDuringGet races Close against Get: Get must return a
// backend or an error, never neither, and every backend opened is closed.
func TestPoolCloseDuringGet(t *testing.T) {
	for range 2000 {
		var opened atomic.Pointer[fakeBackend]
		pool := NewPool(func(ctx context.Context, h *Host) (Backend, error) {
			b := &fakeBackend{}
			opened.Store(b)
			return b, nil
		})
		var wg sync.WaitGroup
		var b Backend
		var err error
		wg.Go(func() { b, err = pool.Get(context.Background(), &Host{Name: "h"}) })
		wg.Go(func() { pool.Close() })
		wg.Wait()
		if b == nil && err == nil {
			t.Fatal("Get racing Close returned no backend and no error")
		}
		if ob := opened.Load(); ob != nil && ob.closed.Load() != 1 {
			t.Fatalf("backend opened during Close was closed %d times", ob.closed.Load())
		}
	}
}
