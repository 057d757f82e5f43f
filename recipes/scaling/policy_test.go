package scaling

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2024, time.March, 4, 12, 0, 0, 0, time.UTC)

func ago(m int) time.Time { return t0.Add(-time.Duration(m) * time.Minute) }

// now is one current reading.
func now(n int) []Sample { return []Sample{{At: t0, Length: n}} }

// ready is a server launched launchedAgo minutes ago that has worked since
// readyAgo minutes ago.
func ready(id string, launchedAgo, readyAgo int) Server {
	return Server{ID: id, LaunchedAt: ago(launchedAgo), ReadyAt: ago(readyAgo)}
}

func booting(id string, launchedAgo int) Server { return Server{ID: id, LaunchedAt: ago(launchedAgo)} }

func decide(t *testing.T, p Policy, in Input) Decision {
	t.Helper()
	if in.Now.IsZero() {
		in.Now = t0
	}
	d := p.Decide(in)
	t.Logf("%s", d)
	return d
}

func wantAction(t *testing.T, d Decision, a Action, count int, servers ...string) {
	t.Helper()
	if d.Action != a || d.Count != count {
		t.Fatalf("decision %s %d, want %s %d: %s", d.Action, d.Count, a, count, d)
	}
	if a == Terminate && !reflect.DeepEqual(d.Servers, servers) {
		t.Fatalf("retires %v, want %v", d.Servers, servers)
	}
}

func TestSeedLaunchThreshold(t *testing.T) {
	s := DefaultSeed()
	wantAction(t, decide(t, &s, Input{Queue: now(20)}), Hold, 0)
	d := decide(t, &s, Input{Queue: now(21)})
	wantAction(t, d, Launch, 1)
	if d.Rule != "queue above 20" || !d.QueueOK || d.Queue != 21 {
		t.Fatalf("rule %q queue %d/%v", d.Rule, d.Queue, d.QueueOK)
	}
}

func TestSeedAtMostTwoExtraBeforeLaunching(t *testing.T) {
	s := DefaultSeed()
	two := []Server{ready("a", 90, 80), ready("b", 60, 50)}
	wantAction(t, decide(t, &s, Input{Queue: now(30), Servers: two}), Launch, 1)
	three := append(two, ready("c", 30, 20))
	d := decide(t, &s, Input{Queue: now(30), Servers: three})
	wantAction(t, d, Hold, 0)
	if d.Ready != 3 || d.Booting != 0 {
		t.Fatalf("counted %d ready %d booting", d.Ready, d.Booting)
	}
}

func TestSeedCountsBootingServers(t *testing.T) {
	s := DefaultSeed()
	servers := []Server{ready("a", 90, 80), booting("b", 5), booting("c", 1)}
	d := decide(t, &s, Input{Queue: now(100), Servers: servers})
	wantAction(t, d, Hold, 0)
	if d.Ready != 1 || d.Booting != 2 {
		t.Fatalf("counted %d ready %d booting", d.Ready, d.Booting)
	}
}

func TestSeedLowThresholdAnd45Minutes(t *testing.T) {
	s := DefaultSeed()
	// The newest is c whatever the order given.
	servers := []Server{ready("c", 46, 36), ready("a", 200, 190), ready("b", 100, 90)}
	wantAction(t, decide(t, &s, Input{Queue: now(5), Servers: servers}), Hold, 0)
	wantAction(t, decide(t, &s, Input{Queue: now(4), Servers: servers}), Terminate, 1, "c")
	// Up exactly 45 minutes is not more than 45.
	servers[0] = ready("c", 45, 35)
	d := decide(t, &s, Input{Queue: now(0), Servers: servers})
	wantAction(t, d, Hold, 0)
	if !strings.Contains(d.Reason, "not more than 45m") {
		t.Fatalf("reason %q", d.Reason)
	}
	// Nothing to retire.
	wantAction(t, decide(t, &s, Input{Queue: now(0)}), Hold, 0)
}

func TestSeedThresholdsSettable(t *testing.T) {
	s := Seed{High: 50, Low: 10, MaxExtra: 0, MinUptime: 10 * time.Minute}
	wantAction(t, decide(t, &s, Input{Queue: now(30)}), Hold, 0)
	wantAction(t, decide(t, &s, Input{Queue: now(51)}), Launch, 1)
	one := []Server{ready("a", 11, 1)}
	wantAction(t, decide(t, &s, Input{Queue: now(51), Servers: one}), Hold, 0)
	wantAction(t, decide(t, &s, Input{Queue: now(9), Servers: one}), Terminate, 1, "a")
	if err := (&Seed{High: 1, Low: 2}).Validate(); err == nil {
		t.Fatal("low above high accepted")
	}
}

