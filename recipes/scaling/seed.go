package scaling

import (
	"fmt"
	"time"
)

// Seed is the original setup's cron rule, kept exactly: launch one server
// when the queue is above High and at most MaxExtra dynamic servers run;
// retire the newest when the queue is below Low and that server has been up
// longer than MinUptime. Booting servers count as running (the original
// counted lines in its dotfile, one per launched instance).
type Seed struct {
	High      int           // launch when the queue is above this (20)
	Low       int           // retire when the queue is below this (5)
	MaxExtra  int           // launch only while at most this many run (2)
	MinUptime time.Duration // retire only a server up longer than this (45m)
}

// DefaultSeed returns the original thresholds.
func DefaultSeed() Seed {
	return Seed{High: 20, Low: 5, MaxExtra: 2, MinUptime: 45 * time.Minute}
}

func (*Seed) Name() string { return "seed" }

// Validate reports settings that cannot work.
func (s *Seed) Validate() error {
	switch {
	case s.High < 0 || s.Low < 0:
		return fmt.Errorf("seed: thresholds must not be negative (high %d, low %d)", s.High, s.Low)
	case s.Low > s.High:
		return fmt.Errorf("seed: low %d is above high %d", s.Low, s.High)
	case s.MaxExtra < 0:
		return fmt.Errorf("seed: max_extra %d is negative", s.MaxExtra)
	case s.MinUptime < 0:
		return fmt.Errorf("seed: min_uptime %s is negative", s.MinUptime)
	}
	return nil
}

func (s *Seed) Decide(in Input) Decision {
	o, d, ok := observe(in)
	if !ok {
		return d
	}
	running := len(o.all)
	switch {
	case o.queue > s.High && running <= s.MaxExtra:
		d.Action, d.Count = Launch, 1
		d.Rule = fmt.Sprintf("queue above %d", s.High)
		d.Reason = fmt.Sprintf("%d extra running, at most %d before launching one more", running, s.MaxExtra)
	case o.queue > s.High:
		d.Rule = fmt.Sprintf("queue above %d", s.High)
		d.Reason = fmt.Sprintf("%d extra running, more than %d: no more launches", running, s.MaxExtra)
	case o.queue < s.Low && running > 0:
		n := o.newest()
		up := in.Now.Sub(n.LaunchedAt)
		d.Rule = fmt.Sprintf("queue below %d", s.Low)
		if up > s.MinUptime {
			d.Action, d.Count, d.Servers = Terminate, 1, []string{n.ID}
			d.Reason = fmt.Sprintf("newest %s up %s, more than %s", n.ID, minutes(up), minutes(s.MinUptime))
		} else {
			d.Reason = fmt.Sprintf("newest %s up %s, not more than %s: keeping it", n.ID, minutes(up), minutes(s.MinUptime))
		}
	case o.queue < s.Low:
		d.Rule = fmt.Sprintf("queue below %d", s.Low)
		d.Reason = "no extra server runs"
	default:
		d.Rule = fmt.Sprintf("queue between %d and %d", s.Low, s.High)
		d.Reason = "nothing to do"
	}
	return d
}
