package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	urfave "github.com/urfave/cli/v2"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/tasks/deployfile"
	"github.com/davit-deploy/davit/tasks/run"
)

// scheduleCommand reports whether `davit [STAGE] NAME` is one of the
// commands that act on the Deployfile's schedules rather than a task: a
// task of the same name, if the Deployfile defines one, wins.
func scheduleCommand(p *deployfile.Project, tasks []string) bool {
	if len(tasks) != 1 || (tasks[0] != "scheduler" && tasks[0] != "crontab") {
		return false
	}
	_, err := p.Registry().Lookup(tasks[0])
	return err != nil
}

// runScheduleCommand runs `davit STAGE scheduler` or `davit STAGE crontab`
// once the Deployfile is loaded and the stage selected.
func runScheduleCommand(c *urfave.Context, s *session, r *run.Run, cfg run.Config, inv invocation, stdout io.Writer) error {
	p := r.Project()
	if stages := p.Stages(); inv.stage == "" && len(stages) > 0 {
		return usageError(fmt.Errorf("no stage given: davit STAGE %s (stages: %s)", inv.tasks[0], strings.Join(stages, ", ")))
	}
	entries := p.Schedules()
	if len(entries) == 0 {
		where := "the Deployfile"
		if inv.stage != "" {
			where = "stage " + inv.stage
		}
		return usageError(fmt.Errorf("%s has no schedule(); add schedule(\"0 8 * * 1-5\", \"TASK\", …) to it", where))
	}
	// Each schedule is checked as its firings will run: a run of its own
	// with its variables (a misspelt role= is found now, not at 08:00).
	var problems []error
	for _, e := range entries {
		if _, err := prepareFiring(c.Context, cfg, inv, e); err != nil {
			problems = append(problems, fmt.Errorf("%s: %s: %w", e.Pos, describe(e), err))
		}
	}
	if err := errors.Join(problems...); err != nil {
		return usageError(err)
	}
	if inv.tasks[0] == "crontab" {
		return printCrontab(stdout, cfg.Deployfile, inv, entries)
	}
	sink := cfg.Terminal
	if sink == nil {
		sink = output.NewPlain(stdout)
	}
	say := func(level, msg string) {
		sink.Emit(output.Event{Time: time.Now(), Kind: output.Message, Task: "scheduler", Level: level, Line: msg})
	}
	for _, e := range entries {
		say("info", fmt.Sprintf("%s: %s next at %s", e.Pos, describe(e), e.Next(time.Now()).Format("Mon 2006-01-02 15:04:05 MST")))
	}
	fire := func(ctx context.Context, e *deployfile.Schedule, at time.Time) {
		say("info", fmt.Sprintf("firing %s (due %s)", describe(e), at.Format("15:04:05")))
		start := time.Now()
		if err := fireSchedule(ctx, s, cfg, inv, e); err != nil {
			say("error", fmt.Sprintf("%s failed after %s: %s", describe(e), time.Since(start).Round(time.Millisecond), err))
			return
		}
		say("info", fmt.Sprintf("%s finished in %s", describe(e), time.Since(start).Round(time.Millisecond)))
	}
	skipped := func(e *deployfile.Schedule, at time.Time) {
		say("warn", fmt.Sprintf("skipping %s due %s: its previous firing is still running", describe(e), at.Format("15:04:05")))
	}
	err := runScheduler(c.Context, newSchedPlan(entries, time.Now()), realClock{}, fire, skipped)
	say("info", "scheduler stopped")
	return err
}

// describe is a schedule as people read it: the task with its variables.
func describe(e *deployfile.Schedule) string {
	out := strings.Join(append([]string{e.Task}, e.VarWords()...), " ")
	out += " (" + e.Spec
	if e.TZ != "" {
		out += " " + e.TZ
	}
	return out + ")"
}

// fireSchedule is one firing: a fresh run of the Deployfile with the
// schedule's variables, as `davit STAGE TASK KEY=VALUE…` would make it.
func fireSchedule(ctx context.Context, s *session, cfg run.Config, inv invocation, e *deployfile.Schedule) error {
	r, err := prepareFiring(ctx, cfg, inv, e)
	if err != nil {
		return err
	}
	s.started(inv.stage, r)
	if err := r.Execute(ctx, e.Task); err != nil {
		return redacted(r, fmt.Errorf("%w (see %s)", err, r.ShownLogPath()))
	}
	return nil
}

