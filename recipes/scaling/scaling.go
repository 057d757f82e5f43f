// Package scaling decides how many dynamic servers a role should run from
// the length of its work queue. A decision is a pure function of what the
// caller observed (queue samples, the servers davit launched with their
// launch and ready times, the clock), so the autoscale task, the simulator
// and the tests all use the same rules.
package scaling

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Sample is one reading of the queue length.
type Sample struct {
	At     time.Time
	Length int
	// Err is set when the reading failed or was not an integer; Length is
	// then meaningless. A decision never scales on such a sample.
	Err error
}

// Server is one dynamic server (one davit launched, not the base fleet).
type Server struct {
	ID         string
	LaunchedAt time.Time
	// ReadyAt is when the server finished launching and started working;
	// zero while it is still booting.
	ReadyAt time.Time
}

// Booting reports whether the server has not started working yet.
func (s Server) Booting() bool { return s.ReadyAt.IsZero() }

// Input is what a policy sees at one decision.
type Input struct {
	Now time.Time
	// Queue holds the readings known to the caller, oldest first; the last
	// one is the current reading. A single run from cron has one.
	Queue []Sample
	// Servers are the dynamic servers of the role, in any order.
	Servers []Server
	// Base is the number of always-on servers that work the queue too.
	Base int
}

// Action is what a decision asks for.
type Action string

const (
	Hold      Action = "hold"
	Launch    Action = "launch"
	Terminate Action = "terminate"
)

// Decision is a policy's answer, with what it saw, for people to read.
type Decision struct {
	Action Action
	// Count is the number of servers to launch (Launch) or retire
	// (Terminate).
	Count int
	// Servers are the servers to retire (Terminate), newest first.
	Servers []string
	// Rule names the rule that fired, e.g. "queue above 20".
	Rule string
	// Reason says why in a sentence.
	Reason string

	Queue   int  // the current queue length, when QueueOK
	QueueOK bool // the current reading was a number
	Ready   int  // dynamic servers working
	Booting int  // dynamic servers still booting
}

// String is the one-line summary the autoscale task prints.
func (d Decision) String() string {
	q := "unknown"
	if d.QueueOK {
		q = fmt.Sprint(d.Queue)
	}
	act := string(d.Action)
	switch d.Action {
	case Launch:
		act = fmt.Sprintf("launch %d", d.Count)
	case Terminate:
		act = "terminate " + strings.Join(d.Servers, ", ")
	}
	return fmt.Sprintf("queue %s, servers %d ready + %d booting, rule: %s, action: %s (%s)",
		q, d.Ready, d.Booting, d.Rule, act, d.Reason)
}

// Policy turns an observation into a decision.
type Policy interface {
	Name() string
	Decide(Input) Decision
}

// observation is what every policy works out first.
type observation struct {
	queue   int
	ready   []Server // oldest first
	booting []Server // oldest first
	all     []Server // oldest first
}

// observe counts the servers and checks the current reading. It returns a
// Hold decision, filled in, when there is no usable reading.
func observe(in Input) (observation, Decision, bool) {
	var o observation
	o.all = append([]Server(nil), in.Servers...)
	sort.SliceStable(o.all, func(i, j int) bool { return o.all[i].LaunchedAt.Before(o.all[j].LaunchedAt) })
	for _, s := range o.all {
		if s.Booting() {
			o.booting = append(o.booting, s)
		} else {
			o.ready = append(o.ready, s)
		}
	}
	d := Decision{Action: Hold, Ready: len(o.ready), Booting: len(o.booting)}
	if len(in.Queue) == 0 {
		d.Rule = "no queue reading"
		d.Reason = "nothing to decide on"
		return o, d, false
	}
	cur := in.Queue[len(in.Queue)-1]
	if cur.Err != nil {
		d.Rule = "bad queue reading"
		d.Reason = cur.Err.Error() + "; never scaling on bad data"
		return o, d, false
	}
	if cur.Length < 0 {
		d.Rule = "bad queue reading"
		d.Reason = fmt.Sprintf("queue length %d is negative; never scaling on bad data", cur.Length)
		return o, d, false
	}
	o.queue = cur.Length
	d.Queue, d.QueueOK = cur.Length, true
	return o, d, true
}

// newest is the server a retirement picks: the last launched.
func (o observation) newest() Server { return o.all[len(o.all)-1] }

// Named returns the policy called name with its default settings.
func Named(name string) (Policy, error) {
	switch name {
	case "seed":
		s := DefaultSeed()
		return &s, nil
	case "drain":
		d := DefaultDrain()
		return &d, nil
	}
	return nil, fmt.Errorf("unknown policy %q (known: drain, seed)", name)
}

// Names lists the policies Named knows, the default first.
func Names() []string { return []string{"drain", "seed"} }

// minutes writes a duration as people read it: 45m, 1h5m, 50m12s.
func minutes(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
