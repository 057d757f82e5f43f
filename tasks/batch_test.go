package tasks

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/davit-deploy/davit/deploy/output"
)

// A batch is one command: each step's output comes back on its own, a
// failing step stops the batch and is named, with its own script and exit
// status, and the pretty label lists the steps.
func TestBatch(t *testing.T) {
	ex, rec := newExecutor(t, localHosts("app1"))
	c := NewContext(t.Context(), ex, &Task{Name: "t"})
	var outs []string
	var berr error
	err := c.On(ex.Hosts, nil, func(hc *HostContext) error {
		outs, berr = hc.Batch([]Step{
			{Name: "one", Script: "cd / && echo a && printf b"},
			{Name: "two", Script: "pwd; X=1; exit 0"},
			{Name: "three", Script: `echo "${X:-unset}" "$GREETING"`, Env: map[string]string{"GREETING": "hi"}},
		}, CommandOptions{})
		return nil
	})
	if err != nil || berr != nil {
		t.Fatal(err, berr)
	}
	// cd and variables stay inside their step; exit ends only the step.
	if len(outs) != 3 || outs[0] != "a\nb" || outs[1] == "/" || outs[2] != "unset hi" {
		t.Errorf("outputs = %q, want a\\nb, the starting directory, unset hi", outs)
	}
	var starts []string
	for _, ev := range rec.Events() {
		if ev.Kind == output.CommandStart {
			starts = append(starts, ev.Label)
		}
	}
	if !slices.Equal(starts, []string{"one, two, three"}) {
		t.Errorf("commands run (labels): %q, want one command", starts)
	}
	// The steps' output is reported; the markers that split it are not.
	var lines []string
	for _, ev := range rec.Of(output.Output) {
		lines = append(lines, ev.Line)
	}
	if len(lines) != 4 || lines[0] != "a" || lines[1] != "b" || lines[3] != "unset hi" {
		t.Errorf("reported output lines = %q", lines)
	}
	for _, l := range lines {
		if strings.Contains(l, "@@davit-step") {
			t.Errorf("a step marker was reported as output: %q", l)
		}
	}

	err = c.On(ex.Hosts, nil, func(hc *HostContext) error {
		outs, berr = hc.Batch([]Step{
			{Name: "fine", Script: "echo ok"},
			{Name: "broken", Script: "echo half; echo oops >&2; exit 7"},
			{Name: "never", Script: "echo never"},
		}, CommandOptions{Label: "do things"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var se *StepError
	if !errors.As(berr, &se) || se.Index != 1 || se.Step != "broken" || se.Err.ExitStatus != 7 {
		t.Fatalf("error = %#v", berr)
	}
	if msg := berr.Error(); !strings.HasPrefix(msg, "broken: command \"echo half; echo oops >&2; exit 7\" exited with status 7") || !strings.Contains(msg, "| oops") {
		t.Errorf("message: %s", msg)
	}
	if want := []string{"ok", "half"}; !slices.Equal(outs, want) {
		t.Errorf("outputs = %q, want %q", outs, want)
	}

	// Stdin reaches its own step only.
	err = c.On(ex.Hosts, nil, func(hc *HostContext) error {
		outs, berr = hc.Batch([]Step{
			{Name: "greedy", Script: "cat"},
			{Name: "reader", Script: "read -r l && echo \"got $l\"", Stdin: strings.NewReader("secret\n")},
			{Name: "greedy too", Script: "cat; echo done"},
		}, CommandOptions{})
		return nil
	})
	if err != nil || berr != nil || !slices.Equal(outs, []string{"", "got secret", "done"}) {
		t.Errorf("stdin: %v, %v, %q", err, berr, outs)
	}

	// One step is run as written, without markers.
	err = c.On(ex.Hosts, nil, func(hc *HostContext) error {
		outs, berr = hc.Batch([]Step{{Name: "alone", Script: "echo solo; exit 3"}}, CommandOptions{})
		return nil
	})
	if err != nil || !errors.As(berr, &se) || se.Step != "alone" || !slices.Equal(outs, []string{"solo"}) {
		t.Errorf("single step: %v, %q", berr, outs)
	}
}