func TestBadQueueDataNeverScales(t *testing.T) {
	overdue := []Server{ready("a", 300, 290)}
	for _, p := range []Policy{ptr(DefaultSeed()), ptr(DefaultDrain())} {
		for name, q := range map[string][]Sample{
			"none":     nil,
			"error":    {{At: t0, Err: errors.New(`queue answered "<html>", not an integer`)}},
			"negative": {{At: t0, Length: -3}},
			// A good earlier reading does not stand in for a bad current one.
			"stale": {{At: ago(5), Length: 500}, {At: t0, Err: errors.New("timeout")}},
		} {
			d := decide(t, p, Input{Queue: q, Servers: overdue})
			if d.Action != Hold || d.QueueOK {
				t.Fatalf("%s/%s: %s", p.Name(), name, d)
			}
			if name == "error" && !strings.Contains(d.Reason, "not an integer") {
				t.Fatalf("%s: reason %q does not say why", p.Name(), d.Reason)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestDrainSizesLaunchToTarget(t *testing.T) {
	p := DefaultDrain() // target 40m, 2 jobs/min, boot 10m: a new server does 60 within target
	// The base server finishes 80 within 40 minutes.
	wantAction(t, decide(t, &p, Input{Queue: now(80), Base: 1}), Hold, 0)
	wantAction(t, decide(t, &p, Input{Queue: now(81), Base: 1}), Launch, 1)
	wantAction(t, decide(t, &p, Input{Queue: now(200), Base: 1}), Launch, 2)
	wantAction(t, decide(t, &p, Input{Queue: now(201), Base: 1}), Launch, 3)
	// At most Max dynamic servers.
	d := decide(t, &p, Input{Queue: now(1000), Base: 1})
	wantAction(t, d, Launch, 4)
	if !strings.Contains(d.Reason, "capped at the maximum 4") {
		t.Fatalf("reason %q", d.Reason)
	}
	full := []Server{ready("a", 60, 50), ready("b", 60, 50), ready("c", 60, 50), booting("d", 1)}
	wantAction(t, decide(t, &p, Input{Queue: now(1000), Base: 1, Servers: full}), Hold, 0)
	// High: a short queue launches nothing even with no server working.
	wantAction(t, decide(t, &p, Input{Queue: now(5)}), Hold, 0)
	wantAction(t, decide(t, &p, Input{Queue: now(6)}), Launch, 1)
}

func TestDrainCountsBootingServers(t *testing.T) {
	p := DefaultDrain()
	// Two servers launched 5 minutes ago work 35 of the next 40 minutes:
	// 70 jobs each, with the base's 80 exactly 220.
	boot := []Server{booting("a", 5), booting("b", 5)}
	d := decide(t, &p, Input{Queue: now(220), Base: 1, Servers: boot})
	wantAction(t, d, Hold, 0)
	if d.Booting != 2 {
		t.Fatalf("booting %d", d.Booting)
	}
	wantAction(t, decide(t, &p, Input{Queue: now(221), Base: 1, Servers: boot}), Launch, 1)
}

func TestDrainMeasuresArrivalRate(t *testing.T) {
	p := DefaultDrain()
	// 5 minutes ago 100 waited; the base could finish only 10 of them, so
	// it worked throughout: 20 more waiting means 30 arrived, 6/min.
	q := []Sample{{At: ago(5), Length: 100}, {At: t0, Length: 120}}
	d := decide(t, &p, Input{Queue: q, Base: 1})
	// need 120 + 6*40 = 360, base does 80: 280 more is 5 new servers, max 4.
	wantAction(t, d, Launch, 4)
	if !strings.Contains(d.Reason, "about 6.0/min") {
		t.Fatalf("reason %q", d.Reason)
	}
	// From a short queue only a lower bound is known, at most what the
	// working servers finish (a burst is not a rate).
	q = []Sample{{At: ago(5), Length: 2}, {At: t0, Length: 150}}
	d = decide(t, &p, Input{Queue: q, Base: 1})
	// need 150 + 2*40 = 230, base 80: 150 more is 3 servers.
	wantAction(t, d, Launch, 3)
	if !strings.Contains(d.Reason, "at least 2.0/min") {
		t.Fatalf("reason %q", d.Reason)
	}
}

func quiet(lengths ...int) []Sample {
	var q []Sample
	for i, n := range lengths {
		q = append(q, Sample{At: ago(5 * (len(lengths) - 1 - i)), Length: n})
	}
	return q
}

func TestDrainRetiresAfterQuietSpell(t *testing.T) {
	p := DefaultDrain() // low 5, quiet 5m
	extra := []Server{ready("a", 120, 110), ready("b", 30, 20), ready("c", 25, 15)}
	// The spell must cover Quiet: a reading above Low 5 minutes ago breaks it.
	wantAction(t, decide(t, &p, Input{Queue: quiet(6, 0), Base: 1, Servers: extra}), Hold, 0)
	wantAction(t, decide(t, &p, Input{Queue: quiet(9, 6), Base: 1, Servers: extra}), Hold, 0)
	// Quiet and hardly anything arriving: all three go, newest first.
	wantAction(t, decide(t, &p, Input{Queue: quiet(40, 0, 1), Base: 1, Servers: extra}), Terminate, 3, "c", "b", "a")
	// About 3 jobs a minute arrive (mean quiet length 3 over JobMinutes
	// 1): base and one extra finish 4 >= 3*1.1, so two go.
	wantAction(t, decide(t, &p, Input{Queue: quiet(40, 3, 3, 3), Base: 1, Servers: extra}), Terminate, 2, "c", "b")
	d := decide(t, &p, Input{Queue: quiet(40, 3, 3, 3), Base: 1, Servers: extra[:1]})
	wantAction(t, d, Hold, 0)
	if !strings.Contains(d.Reason, "about 3.0/min") {
		t.Fatalf("reason %q", d.Reason)
	}
	// A failed reading within the spell: it may not have been quiet.
	bad := []Sample{{At: ago(5), Err: errors.New("timeout")}, {At: t0, Length: 0}}
	wantAction(t, decide(t, &p, Input{Queue: bad, Base: 1, Servers: extra}), Hold, 0)
}

func TestDrainHourlyBillingRetiresNearPaidHourEnd(t *testing.T) {
	p := DefaultDrain()
	p.HourlyBilling = true // retire only in the last 10 minutes of a paid hour
	q := quiet(0, 0)
	wantAction(t, decide(t, &p, Input{Queue: q, Base: 1, Servers: []Server{ready("a", 30, 20)}}), Hold, 0)
	wantAction(t, decide(t, &p, Input{Queue: q, Base: 1, Servers: []Server{ready("a", 50, 40)}}), Terminate, 1, "a")
	wantAction(t, decide(t, &p, Input{Queue: q, Base: 1, Servers: []Server{ready("a", 120, 110)}}), Terminate, 1, "a")
	wantAction(t, decide(t, &p, Input{Queue: q, Base: 1, Servers: []Server{ready("a", 125, 115)}}), Hold, 0)
	// Newest first: the newest is mid-hour, so nothing goes, even though
	// an older one is near its hour's end.
	both := []Server{ready("old", 115, 105), ready("new", 20, 10)}
	d := decide(t, &p, Input{Queue: q, Base: 1, Servers: both})
	wantAction(t, d, Hold, 0)
	if !strings.Contains(d.Reason, "the newest, new, has 40m of its paid hour left") {
		t.Fatalf("reason %q", d.Reason)
	}
	// Both near their hours' ends: both go; the older one's hour is not
	// touched when the newest must stay.
	both = []Server{ready("old", 115, 105), ready("new", 55, 45)}
	wantAction(t, decide(t, &p, Input{Queue: q, Base: 1, Servers: both}), Terminate, 2, "new", "old")
	both = []Server{ready("old", 100, 90), ready("new", 55, 45)}
	wantAction(t, decide(t, &p, Input{Queue: q, Base: 1, Servers: both}), Terminate, 1, "new")
}

func TestDrainSingleReadingFromCron(t *testing.T) {
	p := DefaultDrain()
	// One reading: the newest must have worked for the whole quiet spell.
	wantAction(t, decide(t, &p, Input{Queue: now(0), Base: 1, Servers: []Server{ready("a", 13, 3)}}), Hold, 0)
	wantAction(t, decide(t, &p, Input{Queue: now(0), Base: 1, Servers: []Server{ready("a", 15, 5)}}), Terminate, 1, "a")
	wantAction(t, decide(t, &p, Input{Queue: now(0), Base: 1, Servers: []Server{booting("a", 8)}}), Hold, 0)
}

func TestDrainValidate(t *testing.T) {
	p := DefaultDrain()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	p.Target = p.Boot
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "target") {
		t.Fatalf("target = boot: %v", err)
	}
}

func TestNamed(t *testing.T) {
	for _, n := range Names() {
		p, err := Named(n)
		if err != nil || p.Name() != n {
			t.Fatalf("%s: %v %v", n, p, err)
		}
	}
	if _, err := Named("smart"); err == nil || !strings.Contains(err.Error(), "drain, seed") {
		t.Fatalf("unknown policy: %v", err)
	}
}
