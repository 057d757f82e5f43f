package output

import (
	"io"
	"strings"
	"sync"
)

// Plain is the format for pipes and CI logs: no colour, no buffering, and
// every line of a host starts with "[host] " so interleaved hosts can be
// told apart and grepped.
//
//	== deploy:check
//	[web1] run: mkdir -p /x
//	[web1] ok (12ms): mkdir -p /x
//	[web2] run: test -d /y
//	[web2] no such directory
//	[web2] failed (3ms, exit 1): test -d /y
type Plain struct {
	mu    sync.Mutex
	w     io.Writer
	hosts hostTable
}

// NewPlain returns the plain format writing to w.
func NewPlain(w io.Writer) *Plain { return &Plain{w: w} }

// Emit implements Sink.
func (p *Plain) Emit(e Event) {
	prefix := ""
	if e.Host != "" {
		prefix = "[" + e.Host + "] "
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	if e.Kind == HostInfo {
		p.hosts.add(e.Server)
		return
	}
	b.WriteString(p.hosts.flush())
	switch e.Kind {
	case TaskStart:
		b.WriteString(prefix + "== " + e.Task + "\n")
	case TaskEnd:
		if e.Error != "" {
			// The error itself reaches the user once, from the CLI.
			b.WriteString(prefix + "== " + e.Task + " failed (" + fmtDuration(e.Duration) + ")\n")
		} else {
			b.WriteString(prefix + "== " + e.Task + " done (" + fmtDuration(e.Duration) + ")\n")
		}
	case CommandStart:
		b.WriteString(prefix + "run: " + oneLine(e.Command) + "\n")
	case Output:
		b.WriteString(prefix + e.Line + "\n")
	case CommandEnd:
		word := "ok"
		if failed(e) {
			word = "failed"
		} else if answeredNo(e) {
			word = "false"
		}
		b.WriteString(prefix + word + " (" + endDetail(e) + "): " + oneLine(e.Command) + "\n")
	case Message:
		for _, l := range messageLines(e.Line) {
			b.WriteString(prefix + level(e) + ": " + l + "\n")
		}
	}
	if b.Len() == 0 {
		return
	}
	io.WriteString(p.w, b.String())
}
