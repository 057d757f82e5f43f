package aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/davit-deploy/davit/recipes/scaling"
	"github.com/davit-deploy/davit/tasks"
)

// DefaultQueueTimeout bounds one reading of the queue length.
const DefaultQueueTimeout = 10 * time.Second

// Autoscaler is what autoscale() in a stage declares for one role: where
// the queue length comes from, the policy and its settings, and whether an
// Auto Scaling group's desired capacity is set instead of launching
// through the role's launcher.
type Autoscaler struct {
	Role         string
	QueueURL     string
	QueueCommand string
	QueueTimeout time.Duration
	Policy       scaling.Policy
	// ASG names an EC2 Auto Scaling group; "" launches and terminates
	// through the role's launcher.
	ASG    string
	Region string
	Pos    tasks.Position
}

// autoscalers are the autoscale() declarations, by stage then role.
type autoscalers struct {
	mu     sync.Mutex
	byRole map[string]map[string]*Autoscaler
}

func (s *autoscalers) add(stage string, a *Autoscaler) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byRole == nil {
		s.byRole = map[string]map[string]*Autoscaler{}
	}
	if s.byRole[stage] == nil {
		s.byRole[stage] = map[string]*Autoscaler{}
	}
	if old := s.byRole[stage][a.Role]; old != nil {
		return fmt.Errorf("autoscale(%q): role %s is autoscaled already (%s)", a.Role, a.Role, old.Pos)
	}
	s.byRole[stage][a.Role] = a
	return nil
}

func (s *autoscalers) stage(stage string) map[string]*Autoscaler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byRole[stage]
}

// The settings each policy takes, besides the common ones.
var (
	seedSettings  = []string{"high", "low", "max_extra", "min_uptime"}
	drainSettings = []string{"high", "low", "target", "jobs_per_server", "max", "quiet", "boot",
		"rate_window", "job_minutes", "headroom", "hourly_billing", "hour_end"}
)

func autoscaleBuiltin(r *Recipe) tasks.Builtin {
	params := []tasks.Param{
		{Name: "role", Kind: tasks.KindString},
		{Name: "queue_url", Optional: true, Kind: tasks.KindString},
		{Name: "queue_command", Optional: true, Kind: tasks.KindString},
		{Name: "queue_timeout", Optional: true, Kind: tasks.KindAny},
		{Name: "policy", Optional: true, Kind: tasks.KindString},
		{Name: "asg", Optional: true, Kind: tasks.KindString},
		{Name: "region", Optional: true, Kind: tasks.KindString},
	}
	for _, n := range append(slices.Clone(seedSettings), drainSettings...) {
		if !slices.ContainsFunc(params, func(p tasks.Param) bool { return p.Name == n }) {
			params = append(params, tasks.Param{Name: n, Optional: true, Kind: tasks.KindAny})
		}
	}
	return tasks.Builtin{
		Name:   "autoscale",
		Doc:    "Scales role's servers on its queue length (the autoscale task): policy drain (default) or seed, through the role's launcher or an Auto Scaling group (asg=).",
		Params: params,
		Phases: tasks.PhaseStage,
		Call:   r.autoscale,
	}
}

