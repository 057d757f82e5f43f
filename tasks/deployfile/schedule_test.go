package deployfile

import (
	"reflect"
	"testing"
	"time"
)

func TestScheduleRecordsStageSchedules(t *testing.T) {
	p, _ := load(t, `
task("scale", lambda: None)
schedule("@daily", "scale")
def production():
    schedule("0 8 * * 1-5", "scale", role = "app", count = 3, tz = "Europe/Berlin")
    schedule("0 21 * * 1-5", "scale", role = "app", count = 2, force = True)
stage("production", production)
`)
	if n := len(p.Schedules()); n != 1 {
		t.Fatalf("before the stage: %d schedules, want the top-level one", n)
	}
	if err := p.UseStage("production"); err != nil {
		t.Fatal(err)
	}
	ss := p.Schedules()
	if len(ss) != 3 {
		t.Fatalf("%d schedules", len(ss))
	}
	s := ss[1]
	if s.Spec != "0 8 * * 1-5" || s.Task != "scale" || s.TZ != "Europe/Berlin" || s.Pos.Line != 5 {
		t.Fatalf("schedule %+v", s)
	}
	if !reflect.DeepEqual(s.VarWords(), []string{"count=3", "role=app"}) {
		t.Fatalf("vars %v", s.VarWords())
	}
	if !reflect.DeepEqual(ss[2].VarWords(), []string{"count=2", "force=true", "role=app"}) {
		t.Fatalf("vars %v", ss[2].VarWords())
	}
	// Friday 2024-03-08 07:30 UTC is 08:30 in Berlin: the next firing is
	// Monday 08:00 Berlin, 07:00 UTC.
	next := s.Next(time.Date(2024, 3, 8, 7, 30, 0, 0, time.UTC))
	if want := time.Date(2024, 3, 11, 7, 0, 0, 0, time.UTC); !next.Equal(want) {
		t.Fatalf("next %s, want %s", next.UTC(), want)
	}
	if err := p.CheckSchedules(); err != nil {
		t.Fatal(err)
	}
}

func TestScheduleMistakesAtTheCall(t *testing.T) {
	for src, want := range map[string]string{
		`schedule("0 8 * *", "scale")`:                                                          `Deployfile:1:9: schedule: "0 8 * *": expected exactly 5 fields`,
		`schedule("0 25 * * *", "scale")`:                                                       `Deployfile:1:9: schedule: "0 25 * * *": end of range (25) above maximum (23)`,
		`schedule("0 8 * * *", "scale", tz = "Mars/Olympus")`:                                   `Deployfile:1:9: schedule: tz="Mars/Olympus"`,
		`schedule("0 8 * * *", "scale", tz = 1)`:                                                `tz must be a string`,
		`schedule("CRON_TZ=UTC 0 8 * * *", "scale")`:                                            `give the time zone as tz=`,
		`schedule("0 8 * * *", "scale", count = [3])`:                                           `count: a schedule's variables are strings, integers or booleans`,
		`schedule("0 8 * * *")`:                                                                 `schedule: want schedule(SPEC, TASK, tz=…, KEY=VALUE…): a cron spec and a task name, got 1 positional arguments`,
		"def t():\n    schedule(\"@daily\", \"x\")\ntask(\"t\", t)\nschedule(\"@daily\", \"\")": `empty task name`,
	} {
		contains(t, loadErr(t, src), want)
	}
}

func TestScheduleUnknownTaskAtCheck(t *testing.T) {
	p, _ := load(t, `
task("scale", lambda: None)
schedule("@daily", "scael")
schedule("@hourly", "nope")
`)
	err := p.CheckSchedules()
	contains(t, err, `Deployfile:3:9: schedule: unknown task "scael" (did you mean scale?)`, `Deployfile:4:9: schedule: unknown task "nope"`)
}
