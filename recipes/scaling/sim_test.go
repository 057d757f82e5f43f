package scaling

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/davit-deploy/davit/recipes/scaling/internal/weekday"
)

// script is a policy that does what it is told at given minutes and
// records what it saw.
type script struct {
	at   map[int]Decision
	seen map[int]Input
}

func (*script) Name() string { return "script" }

func (s *script) Decide(in Input) Decision {
	m := int(in.Now.Sub(simStart).Minutes())
	if s.seen == nil {
		s.seen = map[int]Input{}
	}
	s.seen[m] = in
	if d, ok := s.at[m]; ok {
		return d
	}
	return Decision{Action: Hold}
}

func TestSimulateHandComputed(t *testing.T) {
	// Base 1 server, 1 job/min, boot 2, decide every minute. 3 jobs arrive
	// at minute 0; a server launched at 0 works from minute 2 and is
	// terminated at 4.
	//   minute 0: base finishes job 1 (wait 0), 2 wait
	//   minute 1: base finishes job 2 (wait 1), 1 waits
	//   minute 2: job 3 finished (wait 2), none wait
	// backlog 2+1 = 3; waits 0,1,2: p95 (3rd of 3) is 2; up 4 of 6 minutes.
	p := &script{at: map[int]Decision{
		0: {Action: Launch, Count: 1},
		4: {Action: Terminate, Count: 1, Servers: []string{"i-1"}},
	}}
	r, err := Simulate([]int{3, 0, 0, 0, 0, 0}, p, Model{Boot: 2, JobsPerServer: 1, Interval: 1, Base: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Policy: "script", InstanceHours: 4.0 / 60, InstanceHoursHourly: 1, BacklogJobMinutes: 3, P95WaitMinutes: 2, Launches: 1}
	if r != want {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	if got := p.seen[1].Servers; len(got) != 1 || !got[0].Booting() {
		t.Fatalf("minute 1 saw %+v, want i-1 booting", got)
	}
	if got := p.seen[2].Servers; len(got) != 1 || !got[0].ReadyAt.Equal(simStart.Add(2*time.Minute)) {
		t.Fatalf("minute 2 saw %+v, want i-1 ready at minute 2", got)
	}
	if len(p.seen[5].Servers) != 0 {
		t.Fatalf("minute 5 saw %+v after the termination", p.seen[5].Servers)
	}
}

func TestSimulateIntervalAndLeftovers(t *testing.T) {
	// Base 1 at 2 jobs/min, decide every 5 minutes. 5 arrive at minute 0,
	// 1 at minute 5, 4 at the last minute 11:
	//   0: 2 done (wait 0), 3 left   1: 2 done (wait 1), 1 left
	//   2: 1 done (wait 2)           5: 1 done (wait 0)
	//   11: 2 done (wait 0), 2 left at the end: wait 1 each (12-11)
	// backlog 3+1+2 = 6; waits 0×5, 1×4, 2×1: p95 (10th of 10) is 2.
	// The queue the policy sees is read after arrivals, before work.
	arr := make([]int, 12)
	arr[0], arr[5], arr[11] = 5, 1, 4
	p := &script{}
	r, err := Simulate(arr, p, Model{Boot: 10, JobsPerServer: 2, Interval: 5, Base: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.BacklogJobMinutes != 6 || r.P95WaitMinutes != 2 || r.InstanceHours != 0 || r.Launches != 0 {
		t.Fatalf("got %+v", r)
	}
	var mins []int
	for m := range p.seen {
		mins = append(mins, m)
	}
	if len(mins) != 3 || p.seen[0].Queue[0].Length != 5 || p.seen[5].Queue[1].Length != 1 || len(p.seen[10].Queue) != 3 {
		t.Fatalf("decisions at %v saw %+v", mins, p.seen)
	}
}

func TestSimulateHourlyBillingAndRunningAtEnd(t *testing.T) {
	// One server runs from minute 0 to the end, 62 minutes (2 started
	// hours); one launched in the last minute runs 1 minute (1 started hour).
	arr := make([]int, 62)
	p := &script{at: map[int]Decision{
		0:  {Action: Launch, Count: 1},
		61: {Action: Launch, Count: 1},
	}}
	r, err := Simulate(arr, p, Model{Boot: 10, JobsPerServer: 2, Interval: 1, Base: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.InstanceHoursHourly != 3 || r.InstanceHours != 63.0/60 || r.Launches != 2 {
		t.Fatalf("got %+v", r)
	}
}

func TestSimulateRejectsBadRetirement(t *testing.T) {
	p := &script{at: map[int]Decision{0: {Action: Terminate, Count: 1, Servers: []string{"i-9"}}}}
	if _, err := Simulate([]int{0}, p, DefaultModel()); err == nil || !strings.Contains(err.Error(), `"i-9"`) {
		t.Fatalf("err %v", err)
	}
	if _, err := Simulate([]int{0}, p, Model{Interval: 0, JobsPerServer: 1}); err == nil {
		t.Fatal("interval 0 accepted")
	}
}

func TestReadTrace(t *testing.T) {
	got, err := ReadTrace(strings.NewReader("minute,arrivals\n0,3\n2, 5\n3,0\n"), "t.csv")
	if err != nil || !reflect.DeepEqual(got, []int{3, 0, 5, 0}) {
		t.Fatalf("got %v %v", got, err)
	}
	var buf bytes.Buffer
	if err := WriteTrace(&buf, got); err != nil {
		t.Fatal(err)
	}
	back, err := ReadTrace(&buf, "round trip")
	if err != nil || !reflect.DeepEqual(back, got) {
		t.Fatalf("round trip %v %v", back, err)
	}
	for in, want := range map[string]string{
		"0,1\n0,2\n":      "t.csv:2: minute 0 comes after minute 0",
		"0,1\n1,x\n":      `t.csv:2: arrivals "x"`,
		"-1,1\n":          `t.csv:1: minute "-1"`,
		"0,1,2\n":         "t.csv",
		"minute,arrivals": "no minutes",
	} {
		if _, err := ReadTrace(strings.NewReader(in), "t.csv"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %q", in, err, want)
		}
	}
}

// TestDrainBeatsSeedOnWeekdays is the tuning target of the drain policy:
// on every seeded weekday trace it costs at most 75% of the seed rule's
// instance-hours (billed per second) with no more backlog.
func TestDrainBeatsSeedOnWeekdays(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		trace := weekday.Generate(seed)
		s, d := DefaultSeed(), DefaultDrain()
		rs, err := Simulate(trace, &s, DefaultModel())
		if err != nil {
			t.Fatal(err)
		}
		rd, err := Simulate(trace, &d, DefaultModel())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("seed %d: seed %+v\n          drain %+v", seed, rs, rd)
		if rd.InstanceHours > 0.75*rs.InstanceHours {
			t.Errorf("seed %d: drain %.2f instance-hours, more than 75%% of seed's %.2f", seed, rd.InstanceHours, rs.InstanceHours)
		}
		if rd.BacklogJobMinutes > rs.BacklogJobMinutes {
			t.Errorf("seed %d: drain backlog %d job-minutes, more than seed's %d", seed, rd.BacklogJobMinutes, rs.BacklogJobMinutes)
		}
		if rd.InstanceHoursHourly > rs.InstanceHoursHourly {
			t.Errorf("seed %d: drain %d started hours, more than seed's %d", seed, rd.InstanceHoursHourly, rs.InstanceHoursHourly)
		}
	}
}

func TestWeekdayTraceShape(t *testing.T) {
	a, b := weekday.Generate(7), weekday.Generate(7)
	if !reflect.DeepEqual(a, b) || len(a) != 1440 {
		t.Fatal("the generator is not reproducible or not a day long")
	}
	sum := func(from, to int) (n int) {
		for _, x := range a[from:to] {
			n += x
		}
		return n
	}
	if a[9*60] < 150 || a[13*60] < 150 || a[17*60] < 150 {
		t.Fatalf("bursts missing: %d %d %d", a[540], a[780], a[1020])
	}
	night := float64(sum(0, 8*60)) / (8 * 60)
	day := float64(sum(8*60, 21*60)-450) / (13 * 60)
	if night < 0.35 || night > 0.65 || day < 2.7 || day > 3.3 {
		t.Fatalf("rates: night %.2f/min, day %.2f/min", night, day)
	}
}

// BenchmarkSimulateWeekday is one day of the default model per policy: how
// long a user waits for autoscale:simulate on a day's trace.
func BenchmarkSimulateWeekday(b *testing.B) {
	trace := weekday.Generate(1)
	for _, name := range Names() {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				p, _ := Named(name)
				if _, err := Simulate(trace, p, DefaultModel()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
