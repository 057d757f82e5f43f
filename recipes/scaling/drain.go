package scaling

import (
	"fmt"
	"math"
	"time"
)

// Drain sizes the fleet to the backlog: when the queue is long it launches
// as many servers as it takes to finish the backlog (and the work still
// arriving) within Target, counting the servers still booting; once the
// queue has stayed at or below Low for Quiet it retires, newest first, the
// servers the arriving work does not need, and, under per-started-hour
// billing, only while the newest is near the end of its paid hour.
//
// The seed rule's waste is churn: it retires the one extra server the day
// needs as soon as the queue is short, then launches it again, paying for a
// boot each time, and it keeps three extra servers for 45 minutes after a
// burst. Drain keeps what the arrival rate needs and drops the rest at once.
type Drain struct {
	Target        time.Duration // finish the backlog within this (40m)
	JobsPerServer float64       // jobs one working server finishes per minute (2)
	Max           int           // at most this many dynamic servers (4)
	High          int           // launch only when the queue is above this (5)
	Low           int           // the queue is quiet at or below this (5)
	Quiet         time.Duration // retire only after this long quiet (5m)
	Boot          time.Duration // expected time from launch to working (10m)
	// RateWindow is how far back quiet readings tell the arrival rate (30m).
	RateWindow time.Duration
	// JobMinutes is how long a job stays in the queue when nothing waits:
	// a quiet queue of length L means about L/JobMinutes arrive a minute (1).
	JobMinutes float64
	// Headroom is how much more than the arriving work the servers kept
	// must be able to finish (1.1).
	Headroom      float64
	HourlyBilling bool          // servers are billed per started hour
	HourEnd       time.Duration // under HourlyBilling, retire only this close to the paid hour's end (10m)
}

// DefaultDrain returns the settings tuned with the simulator on weekday
// traces (see the README's policy table).
func DefaultDrain() Drain {
	return Drain{
		Target:        40 * time.Minute,
		JobsPerServer: 2,
		Max:           4,
		High:          5,
		Low:           5,
		Quiet:         5 * time.Minute,
		Boot:          10 * time.Minute,
		RateWindow:    30 * time.Minute,
		JobMinutes:    1,
		Headroom:      1.1,
		HourEnd:       10 * time.Minute,
	}
}

func (*Drain) Name() string { return "drain" }

// Validate reports settings that cannot work.
func (p *Drain) Validate() error {
	switch {
	case p.Target <= p.Boot:
		return fmt.Errorf("drain: target %s must be longer than boot %s (a new server must have time to work)", p.Target, p.Boot)
	case p.JobsPerServer <= 0:
		return fmt.Errorf("drain: jobs_per_server %g must be positive", p.JobsPerServer)
	case p.Max < 0:
		return fmt.Errorf("drain: max %d is negative", p.Max)
	case p.High < 0 || p.Low < 0:
		return fmt.Errorf("drain: thresholds must not be negative (high %d, low %d)", p.High, p.Low)
	case p.Low > p.High:
		return fmt.Errorf("drain: low %d is above high %d", p.Low, p.High)
	case p.Quiet < 0 || p.Boot < 0 || p.HourEnd < 0 || p.RateWindow < 0:
		return fmt.Errorf("drain: quiet, boot, rate_window and hour_end must not be negative")
	case p.JobMinutes <= 0:
		return fmt.Errorf("drain: job_minutes %g must be positive", p.JobMinutes)
	case p.Headroom < 1:
		return fmt.Errorf("drain: headroom %g must be at least 1", p.Headroom)
	}
	return nil
}

func (p *Drain) Decide(in Input) Decision {
	o, d, ok := observe(in)
	if !ok {
		return d
	}
	rate, exact := p.arrivalRate(in, o)
	if o.queue > p.High {
		return p.sizeUp(in, o, d, rate, exact)
	}
	if len(o.all) == 0 {
		d.Rule = fmt.Sprintf("queue at most %d", p.High)
		d.Reason = "no extra server runs"
		return d
	}
	if o.queue > p.Low {
		d.Rule = fmt.Sprintf("queue between %d and %d", p.Low, p.High)
		d.Reason = "nothing to do"
		return d
	}
	return p.retire(in, o, d)
}

// sizeUp launches enough servers to finish the backlog within Target.
func (p *Drain) sizeUp(in Input, o observation, d Decision, rate float64, exact bool) Decision {
	target := p.Target.Minutes()
	// Work the counted servers will do within Target: the base and ready
	// ones all of it, booting ones from when they are expected to work.
	work := float64(in.Base+len(o.ready)) * p.JobsPerServer * target
	for _, s := range o.booting {
		left := s.LaunchedAt.Add(p.Boot).Sub(in.Now).Minutes()
		work += p.JobsPerServer * math.Max(0, target-math.Max(0, left))
	}
	need := float64(o.queue) + rate*target
	perNew := p.JobsPerServer * (target - p.Boot.Minutes())
	k := int(math.Ceil((need - work) / perNew))
	d.Rule = fmt.Sprintf("queue above %d", p.High)
	est := "at least"
	if exact {
		est = "about"
	}
	if k <= 0 {
		d.Reason = fmt.Sprintf("the servers counted finish %d queued and %s %.1f/min arriving within %s",
			o.queue, est, rate, minutes(p.Target))
		return d
	}
	room := p.Max - len(o.all)
	if room <= 0 {
		d.Reason = fmt.Sprintf("%d more needed to drain within %s, but %d run, the maximum", k, minutes(p.Target), len(o.all))
		return d
	}
	d.Action, d.Count = Launch, min(k, room)
	d.Reason = fmt.Sprintf("%d queued and %s %.1f/min arriving drain within %s only with %d more",
		o.queue, est, rate, minutes(p.Target), k)
	if k > room {
		d.Reason += fmt.Sprintf(" (capped at the maximum %d)", p.Max)
	}
	return d
}

