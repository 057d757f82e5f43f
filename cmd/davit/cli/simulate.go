package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	urfave "github.com/urfave/cli/v2"

	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/recipes/scaling"
)

// simulateCommand is `davit autoscale:simulate trace=FILE [policy=…]`: it
// replays a queue trace against the autoscaler's policies and prints what
// each would have cost. It needs no Deployfile.
func simulateCommand(stdout io.Writer) *urfave.Command {
	def := scaling.DefaultModel()
	return &urfave.Command{
		Name:      "autoscale:simulate",
		Usage:     "replay a queue trace (CSV minute,arrivals) and print what each autoscale policy would have cost",
		ArgsUsage: "trace=FILE [policy=drain,seed]",
		Flags: []urfave.Flag{
			&urfave.DurationFlag{Name: "boot", Value: time.Duration(def.Boot) * time.Minute, Usage: "time from a launch until the server works"},
			&urfave.IntFlag{Name: "jobs-per-server", Value: def.JobsPerServer, Usage: "jobs a working server finishes per minute"},
			&urfave.DurationFlag{Name: "interval", Value: time.Duration(def.Interval) * time.Minute, Usage: "time between decisions"},
			&urfave.IntFlag{Name: "base", Value: def.Base, Usage: "always-on servers"},
			&urfave.BoolFlag{Name: "hourly-billing", DisableDefaultText: true, Usage: "tell drain that servers are billed per started hour"},
			&urfave.StringFlag{Name: "format", Usage: "output: pretty, plain or json (one object per policy)"},
		},
		Action: func(c *urfave.Context) error { return simulate(c, stdout) },
	}
}

func simulate(c *urfave.Context, stdout io.Writer) error {
	opts := map[string]string{}
	for _, a := range c.Args().Slice() {
		k, v, ok := strings.Cut(a, "=")
		switch {
		case strings.HasPrefix(a, "-"):
			return usageError(fmt.Errorf("flag %s after trace= or policy=: flags go first, as in `davit autoscale:simulate %s trace=FILE`", a, a))
		case !ok:
			return usageError(fmt.Errorf("autoscale:simulate takes trace=FILE and policy=NAMES, not %q", a))
		case k != "trace" && k != "policy":
			return usageError(fmt.Errorf("autoscale:simulate: unknown setting %s= (want trace= and policy=)", k))
		}
		opts[k] = v
	}
	model, err := simModel(c)
	if err != nil {
		return usageError(err)
	}
	policies, err := simPolicies(opts["policy"], model, c.Bool("hourly-billing"))
	if err != nil {
		return usageError(err)
	}
	// --format may come before the command, as for every davit command.
	format := ""
	for _, l := range c.Lineage() {
		if l.IsSet("format") {
			format = l.String("format")
			break
		}
	}
	switch format {
	case "", "pretty", "plain", "json":
	default:
		return usageError(fmt.Errorf("--format %q: want pretty, plain or json", format))
	}
	path := opts["trace"]
	if path == "" {
		return usageError(fmt.Errorf("autoscale:simulate needs trace=FILE, a CSV of minute,arrivals"))
	}
	f, err := os.Open(path)
	if err != nil {
		return usageError(fmt.Errorf("trace=%s: %w", path, err))
	}
	defer f.Close()
	trace, err := scaling.ReadTrace(f, path)
	if err != nil {
		return usageError(err)
	}
	var results []scaling.Result
	for _, p := range policies {
		r, err := scaling.Simulate(trace, p, model)
		if err != nil {
			return taskError(fmt.Errorf("simulate %s: %w", p.Name(), err))
		}
		results = append(results, r)
	}
	if format == "json" {
		enc := json.NewEncoder(stdout)
		for _, r := range results {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	t := &output.Table{Columns: []string{"policy", "instance-hours", "hourly", "backlog job-minutes", "p95 wait", "launches"}}
	for _, r := range results {
		t.Rows = append(t.Rows, []string{r.Policy, fmt.Sprintf("%.2f", r.InstanceHours), fmt.Sprint(r.InstanceHoursHourly),
			fmt.Sprint(r.BacklogJobMinutes), fmt.Sprintf("%d min", r.P95WaitMinutes), fmt.Sprint(r.Launches)})
	}
	fmt.Fprintf(stdout, "%s: %d minutes, %d jobs; boot %d min, %d jobs/min per server, a decision every %d min, %d base\n",
		path, len(trace), sum(trace), model.Boot, model.JobsPerServer, model.Interval, model.Base)
	fmt.Fprint(stdout, t.String())
	return nil
}

func sum(xs []int) (n int) {
	for _, x := range xs {
		n += x
	}
	return n
}

// simModel reads the model flags; times must be whole minutes, the
// simulator's step.
func simModel(c *urfave.Context) (scaling.Model, error) {
	m := scaling.Model{JobsPerServer: c.Int("jobs-per-server"), Base: c.Int("base")}
	for _, f := range []struct {
		name string
		to   *int
	}{{"boot", &m.Boot}, {"interval", &m.Interval}} {
		d := c.Duration(f.name)
		if d%time.Minute != 0 {
			return m, fmt.Errorf("--%s %s: the simulator steps in whole minutes", f.name, d)
		}
		*f.to = int(d / time.Minute)
	}
	if err := m.Validate(); err != nil {
		return m, fmt.Errorf("autoscale:simulate: %w", err)
	}
	return m, nil
}

// simPolicies builds the policies named in policy= (all by default), told
// what the model says about boot time and throughput.
func simPolicies(names string, m scaling.Model, hourly bool) ([]scaling.Policy, error) {
	list := scaling.Names()
	if names != "" {
		list = strings.Split(names, ",")
	}
	var out []scaling.Policy
	for _, n := range list {
		p, err := scaling.Named(strings.TrimSpace(n))
		if err != nil {
			return nil, fmt.Errorf("policy=%s: %w", names, err)
		}
		if d, ok := p.(*scaling.Drain); ok {
			d.Boot = time.Duration(m.Boot) * time.Minute
			d.JobsPerServer = float64(m.JobsPerServer)
			d.HourlyBilling = hourly
			if d.Target <= d.Boot {
				d.Target = d.Boot + 30*time.Minute
			}
		}
		out = append(out, p)
	}
	return out, nil
}
