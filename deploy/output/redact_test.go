package output

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct {
		secrets []string
		in, out string
	}{
		{[]string{"pw"}, "", ""},
		{[]string{"pw"}, "no secret here", "no secret here"},
		{[]string{"pw"}, "pw", "[REDACTED]"},
		{[]string{"pw"}, "a pw b pw", "a [REDACTED] b [REDACTED]"},
		{[]string{"pw"}, "pwpw", "[REDACTED][REDACTED]"},
		// One secret inside another: the longer one is hidden whole,
		// whatever order they come in.
		{[]string{"pass", "password"}, "my password", "my [REDACTED]"},
		{[]string{"password", "pass"}, "my password, pass", "my [REDACTED], [REDACTED]"},
		// Overlapping without containment: no part of either shows.
		{[]string{"xpa", "password"}, "=xpassword=", "=[REDACTED]="},
		{[]string{"abc", "bcd"}, "abcd", "[REDACTED]"},
		{[]string{"aa"}, "aaa", "[REDACTED]"},
		// Empty values redact nothing, a one-byte value redacts every byte.
		{[]string{"", "x"}, "axbx", "a[REDACTED]b[REDACTED]"},
		{nil, "anything", "anything"},
		// Values are literal, not patterns; bytes, not runes.
		{[]string{".*"}, "a.*b", "a[REDACTED]b"},
		{[]string{"é"}, "café\xff", "caf[REDACTED]\xff"},
		{[]string{"two\nlines"}, "say two\nlines", "say [REDACTED]"},
		{[]string{"dup", "dup"}, "dup", "[REDACTED]"},
	} {
		got := newSecretSet(tc.secrets).redact(tc.in)
		if got != tc.out {
			t.Errorf("secrets %q: redact(%q) = %q, want %q", tc.secrets, tc.in, got, tc.out)
		}
	}
}

func TestRedactorFields(t *testing.T) {
	var got []Event
	r := NewRedactor(SinkFunc(func(e Event) { got = append(got, e) }), func() []string { return []string{"tok"} })
	in := Event{Kind: CommandEnd, Task: "tok", Host: "tok", Command: "curl -H tok", Line: "tok!", Error: "bad tok", Level: "tok"}
	r.Emit(in)
	want := in
	want.Command, want.Line, want.Error = "curl -H [REDACTED]", "[REDACTED]!", "bad [REDACTED]"
	if len(got) != 1 || got[0] != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if in.Command != "curl -H tok" {
		t.Error("the caller's event was modified")
	}
	// No secret function: events pass through as they are.
	var passed Event
	NewRedactor(SinkFunc(func(e Event) { passed = e }), nil).Emit(in)
	if passed != in {
		t.Errorf("nil secrets changed the event: %+v", passed)
	}
}

func TestRedactorCachesSet(t *testing.T) {
	var mu sync.Mutex
	values := []string{"a1", "b2"}
	var calls atomic.Int64
	sink := NewRedactor(SinkFunc(func(Event) {}), func() []string {
		calls.Add(1)
		mu.Lock()
		defer mu.Unlock()
		return values
	}).(*redactor)
	sink.Emit(Event{Line: "a1"})
	first := sink.set
	sink.Emit(Event{Line: "b2"})
	if sink.set != first {
		t.Error("set rebuilt although the secrets did not change")
	}
	mu.Lock()
	values = append(values, "c3")
	mu.Unlock()
	var got string
	sink.next = SinkFunc(func(e Event) { got = e.Line })
	sink.Emit(Event{Line: "a1 b2 c3"})
	if sink.set == first || got != "[REDACTED] [REDACTED] [REDACTED]" {
		t.Errorf("new secret not picked up: %q", got)
	}
	if calls.Load() != 3 {
		t.Errorf("secrets called %d times for 3 events", calls.Load())
	}
	// The redactor keeps its own copy: a caller reusing its slice in place
	// must not make the cache believe nothing changed.
	mu.Lock()
	values[0] = "zz"
	mu.Unlock()
	sink.Emit(Event{Line: "zz a1"})
	if got != "[REDACTED] a1" {
		t.Errorf("in-place change not seen: %q", got)
	}
}

func TestRedactorConcurrent(t *testing.T) {
	var mu sync.Mutex
	var secrets []string
	var leaks atomic.Int64
	sink := NewRedactor(SinkFunc(func(e Event) {
		if strings.Contains(e.Line, "secret-") {
			leaks.Add(1)
		}
	}), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return secrets
	})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			s := fmt.Sprint("secret-", g)
			mu.Lock()
			secrets = append(secrets[:len(secrets):len(secrets)], s)
			mu.Unlock()
			for range 200 {
				sink.Emit(Event{Kind: Output, Line: "value " + s + " here"})
			}
		})
	}
	wg.Wait()
	if leaks.Load() != 0 {
		t.Errorf("%d events leaked a secret registered before they were emitted", leaks.Load())
	}
}

func BenchmarkRedactor(b *testing.B) {
	secrets := []string{"hunter2", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "db-password-123"}
	sink := NewRedactor(SinkFunc(func(Event) {}), func() []string { return secrets })
	line := "remote: Counting objects: 100% (1234/1234), done. Compressing objects: 100% (567/567), done."
	b.ReportAllocs()
	for b.Loop() {
		sink.Emit(Event{Kind: Output, Command: "git fetch origin", Line: line})
	}
}