func (r *Recipe) autoscale(c *tasks.BuiltinCall) (any, error) {
	a := &Autoscaler{
		Role: strings.TrimSpace(c.String("role")), QueueURL: c.String("queue_url"), QueueCommand: c.String("queue_command"),
		QueueTimeout: DefaultQueueTimeout, ASG: c.String("asg"), Region: c.String("region"), Pos: c.Pos,
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if a.Role == "" || strings.ContainsAny(a.Role, ", ") {
		bad("role=%q: give one role name", a.Role)
	}
	switch {
	case a.QueueURL == "" && a.QueueCommand == "":
		bad("give queue_url= (a URL answering the queue length) or queue_command= (a command printing it)")
	case a.QueueURL != "" && a.QueueCommand != "":
		bad("queue_url= and queue_command= both given; give one")
	case a.QueueURL != "" && !strings.HasPrefix(a.QueueURL, "http://") && !strings.HasPrefix(a.QueueURL, "https://"):
		bad("queue_url=%q: want an http:// or https:// URL", a.QueueURL)
	}
	if c.Has("queue_timeout") {
		d, err := tasks.Duration(c.Args["queue_timeout"])
		if err != nil || d <= 0 {
			bad("queue_timeout: want a positive duration (\"10s\" or seconds)")
		}
		a.QueueTimeout = d
	}
	name := "drain"
	if c.Has("policy") {
		name = c.String("policy")
	}
	policy, err := policyFromArgs(name, c.Args, c.Has)
	if err != nil {
		bad("%s", err)
	}
	a.Policy = policy
	if len(problems) > 0 {
		return nil, fmt.Errorf("autoscale(%q): %s", a.Role, strings.Join(problems, "; "))
	}
	return nil, r.scalers.add(c.Stage, a)
}

// policyFromArgs builds the named policy from its defaults and the
// settings given, refusing settings of the other policy.
func policyFromArgs(name string, args map[string]any, has func(string) bool) (scaling.Policy, error) {
	var own, other []string
	switch name {
	case "seed":
		own, other = seedSettings, drainSettings
	case "drain":
		own, other = drainSettings, seedSettings
	default:
		return nil, fmt.Errorf("policy=%q: want \"drain\" or \"seed\"", name)
	}
	var problems []string
	for _, k := range other {
		if has(k) && !slices.Contains(own, k) {
			problems = append(problems, fmt.Sprintf("%s= is a setting of policy %q, not %q", k, otherName(name), name))
		}
	}
	num := func(k string, to *float64) {
		if !has(k) {
			return
		}
		switch v := args[k].(type) {
		case int:
			*to = float64(v)
		case float64:
			*to = v
		default:
			problems = append(problems, fmt.Sprintf("%s: want a number, not %T", k, args[k]))
		}
	}
	integer := func(k string, to *int) {
		if !has(k) {
			return
		}
		if v, ok := args[k].(int); ok {
			*to = v
			return
		}
		problems = append(problems, fmt.Sprintf("%s: want a whole number, not %T", k, args[k]))
	}
	dur := func(k string, to *time.Duration) {
		if !has(k) {
			return
		}
		d, err := tasks.Duration(args[k])
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %s", k, err))
			return
		}
		*to = d
	}
	var p scaling.Policy
	var validate func() error
	switch name {
	case "seed":
		s := scaling.DefaultSeed()
		integer("high", &s.High)
		integer("low", &s.Low)
		integer("max_extra", &s.MaxExtra)
		dur("min_uptime", &s.MinUptime)
		p, validate = &s, s.Validate
	case "drain":
		d := scaling.DefaultDrain()
		integer("high", &d.High)
		integer("low", &d.Low)
		integer("max", &d.Max)
		num("jobs_per_server", &d.JobsPerServer)
		num("job_minutes", &d.JobMinutes)
		num("headroom", &d.Headroom)
		dur("target", &d.Target)
		dur("quiet", &d.Quiet)
		dur("boot", &d.Boot)
		dur("rate_window", &d.RateWindow)
		dur("hour_end", &d.HourEnd)
		if has("hourly_billing") {
			b, ok := args["hourly_billing"].(bool)
			if !ok {
				problems = append(problems, "hourly_billing: want True or False")
			}
			d.HourlyBilling = b
		}
		p, validate = &d, d.Validate
	}
	if len(problems) == 0 {
		if err := validate(); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return p, nil
}

func otherName(name string) string {
	if name == "seed" {
		return "drain"
	}
	return "seed"
}

// autoscaleProblems are the mistakes CheckVars finds before anything runs:
// a watch= that is not a duration, and an autoscaled role with neither a
// launcher nor an Auto Scaling group.
func (r *Recipe) autoscaleProblems(v *tasks.Vars) []string {
	var problems []string
	if v.Has("watch") {
		if _, err := watchVar(v); err != nil {
			problems = append(problems, err.Error())
		}
	}
	stage, _ := v.FetchString("stage")
	ls := r.stageLaunchers(stage)
	as := r.scalers.stage(stage)
	for _, role := range sortedKeys(as) {
		a := as[role]
		if a.ASG == "" && ls[role] == nil {
			problems = append(problems, fmt.Sprintf("%s: autoscale(%q) launches through the role's launcher, but stage %s has no launcher(%q); declare one, or give asg= to use an Auto Scaling group", a.Pos, role, stage, role))
		}
	}
	return problems
}

// watchVar reads watch=: the time between decisions, 0 when not given.
func watchVar(v *tasks.Vars) (time.Duration, error) {
	if !v.Has("watch") {
		return 0, nil
	}
	val, err := v.Fetch("watch")
	if err != nil {
		return 0, err
	}
	d, err := tasks.Duration(val)
	if err != nil {
		return 0, fmt.Errorf("watch: %w", err)
	}
	if d < time.Second {
		return 0, fmt.Errorf("watch=%v: decide at most once a second (watch=5m decides every 5 minutes)", val)
	}
	return d, nil
}

// autoscalerOf is the stage's autoscaler of role= (or of its only
// autoscaled role when role= is not given).
func (r *Recipe) autoscalerOf(v *tasks.Vars) (*Autoscaler, error) {
	stage, _ := v.FetchString("stage")
	as := r.scalers.stage(stage)
	if len(as) == 0 {
		return nil, fmt.Errorf("stage %s declares no autoscale(...)", stage)
	}
	names := sortedKeys(as)
	var role string
	if v.Has("role") {
		var err error
		if role, err = taskRole(v, "autoscale"); err != nil {
			return nil, err
		}
	} else if len(as) == 1 {
		role = names[0]
	} else {
		return nil, fmt.Errorf("give the role: autoscale role=ROLE (autoscaled: %s)", strings.Join(names, ", "))
	}
	a := as[role]
	if a == nil {
		return nil, fmt.Errorf("role %s is not autoscaled in stage %s (autoscaled: %s)%s", role, stage, strings.Join(names, ", "), tasks.DidYouMean(role, names))
	}
	return a, nil
}

// checkAutoscaleTask is autoscale's check before anything runs: the role
// and watch=.
func (r *Recipe) checkAutoscaleTask(v *tasks.Vars) error {
	_, err := r.autoscalerOf(v)
	_, werr := watchVar(v)
	return errors.Join(err, werr)
}

// autoscaleTask is `davit STAGE autoscale role=ROLE [watch=5m]`: one
// decision, acted on, or with watch= one every interval until stopped.
// Queue readings of a watch are kept in memory for the policy; the
// servers' state is always asked from AWS, so two machines agree.
func (r *Recipe) autoscaleTask(c *tasks.Context) error {
	a, err := r.autoscalerOf(c.Executor.Vars)
	if err != nil {
		return err
	}
	every, err := watchVar(c.Executor.Vars)
	if err != nil {
		return err
	}
	var history []scaling.Sample
	for {
		start := time.Now()
		history = append(history, r.readQueue(c, a))
		history = trimHistory(history, start)
		if err := r.decideOnce(c, a, history); err != nil {
			if every == 0 || c.Ctx().Err() != nil {
				return err
			}
			// A watch outlives one failed call; the next decision asks
			// AWS afresh.
			c.Warn(fmt.Sprintf("autoscale %s: %v; deciding again in %s", a.Role, err, every))
		}
		if every == 0 {
			return nil
		}
		wait := time.NewTimer(time.Until(start.Add(every)))
		select {
		case <-c.Ctx().Done():
			wait.Stop()
			c.Info(fmt.Sprintf("autoscale %s: stopped", a.Role))
			return nil
		case <-wait.C:
		}
	}
}

// historyKeep is how far back a watch keeps readings: more than any
// policy looks.
const historyKeep = 3 * time.Hour

func trimHistory(h []scaling.Sample, now time.Time) []scaling.Sample {
	i := 0
	for i < len(h) && now.Sub(h[i].At) > historyKeep {
		i++
	}
	return h[i:]
}

// readQueue takes one reading. Failures are kept in the sample, never
// returned: the policy holds on them and the decision says why.
func (r *Recipe) readQueue(c *tasks.Context, a *Autoscaler) scaling.Sample {
	s := scaling.Sample{At: time.Now()}
	var text string
	var err error
	if a.QueueURL != "" {
		text, err = getQueueURL(c.Ctx(), a.QueueURL, a.QueueTimeout)
	} else {
		text, err = r.runQueueCommand(c, a)
	}
	if err != nil {
		s.Err = err
		return s
	}
	text = strings.TrimSpace(text)
	n, perr := strconv.Atoi(text)
	if perr != nil {
		shown := text
		if len(shown) > 40 {
			shown = shown[:40] + "…"
		}
		s.Err = fmt.Errorf("the queue answered %q, not a whole number", shown)
		return s
	}
	s.Length = n
	return s
}

// getQueueURL fetches the queue length page, bounded by timeout.
func getQueueURL(ctx context.Context, url string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("queue_url %s: %w", url, err)
	}
	// No proxy: the queue is the application's own page, usually on a
	// private address, as the original cron script fetched it.
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", fmt.Errorf("queue_url %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", fmt.Errorf("queue_url %s: reading the answer: %w", url, err)
	}
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("queue_url %s answered %s", url, resp.Status)
	}
	return string(body), nil
}