// retire terminates the servers the arriving work does not need, newest
// first, once the queue has been quiet.
func (p *Drain) retire(in Input, o observation, d Decision) Decision {
	d.Rule = fmt.Sprintf("queue at most %d", p.Low)
	quiet, readings, why := p.quietSpell(in, o.newest())
	if !quiet {
		d.Reason = why
		return d
	}
	// Little's law: a queue that is not backed up holds the jobs of the
	// last JobMinutes, so its mean length over the spell tells the rate.
	sum := 0
	for _, s := range readings {
		sum += s.Length
	}
	rate := float64(sum) / float64(len(readings)) / p.JobMinutes
	keep := max(0, int(math.Ceil(rate*p.Headroom/p.JobsPerServer))-in.Base)
	excess := len(o.all) - keep
	if excess <= 0 {
		d.Reason = fmt.Sprintf("%s, but about %.1f/min arrive: the %d extra are needed", why, rate, len(o.all))
		return d
	}
	// Newest first, as the original rule and the launcher's terminate do;
	// under hourly billing stop at the first with much of its paid hour
	// left (retiring it now would throw that away).
	var retire []string
	for i := len(o.all) - 1; i >= 0 && len(retire) < excess; i-- {
		s := o.all[i]
		if rem := p.paidLeft(in.Now, s); rem > p.HourEnd {
			if len(retire) == 0 {
				d.Reason = fmt.Sprintf("%s; %d not needed, but the newest, %s, has %s of its paid hour left: keeping it until the last %s",
					why, excess, s.ID, minutes(rem), minutes(p.HourEnd))
				return d
			}
			break
		}
		retire = append(retire, s.ID)
	}
	d.Action, d.Count, d.Servers = Terminate, len(retire), retire
	d.Reason = fmt.Sprintf("%s and about %.1f/min arrive: %d extra are enough", why, rate, keep)
	return d
}

// paidLeft is how much of the started hour s is paid for remains; with
// per-second billing nothing is paid ahead, so it is zero.
func (p *Drain) paidLeft(now time.Time, s Server) time.Duration {
	if !p.HourlyBilling {
		return 0
	}
	up := now.Sub(s.LaunchedAt)
	if up > 0 && up%time.Hour == 0 {
		return 0
	}
	return time.Hour - up%time.Hour
}

// quietSpell reports whether the queue has stayed at or below Low for
// Quiet, with the readings of the spell (up to RateWindow of them). With
// readings covering the whole spell it checks each of them; a single run
// from cron has only the current one, so it then asks that the newest
// server has worked for the whole spell.
func (p *Drain) quietSpell(in Input, newest Server) (bool, []Sample, string) {
	since := in.Now.Add(-p.Quiet)
	window := in.Now.Add(-max(p.Quiet, p.RateWindow))
	var spell []Sample
	covered := false
	for i := len(in.Queue) - 1; i >= 0; i-- {
		s := in.Queue[i]
		if s.At.Before(window) {
			break
		}
		if s.Err != nil || s.Length > p.Low {
			if covered {
				break
			}
			if s.Err != nil {
				return false, nil, fmt.Sprintf("the reading at %s failed, so it may not have been quiet", s.At.Format("15:04"))
			}
			return false, nil, fmt.Sprintf("the queue was %d at %s, less than %s ago", s.Length, s.At.Format("15:04"), minutes(p.Quiet))
		}
		spell = append(spell, s)
		if !s.At.After(since) {
			covered = true
		}
	}
	if covered {
		return true, spell, fmt.Sprintf("quiet for %s", minutes(p.Quiet))
	}
	if len(in.Queue) == len(spell) && !newest.Booting() && in.Now.Sub(newest.ReadyAt) >= p.Quiet {
		return true, spell, fmt.Sprintf("quiet now and %s has worked for %s (no earlier readings)", newest.ID, minutes(p.Quiet))
	}
	return false, nil, fmt.Sprintf("not yet quiet for %s", minutes(p.Quiet))
}

// arrivalRate estimates the jobs arriving per minute from the last two
// readings. When the earlier reading was long enough that the servers
// could not empty the queue in between, every server worked all the time
// and the estimate is exact. Otherwise only the current queue is known to
// have arrived since; as a lasting rate it is taken as at most what the
// working servers finish, because a burst (150 report jobs at once) must
// be sized by its backlog, not as if it arrived every interval. A rate that
// really rose shows in the next reading, which is then exact.
func (p *Drain) arrivalRate(in Input, o observation) (rate float64, exact bool) {
	cur := in.Queue[len(in.Queue)-1]
	for i := len(in.Queue) - 2; i >= 0; i-- {
		prev := in.Queue[i]
		if prev.Err != nil || prev.Length < 0 {
			return 0, false
		}
		dt := cur.At.Sub(prev.At).Minutes()
		if dt <= 0 {
			continue
		}
		if dt > 3*p.Quiet.Minutes()+1 {
			return 0, false
		}
		capacity := float64(in.Base) * p.JobsPerServer * dt
		for _, s := range o.ready {
			from := s.ReadyAt
			if from.Before(prev.At) {
				from = prev.At
			}
			if w := cur.At.Sub(from).Minutes(); w > 0 {
				capacity += p.JobsPerServer * w
			}
		}
		if float64(prev.Length) >= capacity {
			return math.Max(0, (float64(cur.Length-prev.Length)+capacity)/dt), true
		}
		working := float64(in.Base+len(o.ready)) * p.JobsPerServer
		return math.Min(float64(cur.Length)/dt, working), false
	}
	return 0, false
}
