package output

import (
	"bytes"
	"sync"
	"unicode/utf8"
)

// MaxLineLength is where LineWriter cuts a line that never ends (a minified
// file cat'ed by mistake, a progress bar without newlines), so one command
// cannot make a single event of unbounded size.
const MaxLineLength = 64 << 10

// LineWriter turns a byte stream (a command's stdout or stderr) into lines:
// a line may arrive in pieces over many writes, "\r\n" ends a line like
// "\n", and Flush or Close delivers a last line that has no newline. Each
// line is passed to the function without its line ending. Lines longer
// than MaxLineLength are delivered in pieces, cut before a UTF-8 sequence
// rather than inside it.
//
// It is safe for concurrent use, and calls the function in order and never
// concurrently; the function must not write to the LineWriter.
type LineWriter struct {
	fn  func(line string)
	max int

	mu  sync.Mutex
	buf []byte // an incomplete line
}

// NewLineWriter returns a LineWriter calling fn for each line.
func NewLineWriter(fn func(line string)) *LineWriter {
	return &LineWriter{fn: fn, max: MaxLineLength}
}

// Write implements io.Writer; it never fails.
func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.appendPartial(p)
			break
		}
		// Drop the \r of "\r\n" before it counts towards the limit; it may
		// also have come at the end of the previous write.
		line, crlf := bytes.CutSuffix(p[:i], []byte{'\r'})
		w.appendPartial(line)
		if !crlf {
			w.buf = bytes.TrimSuffix(w.buf, []byte{'\r'})
		}
		w.emit(w.buf)
		w.buf = w.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

// appendPartial adds bytes of an unfinished line, delivering full-size
// pieces as the line outgrows the limit. A line of exactly the limit stays
// whole until its newline, so it is not followed by an empty piece.
func (w *LineWriter) appendPartial(p []byte) {
	for len(w.buf)+len(p) > w.max {
		take := w.max - len(w.buf)
		w.buf = append(w.buf, p[:take]...)
		p = p[take:]
		cut := runeCut(w.buf)
		w.emit(w.buf[:cut])
		w.buf = w.buf[:copy(w.buf, w.buf[cut:])]
	}
	w.buf = append(w.buf, p...)
}

// runeCut is where to cut b so that a UTF-8 sequence at its end is not
// split: before that sequence if it is incomplete, else at the end.
func runeCut(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if i > 0 && !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}

func (w *LineWriter) emit(b []byte) { w.fn(string(b)) }

// Flush delivers a pending line that has no newline yet.
func (w *LineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	// A lone "\r" left over is half a "\r\n", not a line of its own.
	if line := bytes.TrimSuffix(w.buf, []byte{'\r'}); len(line) > 0 {
		w.emit(line)
	}
	w.buf = w.buf[:0]
}

// Close flushes; the stream has ended. It always returns nil.
func (w *LineWriter) Close() error {
	w.Flush()
	return nil
}
