package tasks

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/backend/dryrun"
	"github.com/davit-deploy/davit/deploy/backend/local"
	"github.com/davit-deploy/davit/deploy/output"
)

// A steps command is one command: each step's output comes back on its
// own, each step gets its arguments as positional parameters (quoted, so
// any value is safe), a failing step stops the command and is named, with
// its own arguments and exit status, and the pretty label lists the
// steps.
func TestRunSteps(t *testing.T) {
	ex, rec := newExecutor(t, localHosts("app1"))
	c := NewContext(t.Context(), ex, &Task{Name: "t"})
	var outs []string
	var berr error
	err := c.On(ex.Hosts, nil, func(hc *HostContext) error {
		outs, berr = hc.RunSteps([]Step{
			{Name: "one", Script: "cd / && echo a && printf b"},
			{Name: "two", Script: "pwd; return 0"},
			{Name: "three", Script: `printf '%s|' "$#" "$@"; echo "$GREETING"`, Args: []string{"it's", "$HOME `x`", ""}, Env: map[string]string{"GREETING": "hi"}},
		}, CommandOptions{})
		return nil
	})
	if err != nil || berr != nil {
		t.Fatal(err, berr)
	}
	// return ends only the step; the arguments arrive as given.
	if want := []string{"a\nb", "/", "3|it's|$HOME `x`||hi"}; !slices.Equal(outs, want) {
		t.Errorf("outputs = %q, want %q", outs, want)
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
	if len(lines) != 4 || lines[0] != "a" || lines[1] != "b" || lines[3] != "3|it's|$HOME `x`||hi" {
		t.Errorf("reported output lines = %q", lines)
	}
	for _, l := range lines {
		if strings.Contains(l, "@@davit-step") {
			t.Errorf("a step marker was reported as output: %q", l)
		}
	}

	err = c.On(ex.Hosts, nil, func(hc *HostContext) error {
		outs, berr = hc.RunSteps([]Step{
			{Name: "fine", Script: "echo ok"},
			{Name: "broken", Script: "echo half; echo oops >&2; return 7", Args: []string{"a b"}},
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
	if msg := berr.Error(); !strings.HasPrefix(msg, "broken: command \"step1 'a b'\" exited with status 7") || !strings.Contains(msg, "| oops") {
		t.Errorf("message: %s", msg)
	}
	if want := []string{"ok", "half"}; !slices.Equal(outs, want) {
		t.Errorf("outputs = %q, want %q", outs, want)
	}

	// Stdin reaches its own step only.
	err = c.On(ex.Hosts, nil, func(hc *HostContext) error {
		outs, berr = hc.RunSteps([]Step{
			{Name: "greedy", Script: "cat"},
			{Name: "reader", Script: "read -r l && echo \"got $l\"", Stdin: strings.NewReader("secret\n")},
			{Name: "greedy too", Script: "cat; echo done"},
		}, CommandOptions{})
		return nil
	})
	if err != nil || berr != nil || !slices.Equal(outs, []string{"", "got secret", "done"}) {
		t.Errorf("stdin: %v, %v, %q", err, berr, outs)
	}

	// One step runs without markers.
	err = c.On(ex.Hosts, nil, func(hc *HostContext) error {
		outs, berr = hc.RunSteps([]Step{{Name: "alone", Script: "echo solo; return 3"}}, CommandOptions{})
		return nil
	})
	if err != nil || !errors.As(berr, &se) || se.Step != "alone" || !slices.Equal(outs, []string{"solo"}) {
		t.Errorf("single step: %v, %q", berr, outs)
	}
}

// The script of a steps command defines each step as a function and calls
// it with its quoted arguments: no subshell and no exec per step.
func TestStepsScript(t *testing.T) {
	got := StepsScript([]Step{
		{Name: "a", Script: "echo \"$1\"\n", Args: []string{"x y"}},
		{Name: "b", Script: "cat", Stdin: strings.NewReader("")},
		{Name: "c", Script: "return 0"},
	}, "@@m-")
	want := "step0() {\necho \"$1\"\n}\nstep1() {\ncat\n}\nstep2() {\nreturn 0\n}\n" +
		"echo @@m-0\nstep0 'x y' </dev/null || exit\necho @@m-1\nstep1 || exit\necho @@m-2\nstep2 </dev/null\n"
	if got != want {
		t.Errorf("script:\n%s\nwant:\n%s", got, want)
	}
}

// A dry run's backend prints one placeholder line and no markers: every
// step still gets an output, so no caller indexes past the end.
func TestRunStepsDryRun(t *testing.T) {
	ex, _ := newExecutor(t, localHosts("app1"))
	ex.Pool = deploy.NewPool(func(ctx context.Context, h *deploy.Host) (deploy.Backend, error) {
		return dryrun.New(func(string) {}), nil
	})
	c := NewContext(t.Context(), ex, &Task{Name: "t"})
	var outs []string
	err := c.On(ex.Hosts, nil, func(hc *HostContext) error {
		var err error
		outs, err = hc.RunSteps([]Step{{Name: "a", Script: "echo a"}, {Name: "b", Script: "echo b"}}, CommandOptions{})
		return err
	})
	if err != nil || len(outs) != 2 {
		t.Errorf("dry run: %v, outputs %q, want two", err, outs)
	}
}

// countingBackend counts the commands (sessions) a backend was asked to
// run.
type countingBackend struct {
	deploy.Backend
	mu   sync.Mutex
	runs int
}

func (b *countingBackend) Run(ctx context.Context, c *deploy.Command, stdout, stderr io.Writer) (*deploy.Result, error) {
	b.mu.Lock()
	b.runs++
	b.mu.Unlock()
	return b.Backend.Run(ctx, c, stdout, stderr)
}

// Several steps commands run in one Shell are one command for the host
// (one session over SSH), yet each keeps its own directory, environment,
// exit, output, status and events; a failing one leaves the shell usable.
func TestRunStepsInShell(t *testing.T) {
	ex, rec := newExecutor(t, localHosts("app1"))
	cb := &countingBackend{Backend: local.New(t.TempDir())}
	ex.Pool = deploy.NewPool(func(ctx context.Context, h *deploy.Host) (deploy.Backend, error) { return cb, nil })
	c := NewContext(t.Context(), ex, &Task{Name: "t"})
	sh := &Shell{}
	var got [][]string
	var errs []error
	err := c.On(ex.Hosts, nil, func(hc *HostContext) error {
		for _, steps := range [][]Step{
			{{Name: "a", Script: `cd / && X=1 && echo "a $1"`, Args: []string{"x y"}}, {Name: "b", Script: "pwd; printf no-newline"}},
			{{Name: "c", Script: `echo "${X:-unset}" "$G"; echo oops >&2; exit 3`, Env: map[string]string{"G": "g"}}},
			{{Name: "d", Script: "pwd | grep -qx / || echo not-root"}},
		} {
			outs, err := hc.RunStepsIn(sh, steps, CommandOptions{})
			got, errs = append(got, outs), append(errs, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Close(); err != nil {
		t.Fatal(err)
	}
	if cb.runs != 1 {
		t.Errorf("the backend ran %d commands, want one shell", cb.runs)
	}
	want := [][]string{{"a x y", "/\nno-newline"}, {"unset g"}, {"not-root"}}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("command %d: outputs %q, want %q", i, got[i], want[i])
		}
	}
	var se *StepError
	if errs[0] != nil || !errors.As(errs[1], &se) || se.Err.ExitStatus != 3 || !slices.Equal(se.Err.StderrTail, []string{"oops"}) || errs[2] != nil {
		t.Errorf("errors: %v", errs)
	}
	if n := len(rec.Of(output.CommandStart)); n != 3 {
		t.Errorf("%d command_start events, want 3", n)
	}
	for _, ev := range rec.Of(output.Output) {
		if strings.Contains(ev.Line, "@@davit-") {
			t.Errorf("a marker was reported as output: %q", ev.Line)
		}
	}
	// A closed shell refuses further commands rather than hanging.
	err = c.On(ex.Hosts, nil, func(hc *HostContext) error {
		_, err := hc.RunStepsIn(sh, []Step{{Name: "late", Script: "true"}}, CommandOptions{})
		return err
	})
	if err == nil {
		t.Error("a command ran in a closed shell")
	}
}

// A backend that does not keep a shell open (the dry run's, which reports
// the shell's command and returns) gets each command on its own.
func TestRunStepsInShellDryRun(t *testing.T) {
	ex, _ := newExecutor(t, localHosts("app1"))
	var reports []string
	var mu sync.Mutex
	ex.Pool = deploy.NewPool(func(ctx context.Context, h *deploy.Host) (deploy.Backend, error) {
		return dryrun.New(func(m string) { mu.Lock(); reports = append(reports, m); mu.Unlock() }), nil
	})
	c := NewContext(t.Context(), ex, &Task{Name: "t"})
	sh := &Shell{}
	defer sh.Close()
	err := c.On(ex.Hosts, nil, func(hc *HostContext) error {
		for range 2 {
			if _, err := hc.RunStepsIn(sh, []Step{{Name: "a", Script: "echo a"}, {Name: "b", Script: "echo b"}}, CommandOptions{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(reports); n != 3 || !strings.Contains(reports[1], "step0") || !strings.Contains(reports[2], "step1") {
		t.Errorf("reports %q: want the shell's command, then each command on its own", reports)
	}
}
