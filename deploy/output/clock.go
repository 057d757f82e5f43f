package output

import (
	"sync"
	"time"
)

// Clock is where the live parts of the formats (the pretty status line,
// the "still running" lines) read the time and get their ticks: the
// system clock in a run, a fake one in tests, so what they print is
// exact.
type Clock interface {
	Now() time.Time
	// NewTicker returns a channel that receives the time every d, and a
	// function that stops the ticks.
	NewTicker(d time.Duration) (<-chan time.Time, func())
}

// SystemClock is the real clock.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// tickEvery is how often the live parts look at the running commands: the
// status line shows whole seconds.
const tickEvery = time.Second

// ticking calls fn on every tick while it is started. Its owner starts it
// when a command begins running and stops it when none runs any more, so
// no goroutine outlives the commands; Close waits for the last one.
//
// start and stop are called with the owner's lock held. fn runs on the
// ticking goroutine and takes that lock itself; it is passed the quit
// channel of its goroutine so it can tell, once it holds the lock, that it
// was stopped meanwhile (see stopped).
type ticking struct {
	clock Clock
	fn    func(now time.Time, quit <-chan struct{})

	quit chan struct{} // nil while stopped
	wg   sync.WaitGroup
}

func (t *ticking) start() {
	if t.quit != nil {
		return
	}
	quit := make(chan struct{})
	t.quit = quit
	c, stop := t.clock.NewTicker(tickEvery)
	t.wg.Go(func() {
		defer stop()
		for {
			select {
			case <-quit:
				return
			case now := <-c:
				t.fn(now, quit)
			}
		}
	})
}

func (t *ticking) stop() {
	if t.quit != nil {
		close(t.quit)
		t.quit = nil
	}
}

// wait returns once every ticking goroutine has ended; call it after stop
// and without the owner's lock, which a last tick may be waiting for.
func (t *ticking) wait() { t.wg.Wait() }

// stopped reports whether quit was closed.
func stopped(quit <-chan struct{}) bool {
	select {
	case <-quit:
		return true
	default:
		return false
	}
}

// DefaultLongAfter is when a command counts as long-running where no
// status line shows it: plain (and pretty without Live) print a "running"
// line then, and every stillRunningEvery after, so a three-minute bundle
// install does not look like a hang in a CI log.
const DefaultLongAfter = 10 * time.Second

const stillRunningEvery = time.Minute

// longAfter resolves an options value: 0 is the default, negative never.
func longAfter(d time.Duration) time.Duration {
	if d == 0 {
		return DefaultLongAfter
	}
	return d
}

// noticeDue reports whether a command running for elapsed, which has had
// n "running" notices, is due another; after the first at long, one a
// minute.
func noticeDue(elapsed, long time.Duration, n int) bool {
	return long > 0 && elapsed >= long+time.Duration(n)*stillRunningEvery
}

// dueNotices calls fn, in start order, for each running command whose
// next "still running" line is due at now (after long, then every
// stillRunningEvery), and counts that line as given.
func (cs *commands) dueNotices(now time.Time, long time.Duration, fn func(c *command, elapsed time.Duration)) {
	for _, c := range cs.order {
		elapsed := now.Sub(c.start)
		if !noticeDue(elapsed, long, c.notices) {
			continue
		}
		c.notices = 1 + int((elapsed-long)/stillRunningEvery)
		fn(c, elapsed)
	}
}

// fmtElapsed is the live elapsed time of a running command, in whole
// seconds: it is redrawn every second.
func fmtElapsed(d time.Duration) string {
	return max(d, 0).Truncate(time.Second).String()
}
