package output

import (
	"io"
	"strings"
	"testing"
)

// LiveWriter finds the live pretty format behind the redactor and Multi,
// and none where there is no live terminal; a line printed after a
// drawing erases it first.
func TestLiveWriter(t *testing.T) {
	var screen strings.Builder
	live := NewPretty(&screen, PrettyOptions{Live: true})
	sink := NewRedactor(Multi(SinkFunc(func(Event) {}), live), func() []string { return nil })
	w := LiveWriter(sink)
	if w == nil {
		t.Fatal("no live writer behind the redactor and Multi")
	}
	io.WriteString(w, "\r[=====     ] 50%")
	live.Emit(Event{Kind: Message, Level: "info", Line: "done"})
	if got := screen.String(); got != "\r[=====     ] 50%\r\x1b[Kinfo: done\n" {
		t.Errorf("screen %q; want the drawing erased before the line", got)
	}
	for name, s := range map[string]Sink{
		"pretty off a terminal": NewPretty(io.Discard, PrettyOptions{}),
		"plain":                 NewPlain(io.Discard),
		"json":                  NewJSON(io.Discard),
		"redacted plain":        NewRedactor(NewPlain(io.Discard), func() []string { return nil }),
	} {
		if LiveWriter(s) != nil {
			t.Errorf("%s lends a live writer", name)
		}
	}
}