// prepareFiring loads the run of one firing of e, selects the stage and
// checks the task with the schedule's variables; nothing runs yet.
func prepareFiring(ctx context.Context, cfg run.Config, inv invocation, e *deployfile.Schedule) (*run.Run, error) {
	cfg.Overrides = map[string]string{}
	for k, v := range inv.overrides {
		cfg.Overrides[k] = v
	}
	for k, v := range e.Vars {
		cfg.Overrides[k] = v
	}
	cfg.LogArgs = append(append([]string{"davit"}, stageWords(inv)...), append([]string{e.Task}, e.VarWords()...)...)
	r, err := run.Load(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if inv.stage != "" {
		if err := r.UseStage(ctx, inv.stage); err != nil {
			return nil, redacted(r, err)
		}
	}
	if err := r.Check(e.Task); err != nil {
		return nil, redacted(r, err)
	}
	return r, nil
}

func stageWords(inv invocation) []string {
	if inv.stage == "" {
		return nil
	}
	return []string{inv.stage}
}

// printCrontab writes the schedules as crontab lines running this davit
// binary on this Deployfile. Every word is shell-quoted, and % (which
// cron turns into a newline) is escaped.
func printCrontab(w io.Writer, deployfilePath string, inv invocation, entries []*deployfile.Schedule) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("crontab: the davit binary's path: %w", err)
	}
	df, err := filepath.Abs(deployfilePath)
	if err != nil {
		return fmt.Errorf("crontab: %w", err)
	}
	var bad []error
	for _, e := range entries {
		if e.Every() {
			bad = append(bad, fmt.Errorf("%s: schedule %q has no crontab form (@every counts from when the scheduler starts); use `davit %s scheduler`",
				e.Pos, e.Spec, strings.Join(stageWords(inv), " ")))
		}
	}
	if err := errors.Join(bad...); err != nil {
		return usageError(err)
	}
	fmt.Fprintf(w, "# davit schedules of %s%s, written by `davit%s crontab`\n", df, stageLabel(inv), strings.Join(append([]string{""}, stageWords(inv)...), " "))
	// CRON_TZ applies to the lines after it (cronie, and the cron daemons
	// that support time zones at all), and there is no portable way back
	// to the system's zone: the local-time schedules come first, then
	// each time zone's, each group in declaration order.
	sorted := slices.Clone(entries)
	slices.SortStableFunc(sorted, func(a, b *deployfile.Schedule) int {
		switch {
		case a.TZ == b.TZ:
			return 0
		case a.TZ == "":
			return -1
		case b.TZ == "":
			return 1
		}
		return strings.Compare(a.TZ, b.TZ)
	})
	tz := ""
	for _, e := range sorted {
		if e.TZ != tz {
			fmt.Fprintf(w, "CRON_TZ=%s\n", e.TZ)
			tz = e.TZ
		}
		words := []string{exe, "-f", df}
		words = append(words, stageWords(inv)...)
		words = append(words, e.Task)
		words = append(words, e.VarWords()...)
		for i, wd := range words {
			words[i] = strings.ReplaceAll(deploy.Quote(wd), "%", `\%`)
		}
		fmt.Fprintf(w, "# %s\n%s %s\n", e.Pos, e.Spec, strings.Join(words, " "))
	}
	return nil
}

func stageLabel(inv invocation) string {
	if inv.stage == "" {
		return ""
	}
	return ", stage " + inv.stage
}

// schedPlan is the scheduler's bookkeeping, apart from clocks and
// goroutines so it can be tested with made-up times: when each schedule
// fires next and whether its last firing still runs.
type schedPlan struct {
	entries []*deployfile.Schedule
	next    []time.Time // zero: never again
	running []bool
}

func newSchedPlan(entries []*deployfile.Schedule, now time.Time) *schedPlan {
	p := &schedPlan{entries: entries, next: make([]time.Time, len(entries)), running: make([]bool, len(entries))}
	for i, e := range entries {
		p.next[i] = e.Next(now)
	}
	return p
}

// wake is the earliest next firing; false when nothing will fire again.
func (p *schedPlan) wake() (time.Time, bool) {
	var w time.Time
	for _, t := range p.next {
		if !t.IsZero() && (w.IsZero() || t.Before(w)) {
			w = t
		}
	}
	return w, !w.IsZero()
}

// due returns the schedules to fire at now, in declaration order, and
// those due whose previous firing still runs (skipped). Each moves on to
// its first time after now: a scheduler that was suspended fires once, not
// once per missed time.
func (p *schedPlan) due(now time.Time) (fire, skip []int) {
	for i, t := range p.next {
		if t.IsZero() || t.After(now) {
			continue
		}
		if p.running[i] {
			skip = append(skip, i)
		} else {
			p.running[i] = true
			fire = append(fire, i)
		}
		p.next[i] = p.entries[i].Next(now)
	}
	return fire, skip
}

func (p *schedPlan) finished(i int) { p.running[i] = false }

func (p *schedPlan) anyRunning() bool {
	for _, r := range p.running {
		if r {
			return true
		}
	}
	return false
}

// clock is time as the scheduler sees it.
type clock interface {
	Now() time.Time
	// Timer fires once after d; stop releases it.
	Timer(d time.Duration) (c <-chan time.Time, stop func())
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) Timer(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

// runScheduler fires the plan's schedules until ctx is done, each firing
// in its own goroutine; then it waits for the firings still running (their
// runs see ctx canceled and undo what they did) and returns nil.
func runScheduler(ctx context.Context, p *schedPlan, clk clock,
	fire func(context.Context, *deployfile.Schedule, time.Time),
	skipped func(*deployfile.Schedule, time.Time)) error {
	done := make(chan int)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var tick <-chan time.Time
		stop := func() {}
		if w, ok := p.wake(); ok {
			tick, stop = clk.Timer(w.Sub(clk.Now()))
		} else if !p.anyRunning() {
			return errors.New("scheduler: no schedule fires again")
		}
		select {
		case <-ctx.Done():
			stop()
			for p.anyRunning() {
				p.finished(<-done)
			}
			return nil
		case i := <-done:
			stop()
			p.finished(i)
			continue
		case <-tick:
		}
		now := clk.Now()
		fired, skip := p.due(now)
		for _, i := range skip {
			skipped(p.entries[i], now)
		}
		for _, i := range fired {
			wg.Add(1)
			go func() {
				defer wg.Done()
				fire(ctx, p.entries[i], now)
				done <- i
			}()
		}
	}
}
