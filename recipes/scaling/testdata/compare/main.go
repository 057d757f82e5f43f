// Command compare prints the policy table of the README: each policy on
// seeded weekday traces under the default model.
//
//	go run ./recipes/scaling/testdata/compare [-seeds 4] [-hourly-billing]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/davit-deploy/davit/recipes/scaling"
	"github.com/davit-deploy/davit/recipes/scaling/internal/weekday"
)

func main() {
	seeds := flag.Int("seeds", 4, "number of seeded traces (seeds 1..N)")
	hourly := flag.Bool("hourly-billing", false, "tell drain that servers are billed per started hour")
	flag.Parse()
	fmt.Println("| trace | policy | instance-hours | of seed's | started hours | backlog job-minutes | p95 wait (min) | launches |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|")
	for seed := 1; seed <= *seeds; seed++ {
		trace := weekday.Generate(uint64(seed))
		var seedHours float64
		for _, name := range []string{"seed", "drain"} {
			p, _ := scaling.Named(name)
			if d, ok := p.(*scaling.Drain); ok {
				d.HourlyBilling = *hourly
			}
			r, err := scaling.Simulate(trace, p, scaling.DefaultModel())
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			if name == "seed" {
				seedHours = r.InstanceHours
			}
			fmt.Printf("| weekday seed %d | %s | %.2f | %.0f%% | %d | %d | %d | %d |\n", seed, r.Policy,
				r.InstanceHours, 100*r.InstanceHours/seedHours, r.InstanceHoursHourly, r.BacklogJobMinutes, r.P95WaitMinutes, r.Launches)
		}
	}
}
