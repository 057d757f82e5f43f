// Package httpwait polls a URL until its page says what a healthy server
// says ("welcome", in any case): the one implementation behind the deploy
// recipe's health check and the aws launcher's wait before a new instance
// joins its load balancer.
//
// Every wait is bounded twice: each request by Options.TryTimeout, so one
// hung connection cannot eat the whole deadline, and the whole wait by
// Options.Timeout; and it ends as soon as its context is cancelled.
package httpwait

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/davit-deploy/davit/deploy"
)

// DefaultExpect is what callers ask a page to say unless told otherwise
// (the deploy recipe's health_check_expect default).
const DefaultExpect = "welcome"

// Defaults for the zero Options fields.
const (
	DefaultInterval   = 500 * time.Millisecond
	DefaultTryTimeout = 10 * time.Second
	DefaultTimeout    = 60 * time.Second
)

// bodyLimit is how much of a page is read: enough for any welcome page,
// bounded so a server streaming forever cannot fill memory.
const bodyLimit = 1 << 20

// Options say what a healthy answer is and how long to wait for one.
type Options struct {
	// Expect is the text the body must contain, compared in any case;
	// "" accepts any body (a status below 400 is then enough).
	Expect string
	// Interval is the pause between tries; 0 is DefaultInterval.
	Interval time.Duration
	// TryTimeout bounds one request (connect, headers and body); 0 is
	// DefaultTryTimeout.
	TryTimeout time.Duration
	// Timeout bounds the whole wait; 0 is DefaultTimeout.
	Timeout time.Duration
	// DialContext opens the connections; nil is a net.Dialer. Tests give
	// one that refuses every address outside loopback.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// OnTry, if set, is told about every unhealthy answer: the try's
	// number (from 1) and why it was not healthy.
	OnTry func(try int, why string)
}

func (o Options) withDefaults() Options {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.TryTimeout <= 0 {
		o.TryTimeout = DefaultTryTimeout
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return o
}

// Result is how a successful wait went.
type Result struct {
	// Tries is the number of requests made, the healthy one included.
	Tries int
	// Elapsed is the time from the first request to the healthy answer.
	Elapsed time.Duration
}

// TimeoutError is a wait that ran out of time: the page never said
// Expect, and Last is what the last try got instead.
type TimeoutError struct {
	Expect  string
	Timeout time.Duration
	Tries   int
	Last    string
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("no answer containing %q within %s after %d tries (last: %s)", e.Expect, e.Timeout, e.Tries, e.Last)
}

// Client returns an HTTP client for health checks: no proxy (a proxy from
// the environment would check the proxy's view of the server, not the
// server), no kept-alive connections (each try sees the server afresh),
// and dial, TLS and header timeouts no longer than a try.
func Client(o Options) *http.Client {
	o = o.withDefaults()
	dial := o.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: o.TryTimeout}).DialContext
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           dial,
		TLSHandshakeTimeout:   o.TryTimeout,
		ResponseHeaderTimeout: o.TryTimeout,
		DisableKeepAlives:     true,
	}}
}

// Wait GETs url every Interval until an answer has a status below 400 and
// a body containing Expect (any case), and returns how many tries it took.
// It fails with a *TimeoutError when Timeout or ctx's deadline passes
// first, or with context.Canceled when ctx is cancelled.
func Wait(ctx context.Context, url string, o Options) (Result, error) {
	o = o.withDefaults()
	if _, err := http.NewRequest(http.MethodGet, url, nil); err != nil {
		return Result{}, fmt.Errorf("health check URL %q: %w", url, err)
	}
	client := Client(o)
	defer client.CloseIdleConnections()
	return wait(ctx, client, url, o)
}

// WaitWith is Wait with a client the caller keeps (one per check of many
// hosts); o.DialContext is then the client's business.
func WaitWith(ctx context.Context, client *http.Client, url string, o Options) (Result, error) {
	return wait(ctx, client, url, o.withDefaults())
}

func wait(ctx context.Context, client *http.Client, url string, o Options) (Result, error) {
	dctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	want := bytes.ToLower([]byte(o.Expect))
	start := time.Now()
	last := "no answer"
	for try := 1; ; try++ {
		ok, why, err := once(dctx, client, url, want, o)
		if err != nil {
			return Result{}, err
		}
		if ok {
			return Result{Tries: try, Elapsed: time.Since(start)}, nil
		}
		if dctx.Err() != nil && !errors.Is(ctx.Err(), context.Canceled) {
			// The try was cut by the overall deadline: what it saw is
			// the deadline, not the server; keep the answer before it.
			if try == 1 {
				last = why
			}
			return Result{}, &TimeoutError{Expect: o.Expect, Timeout: o.Timeout, Tries: try, Last: last}
		}
		last = why
		if o.OnTry != nil {
			o.OnTry(try, why)
		}
		t := time.NewTimer(o.Interval)
		select {
		case <-dctx.Done():
			t.Stop()
			// A cancelled run ends the wait; a deadline, whether this
			// wait's or the caller's, is the wait running out of time.
			if errors.Is(ctx.Err(), context.Canceled) {
				return Result{}, ctx.Err()
			}
			return Result{}, &TimeoutError{Expect: o.Expect, Timeout: o.Timeout, Tries: try, Last: last}
		case <-t.C:
		}
	}
}

// once makes one request. It reports whether the answer was healthy and,
// if not, why; err is only for what no retry can mend (a cancelled run).
func once(ctx context.Context, client *http.Client, url string, want []byte, o Options) (bool, string, error) {
	rctx, cancel := context.WithTimeout(ctx, o.TryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return false, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
			return false, "", ctx.Err()
		}
		return false, err.Error(), nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, bodyLimit))
	switch {
	case err != nil:
		return false, fmt.Sprintf("status %d, reading the body: %v", resp.StatusCode, err), nil
	case resp.StatusCode >= 400:
		return false, fmt.Sprintf("status %d", resp.StatusCode), nil
	case !bytes.Contains(bytes.ToLower(body), want):
		return false, fmt.Sprintf("status %d, body without %q: %q", resp.StatusCode, o.Expect, Snippet(body)), nil
	}
	return true, "", nil
}

// Snippet is the start of a page on one line, for a message.
func Snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// Placeholder matches one {key} of a URL template.
var Placeholder = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// ExpandURL fills a health check URL template for host h: {host} is the
// address davit connects to (address=, else the name), {name} the host's
// name, {user} its login user, and any other {key} the host property key
// (server(..., http_port = 8080) gives {http_port}).
func ExpandURL(tmpl string, h *deploy.Host) (string, error) {
	var missing []string
	out := Placeholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		key := m[1 : len(m)-1]
		switch key {
		case "host":
			return h.DialAddress()
		case "name":
			return h.Name
		case "user":
			return h.User
		}
		if v, ok := h.Props[key]; ok {
			return fmt.Sprint(v)
		}
		missing = append(missing, m)
		return m
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("health_check_url %q: %s has no %s (placeholders are {host}, {name}, {user} and the host's properties)", tmpl, h, strings.Join(missing, ", "))
	}
	return out, nil
}