// runQueueCommand runs queue_command on this machine; a dry run runs
// nothing, so it has no reading.
func (r *Recipe) runQueueCommand(c *tasks.Context, a *Autoscaler) (string, error) {
	if c.DryRun() {
		return "", fmt.Errorf("dry run: queue_command %q not run", a.QueueCommand)
	}
	var out string
	err := c.RunLocally(func(hc *tasks.HostContext) error {
		var err error
		out, err = hc.Capture([]string{a.QueueCommand}, tasks.CommandOptions{Label: "read the queue length", Timeout: a.QueueTimeout})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("queue_command: %w", err)
	}
	return out, nil
}

// decideOnce counts the servers, decides and acts.
func (r *Recipe) decideOnce(c *tasks.Context, a *Autoscaler, history []scaling.Sample) error {
	if a.ASG != "" {
		return r.decideASG(c, a, history)
	}
	f, err := r.fleetFor(c, a.Role)
	if err != nil {
		return fmt.Errorf("autoscale %s: %w", a.Role, err)
	}
	launched, base, err := f.list(c.Ctx())
	if err != nil {
		return fmt.Errorf("autoscale %s: %w", a.Role, err)
	}
	in := scaling.Input{Now: time.Now(), Queue: history, Base: base}
	for _, l := range launched {
		in.Servers = append(in.Servers, scaling.Server{ID: l.ID, LaunchedAt: l.LaunchedAt, ReadyAt: l.ReadyAt})
	}
	d := a.Policy.Decide(in)
	c.Info(fmt.Sprintf("autoscale %s (%s, %d base): %s", a.Role, a.Policy.Name(), base, d))
	switch d.Action {
	case scaling.Launch:
		if err := r.Launch(c, a.Role, d.Count); err != nil {
			return fmt.Errorf("autoscale %s: %w", a.Role, err)
		}
	case scaling.Terminate:
		n := d.Count
		if c.DryRun() {
			n = 1 // nothing changes in a dry run: the newest stays the newest
		}
		for range n {
			if err := r.TerminateNewest(c, a.Role); err != nil {
				return fmt.Errorf("autoscale %s: %w", a.Role, err)
			}
		}
	}
	return nil
}
