package httpwait_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/httpwait"
)

// loopbackDial refuses every address outside loopback and counts dials.
func loopbackDial(n *atomic.Int32) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.Add(1)
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("test dialer: refusing non-loopback address %s", addr)
		}
		return d.DialContext(ctx, network, addr)
	}
}

// welcomeFrom serves "Welcome" from the nth request on; before that a 503,
// then a page without the word.
func welcomeFrom(t *testing.T, n int32) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch k := hits.Add(1); {
		case k >= n:
			fmt.Fprint(w, "<h1>WELCOME aboard</h1>")
		case k == 1:
			http.Error(w, "booting", http.StatusServiceUnavailable)
		default:
			fmt.Fprint(w, "<p>almost there</p>")
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestWelcomeOnTheThirdTry(t *testing.T) {
	srv, hits := welcomeFrom(t, 3)
	var dials atomic.Int32
	var whys []string
	res, err := httpwait.Wait(context.Background(), srv.URL, httpwait.Options{Expect: "welcome",
		Interval: 10 * time.Millisecond, Timeout: 5 * time.Second, DialContext: loopbackDial(&dials),
		OnTry: func(try int, why string) { whys = append(whys, fmt.Sprintf("%d %s", try, why)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Tries != 3 || hits.Load() != 3 {
		t.Errorf("tries %d, requests %d; want 3", res.Tries, hits.Load())
	}
	if dials.Load() != 3 {
		t.Errorf("%d dials; want one per try (no kept-alive connections)", dials.Load())
	}
	if len(whys) != 2 || !strings.Contains(whys[0], "status 503") || !strings.Contains(whys[1], "almost there") {
		t.Errorf("unhealthy tries reported: %q", whys)
	}
}

func TestNeverWelcomeTimesOutWithTheLastFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "Internal maintenance page")
	}))
	defer srv.Close()
	var dials atomic.Int32
	_, err := httpwait.Wait(context.Background(), srv.URL, httpwait.Options{Expect: "welcome",
		Interval: 10 * time.Millisecond, Timeout: 200 * time.Millisecond, DialContext: loopbackDial(&dials)})
	var te *httpwait.TimeoutError
	if !errors.As(err, &te) || te.Tries < 2 || !strings.Contains(te.Last, "maintenance page") {
		t.Fatalf("err = %v; want a timeout naming the last page", err)
	}
}

func TestAnErrorStatusIsNotHealthyEvenWithTheWord(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "welcome to the error page", http.StatusInternalServerError)
	}))
	defer srv.Close()
	_, err := httpwait.Wait(context.Background(), srv.URL, httpwait.Options{Expect: "welcome", Interval: 10 * time.Millisecond, Timeout: 100 * time.Millisecond})
	var te *httpwait.TimeoutError
	if !errors.As(err, &te) || te.Last != "status 500" {
		t.Fatalf("err = %v; want a timeout with last: status 500", err)
	}
}

func TestEachTryIsBoundedOnItsOwn(t *testing.T) {
	var hits atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			select { // the first request hangs
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		fmt.Fprint(w, "welcome")
	}))
	defer srv.Close()
	defer close(release)
	res, err := httpwait.Wait(context.Background(), srv.URL, httpwait.Options{Expect: "welcome",
		Interval: 10 * time.Millisecond, TryTimeout: 100 * time.Millisecond, Timeout: 5 * time.Second})
	if err != nil || res.Tries != 2 {
		t.Fatalf("res %+v, err %v; want healthy on the 2nd try after the hung one timed out", res, err)
	}
}

func TestCancelEndsTheWait(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "not yet") }))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := httpwait.Wait(ctx, srv.URL, httpwait.Options{Expect: "welcome", Interval: 10 * time.Millisecond, Timeout: time.Minute})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
}

func TestRefusedDialIsAFailedTry(t *testing.T) {
	var dials atomic.Int32
	_, err := httpwait.Wait(context.Background(), "http://10.0.0.7:80/", httpwait.Options{
		Interval: 10 * time.Millisecond, Timeout: 100 * time.Millisecond, DialContext: loopbackDial(&dials)})
	var te *httpwait.TimeoutError
	if !errors.As(err, &te) || !strings.Contains(te.Last, "refusing non-loopback") {
		t.Fatalf("err = %v", err)
	}
}

func TestExpandURL(t *testing.T) {
	h := &deploy.Host{Name: "web-1", Address: "127.0.0.5", User: "deploy", Props: map[string]any{"http_port": 8080}}
	got, err := httpwait.ExpandURL("http://{host}:{http_port}/up?n={name}&u={user}", h)
	if err != nil || got != "http://127.0.0.5:8080/up?n=web-1&u=deploy" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := httpwait.ExpandURL("http://{host}:{port}/", h); err == nil || !strings.Contains(err.Error(), "{port}") {
		t.Errorf("unknown placeholder: %v", err)
	}
}

func TestNoExpectedTextTakesAnyPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<html><body style="background-color: green"></body></html>`)
	}))
	defer srv.Close()
	res, err := httpwait.Wait(context.Background(), srv.URL, httpwait.Options{Expect: "", Timeout: time.Second})
	if err != nil || res.Tries != 1 {
		t.Fatalf("res %+v, err %v; want healthy at once", res, err)
	}
}
