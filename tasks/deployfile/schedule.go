package deployfile

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.starlark.net/starlark"

	"github.com/davit-deploy/davit/tasks"
)

// Schedule is one schedule() call: run Task at the times Spec (standard
// five-field cron syntax, or a descriptor such as @hourly) gives in
// Location, with Vars as the run's variables. `davit STAGE scheduler` fires
// them; `davit STAGE crontab` writes them as crontab lines.
type Schedule struct {
	Spec string // as written
	Task string
	// TZ is the tz= argument, "" for the local time zone.
	TZ       string
	Location *time.Location
	// Vars are the extra keywords, as KEY=VALUE words on a command line
	// would give them.
	Vars map[string]string
	Pos  tasks.Position

	cron cron.Schedule
}

// Next is the first firing time after t.
func (s *Schedule) Next(t time.Time) time.Time { return s.cron.Next(t.In(s.Location)) }

// Every reports whether Spec is an @every interval, which runs relative to
// when the scheduler started and so has no crontab form.
func (s *Schedule) Every() bool { return strings.HasPrefix(s.Spec, "@every") }

// VarWords are the Vars as sorted KEY=VALUE words.
func (s *Schedule) VarWords() []string {
	var out []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range s.Vars {
			if !yield(k) {
				return
			}
		}
	}) {
		out = append(out, k+"="+s.Vars[k])
	}
	return out
}

// Schedules are the schedule() calls of the Deployfile (top level) and the
// selected stage, in the order they were made.
func (p *Project) Schedules() []*Schedule {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.schedules)
}

// CheckSchedules reports every schedule naming an unknown task, at the
// schedule() call, all at once. Tasks may be defined after the call, so
// this waits until loading and the stage are done.
func (p *Project) CheckSchedules() error {
	var errs []error
	for _, s := range p.Schedules() {
		if _, err := p.registry.Lookup(s.Task); err != nil {
			errs = append(errs, fmt.Errorf("%s: schedule: %w", s.Pos, err))
		}
	}
	return errors.Join(errs...)
}

func (p *Project) bSchedule(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if _, err := whileLoading(th, b.Name(), true); err != nil {
		return nil, err
	}
	var spec, task, tz string
	var extra []starlark.Tuple
	for _, kv := range kwargs {
		if k := string(kv[0].(starlark.String)); k == "tz" {
			s, ok := starlark.AsString(kv[1])
			if !ok {
				return nil, fmt.Errorf("tz must be a string such as \"Europe/Berlin\", not %s", kv[1].Type())
			}
			tz = s
			continue
		}
		extra = append(extra, kv)
	}
	if len(args) != 2 {
		return nil, fmt.Errorf("want schedule(SPEC, TASK, tz=…, KEY=VALUE…): a cron spec and a task name, got %d positional arguments", len(args))
	}
	if err := starlark.UnpackPositionalArgs(b.Name(), args, nil, 2, &spec, &task); err != nil {
		return nil, err
	}
	if task == "" {
		return nil, errors.New("empty task name")
	}
	s := &Schedule{Spec: spec, Task: task, TZ: tz, Location: time.Local, Pos: callerPos(th), Vars: map[string]string{}}
	if strings.Contains(spec, "TZ=") {
		return nil, fmt.Errorf("%q: give the time zone as tz=, not in the spec", spec)
	}
	if tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return nil, fmt.Errorf("tz=%q: %w", tz, err)
		}
		s.Location = loc
	}
	parsed, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("%q: %w (want five fields: minute hour day-of-month month day-of-week, or @hourly, @daily, @every 5m …)", spec, err)
	}
	if sp, ok := parsed.(*cron.SpecSchedule); ok {
		sp.Location = s.Location
	}
	s.cron = parsed
	for _, kv := range extra {
		k := string(kv[0].(starlark.String))
		v, err := scheduleVar(kv[1])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		s.Vars[k] = v
	}
	p.mu.Lock()
	p.schedules = append(p.schedules, s)
	p.mu.Unlock()
	return starlark.None, nil
}

// scheduleVar writes a keyword's value as the command line would give it.
func scheduleVar(v starlark.Value) (string, error) {
	switch x := v.(type) {
	case starlark.String:
		return string(x), nil
	case starlark.Int:
		return x.String(), nil
	case starlark.Bool:
		if x {
			return "true", nil
		}
		return "false", nil
	}
	return "", fmt.Errorf("a schedule's variables are strings, integers or booleans (as on a command line), not %s", v.Type())
}
