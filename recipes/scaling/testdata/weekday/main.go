// Command weekday writes a seeded weekday queue trace as CSV (minute,
// arrivals): night 0.5 jobs/min, 3 jobs/min from 08:00 to 21:00, bursts of
// 150 report jobs at 09:00, 13:00 and 17:00, Poisson arrivals.
//
//	go run ./recipes/scaling/testdata/weekday -seed 1 > weekday-1.csv
//	davit autoscale:simulate trace=weekday-1.csv
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/davit-deploy/davit/recipes/scaling"
	"github.com/davit-deploy/davit/recipes/scaling/internal/weekday"
)

func main() {
	seed := flag.Uint64("seed", 1, "random seed; the same seed gives the same trace")
	flag.Parse()
	if err := scaling.WriteTrace(os.Stdout, weekday.Generate(*seed)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
