package scaling

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Model is the simulator's fixed model of a job fleet, so results compare
// across policies and tools: one-minute steps; each minute's arrivals join
// a FIFO queue; the policy runs every Interval minutes (minute 0, Interval,
// …) before the servers work; Base servers always work; a launched server
// works from Boot minutes after its launch; every working server finishes
// JobsPerServer jobs a minute; a terminated server stops at once.
type Model struct {
	Boot          int // minutes from launch to working (10)
	JobsPerServer int // jobs a working server finishes per minute (2)
	Interval      int // minutes between decisions (5)
	Base          int // always-on servers (1)
}

// DefaultModel is the model of the original setup.
func DefaultModel() Model { return Model{Boot: 10, JobsPerServer: 2, Interval: 5, Base: 1} }

// Validate reports a model that cannot run.
func (m Model) Validate() error {
	switch {
	case m.Boot < 0:
		return fmt.Errorf("boot %d minutes is negative", m.Boot)
	case m.JobsPerServer <= 0:
		return fmt.Errorf("jobs per server %d must be positive", m.JobsPerServer)
	case m.Interval <= 0:
		return fmt.Errorf("interval %d minutes must be positive", m.Interval)
	case m.Base < 0:
		return fmt.Errorf("base %d is negative", m.Base)
	}
	return nil
}

// Result is what a policy cost on a trace. The JSON names are the ones the
// simulate command prints with --format json.
type Result struct {
	Policy string `json:"policy"`
	// InstanceHours is the dynamic servers' time, billed per second.
	InstanceHours float64 `json:"instance_hours"`
	// InstanceHoursHourly bills every started hour of each dynamic server.
	InstanceHoursHourly int `json:"instance_hours_hourly"`
	// BacklogJobMinutes sums the jobs left waiting after each minute's work.
	BacklogJobMinutes int `json:"backlog_job_minutes"`
	// P95WaitMinutes is the 95th percentile (nearest rank) of the minutes
	// from a job's arrival to the minute it is finished in; a job still
	// queued when the trace ends counts with its wait until then.
	P95WaitMinutes int `json:"p95_wait_minutes"`
	Launches       int `json:"launches"`
}

// simStart is the simulated clock's minute 0: a Monday at midnight, UTC.
var simStart = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

type simServer struct {
	id     string
	launch int // minute launched
	stop   int // minute terminated, -1 while running
}

type batch struct{ minute, jobs int }

// historyLimit bounds the readings a policy is shown: more than any quiet
// spell a policy may look back over at the shortest interval.
const historyLimit = 288

// Simulate replays arrivals (jobs arriving in each minute) against policy.
func Simulate(arrivals []int, policy Policy, m Model) (Result, error) {
	if err := m.Validate(); err != nil {
		return Result{}, err
	}
	res := Result{Policy: policy.Name()}
	var (
		queue   []batch // FIFO, oldest first
		queued  int
		servers []*simServer
		samples []Sample
		waits   = map[int]int{} // wait minutes -> jobs
	)
	at := func(minute int) time.Time { return simStart.Add(time.Duration(minute) * time.Minute) }
	for now, n := range arrivals {
		if n > 0 {
			queue = append(queue, batch{now, n})
			queued += n
		}
		if now%m.Interval == 0 {
			samples = append(samples, Sample{At: at(now), Length: queued})
			if len(samples) > historyLimit {
				samples = samples[len(samples)-historyLimit:]
			}
			in := Input{Now: at(now), Queue: samples, Base: m.Base}
			for _, s := range servers {
				if s.stop >= 0 {
					continue
				}
				srv := Server{ID: s.id, LaunchedAt: at(s.launch)}
				if now >= s.launch+m.Boot {
					srv.ReadyAt = at(s.launch + m.Boot)
				}
				in.Servers = append(in.Servers, srv)
			}
			d := policy.Decide(in)
			switch d.Action {
			case Launch:
				for range d.Count {
					res.Launches++
					servers = append(servers, &simServer{id: fmt.Sprintf("i-%d", res.Launches), launch: now, stop: -1})
				}
			case Terminate:
				for _, id := range d.Servers {
					found := false
					for _, s := range servers {
						if s.id == id && s.stop < 0 {
							s.stop, found = now, true
						}
					}
					if !found {
						return res, fmt.Errorf("minute %d: policy %s retired %q, which does not run", now, policy.Name(), id)
					}
				}
			}
		}
		working := m.Base
		for _, s := range servers {
			if s.stop < 0 && now >= s.launch+m.Boot {
				working++
			}
		}
		for capacity := working * m.JobsPerServer; capacity > 0 && len(queue) > 0; {
			b := &queue[0]
			done := min(capacity, b.jobs)
			waits[now-b.minute] += done
			b.jobs -= done
			queued -= done
			capacity -= done
			if b.jobs == 0 {
				queue = queue[1:]
			}
		}
		res.BacklogJobMinutes += queued
	}
	end := len(arrivals)
	for _, b := range queue {
		waits[end-b.minute] += b.jobs
	}
	for _, s := range servers {
		stop := s.stop
		if stop < 0 {
			stop = end
		}
		up := stop - s.launch
		res.InstanceHours += float64(up) / 60
		res.InstanceHoursHourly += max(1, int(math.Ceil(float64(up)/60)))
	}
	res.P95WaitMinutes = percentile(waits, 0.95)
	return res, nil
}

// percentile is the nearest-rank percentile of a histogram.
func percentile(hist map[int]int, p float64) int {
	total := 0
	keys := make([]int, 0, len(hist))
	for k, n := range hist {
		if n > 0 {
			keys = append(keys, k)
			total += n
		}
	}
	if total == 0 {
		return 0
	}
	sort.Ints(keys)
	rank := int(math.Ceil(p * float64(total)))
	seen := 0
	for _, k := range keys {
		seen += hist[k]
		if seen >= rank {
			return k
		}
	}
	return keys[len(keys)-1]
}
