package output

import (
	"os"
	"testing"
)

func TestColorAllowed(t *testing.T) {
	for _, tc := range []struct {
		noColor, term string
		want          bool
	}{
		{"", "xterm-256color", true},
		{"", "", true},
		{"1", "xterm", false},
		{"0", "xterm", false}, // any non-empty value disables, even "0"
		{"false", "xterm", false},
		{"", "dumb", false},
	} {
		env := map[string]string{"NO_COLOR": tc.noColor, "TERM": tc.term}
		if got := colorAllowed(func(k string) string { return env[k] }); got != tc.want {
			t.Errorf("NO_COLOR=%q TERM=%q: %v, want %v", tc.noColor, tc.term, got, tc.want)
		}
	}
}

func TestColorEnabledNotTerminal(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "xterm")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if ColorEnabled(w) {
		t.Error("colour on a pipe")
	}
	f, err := os.Create(t.TempDir() + "/out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if ColorEnabled(f) {
		t.Error("colour on a file")
	}
	if ColorEnabled(nil) {
		t.Error("colour on a nil file")
	}
}
