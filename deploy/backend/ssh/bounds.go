package ssh

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// How long davit waits on a host, at most. Without cancellation a wait on
// a live host may last as long as the work does; a host that stops
// answering is found by keepalives (DefaultKeepAlive × DefaultKeepAliveCountMax,
// about 45 s). Once the caller's context is done, every wait is cut short:
//
//   - Run stops a cancelled command (SIGTERM, KillGrace, SIGKILL,
//     KillGrace) and returns within 2×KillGrace plus a moment when the host
//     answers. A host that has answered none of it by DefaultAnswerTimeout
//     after the cancellation is abandoned.
//   - Opening a session, starting a command, an SFTP or cat transfer and
//     opening the SFTP subsystem wait at most DefaultAnswerTimeout after
//     the cancellation for the host's answer.
//   - Closing a connection never waits for the host: the socket is closed
//     underneath; connCloseTimeout bounds the library's own teardown.
//
// Abandoning a connection closes its socket, which ends every other wait on
// it at once, and the error is a *NoAnswerError saying what may still be
// running on the host.
const (
	// DefaultAnswerTimeout is how long davit waits, once the context is
	// done, for a host to answer before abandoning its connection.
	DefaultAnswerTimeout = 5 * time.Second
	// connCloseTimeout bounds x/crypto's teardown of a closed connection.
	// Over TCP it is immediate; through a jump host it sends a channel
	// close on the jump connection, which a frozen jump host never reads.
	connCloseTimeout = 2 * time.Second
)

// NoAnswerError reports a host that stopped answering: its keepalives went
// unanswered, or it did not answer within a bound once the work was
// cancelled. davit has closed the connection; what it started there may
// still be running.
type NoAnswerError struct {
	// Waiting is what went unanswered: "keepalives", "the request to stop
	// the command", …
	Waiting string
	// For is how long davit waited.
	For time.Duration
	// Left says what may be left on the host, e.g. "the command
	// (DAVIT_RUN_ID=…) may still be running there" ("" if nothing).
	Left string
}

func (e *NoAnswerError) Error() string {
	var s string
	if e.Waiting == "keepalives" {
		s = fmt.Sprintf("host stopped answering keepalives (none answered for %s); davit closed the connection", e.For)
	} else {
		s = fmt.Sprintf("host did not answer %s within %s; davit abandoned the connection", e.Waiting, e.For)
	}
	if e.Left != "" {
		s += "; " + e.Left
	}
	return s
}

// abandon gives up on the host: the connection is closed underneath, which
// ends every wait on it, and the returned error says why.
func (b *Backend) abandon(waiting, left string) *NoAnswerError {
	e := &NoAnswerError{Waiting: waiting, For: b.d.opts.AnswerTimeout, Left: left}
	b.conn.fail(e)
	b.d.logf("ssh %s: %v", b.label, e)
	return e
}

// await runs fn, which waits on the host, and returns its error. It returns
// the connection's error as soon as the connection is lost, and once ctx is
// done it waits at most AnswerTimeout more: then the connection is
// abandoned (see abandon) with waiting and left in the error. fn may still
// be running when await returns; it ends when the connection closes.
func (b *Backend) await(ctx context.Context, waiting, left string, fn func() error) error {
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	select {
	case err := <-ch:
		return err
	case <-b.conn.done:
		return b.settle(ch)
	case <-ctx.Done():
	}
	t := time.NewTimer(b.d.opts.AnswerTimeout)
	defer t.Stop()
	select {
	case err := <-ch:
		return err
	case <-b.conn.done:
		return b.settle(ch)
	case <-t.C:
		return b.abandon(waiting, left)
	}
}

// settle is fn's result when it comes within a moment of the connection's
// end (its own, more precise error), else the connection's error.
func (b *Backend) settle(ch <-chan error) error {
	select {
	case err := <-ch:
		if err != nil {
			return b.conn.lost()
		}
		return nil
	case <-time.After(100 * time.Millisecond):
		return b.conn.lost()
	}
}

// gate passes a session's output to the caller's writers until it is shut;
// after that the output is dropped, so a session left behind on a host
// that stopped answering never writes into the caller's buffers after Run
// has returned.
type gate struct {
	mu   sync.Mutex
	shut bool
}

type gatedWriter struct {
	g *gate
	w io.Writer
}

func (g *gate) writer(w io.Writer) io.Writer {
	if w == nil {
		return nil
	}
	return &gatedWriter{g, w}
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	w.g.mu.Lock()
	defer w.g.mu.Unlock()
	if w.g.shut {
		return len(p), nil
	}
	return w.w.Write(p)
}

// close waits for a write in progress and drops every later one.
func (g *gate) close() {
	g.mu.Lock()
	g.shut = true
	g.mu.Unlock()
}
