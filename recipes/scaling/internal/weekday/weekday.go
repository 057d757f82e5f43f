// Package weekday generates the simulator's test traces: one weekday of a
// job queue, seeded so a trace can be made again.
package weekday

import (
	"math"
	"math/rand/v2"
)

const (
	nightRate = 0.5 // jobs per minute outside business hours
	dayRate   = 3.0 // jobs per minute from 08:00 to 21:00
	dayStart  = 8 * 60
	dayEnd    = 21 * 60
	burst     = 150 // report jobs queued at once
)

// burstMinutes are 09:00, 13:00 and 17:00.
var burstMinutes = [...]int{9 * 60, 13 * 60, 17 * 60}

// Generate returns 1440 minutes of arrivals: Poisson at the night or day
// rate, plus the report bursts.
func Generate(seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, 0x5ca1ab1e))
	out := make([]int, 24*60)
	for m := range out {
		rate := nightRate
		if m >= dayStart && m < dayEnd {
			rate = dayRate
		}
		out[m] = poisson(rng, rate)
	}
	for _, m := range burstMinutes {
		out[m] += burst
	}
	return out
}

// poisson draws from a Poisson distribution by multiplying uniforms until
// the product falls below e^-rate (Knuth); the rates here are small.
func poisson(rng *rand.Rand, rate float64) int {
	limit := math.Exp(-rate)
	n, p := 0, rng.Float64()
	for p > limit {
		n++
		p *= rng.Float64()
	}
	return n
}
