package output

import "io"

// LiveWriter returns the terminal that the run's live format (pretty on a
// terminal, PrettyOptions.Live) draws on, for a drawing of the caller's
// own on the bottom line, such as a progress bar; nil when the output has
// no live terminal (plain, json, pretty to a file or pipe), where only
// events belong. A line the format prints meanwhile erases the drawing
// first; the drawer redraws it on its next update. Draw only while no
// command runs (the status line shares the bottom line).
func LiveWriter(s Sink) io.Writer {
	if l, ok := s.(liveLender); ok {
		return l.liveWriter()
	}
	return nil
}

// liveLender is a sink that can lend its live terminal, or pass on one of
// the sinks behind it.
type liveLender interface {
	liveWriter() io.Writer
}

func (m multi) liveWriter() io.Writer {
	for _, s := range m {
		if w := LiveWriter(s); w != nil {
			return w
		}
	}
	return nil
}

// The redactor lends the terminal behind it: a drawing is the caller's
// own text (counts, not command output).
func (r *redactor) liveWriter() io.Writer { return LiveWriter(r.next) }

func (p *Pretty) liveWriter() io.Writer {
	if !p.opts.Live {
		return nil
	}
	return prettyLive{p}
}

// prettyLive writes a drawing under the format's lock, and marks the
// bottom line as drawn on so the next lines erase it.
type prettyLive struct{ p *Pretty }

func (l prettyLive) Write(b []byte) (int, error) {
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	if l.p.closed {
		return len(b), nil
	}
	l.p.drawn = true
	return l.p.w.Write(b)
}
