package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/mattn/go-isatty"
	urfave "github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/davit-deploy/davit/deploy"
	sshbackend "github.com/davit-deploy/davit/deploy/backend/ssh"
	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/recipes"
	"github.com/davit-deploy/davit/recipes/scm"
	"github.com/davit-deploy/davit/tasks"
	"github.com/davit-deploy/davit/tasks/deployfile"
	"github.com/davit-deploy/davit/tasks/run"
)

// invocation is the command line after flags: an optional stage, the
// tasks in order, and KEY=VALUE variable overrides.
type invocation struct {
	stage     string
	tasks     []string
	overrides map[string]string
}

var assignment = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=(.*)$`)

// splitArgs separates KEY=VALUE words from stage and task names. Flags are
// only read before the first positional word (urfave/cli stops there), so a
// flag found later is a usage error that says where it belongs.
func splitArgs(args []string, sets []string) (words []string, overrides map[string]string, err error) {
	overrides = map[string]string{}
	for _, s := range sets {
		m := assignment.FindStringSubmatch(s)
		if m == nil {
			return nil, nil, usageError(fmt.Errorf("--set %q: want KEY=VALUE", s))
		}
		overrides[m[1]] = m[2]
	}
	for _, a := range args {
		if m := assignment.FindStringSubmatch(a); m != nil {
			overrides[m[1]] = m[2]
			continue
		}
		if strings.HasPrefix(a, "-") {
			return nil, nil, usageError(fmt.Errorf("flag %s after the stage or task names: global flags go first, as in `davit %s STAGE TASK`", a, a))
		}
		words = append(words, a)
	}
	return words, overrides, nil
}

// findDeployfile returns the -f path, or ./Deployfile, or the nearest
// parent directory's Deployfile.
func findDeployfile(flag string) (string, error) {
	if flag != "" {
		if _, err := os.Stat(flag); err != nil {
			return "", usageError(fmt.Errorf("-f %s: %w", flag, err))
		}
		return flag, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "Deployfile")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", usageError(fmt.Errorf("no Deployfile in this directory or any parent; `davit init` writes one, -f names another"))
		}
		dir = parent
	}
}

// runConfig is the part of a run's configuration that comes from the
// command line's flags.
func runConfig(c *urfave.Context, s *session, path string, overrides map[string]string) run.Config {
	return run.Config{
		Deployfile: path,
		Version:    s.opts.version(),
		Recipes:    recipes.Starlark(),
		GoRecipes:  s.opts.goRecipes(),
		Overrides:  overrides,
		DryRun:     c.Bool("dry-run"),
		Parallel:   c.Int("parallel"),
		LogPath:    c.String("log"),
		LogArgs:    os.Args,
		SSH: sshbackend.Options{
			ConfigFile:    c.String("ssh-config"),
			HostKeyPolicy: sshbackend.HostKeyPolicy(c.String("host-key-checking")),
		},
	}
}

func loadProject(ctx context.Context, c *urfave.Context, s *session, overrides map[string]string) (*run.Run, error) {
	path, err := findDeployfile(c.String("file"))
	if err != nil {
		return nil, err
	}
	r, err := run.Load(ctx, runConfig(c, s, path, overrides))
	if err != nil {
		return nil, usageError(err)
	}
	return r, nil
}

// runTasks is the main action: load the Deployfile, pick the stage, check
// every task and hook, then run the tasks in order.
func runTasks(c *urfave.Context, s *session, stdin *os.File, stdout, stderr io.Writer) error {
	ctx := c.Context
	words, overrides, err := splitArgs(c.Args().Slice(), c.StringSlice("set"))
	if err != nil {
		return err
	}
	if err := checkFlags(c); err != nil {
		return err
	}
	path, err := findDeployfile(c.String("file"))
	if err != nil {
		return err
	}
	cfg := runConfig(c, s, path, overrides)
	cfg.Prompter = tasks.NewTerminalPrompter(stdin, stderr)
	cfg.Filter = deploy.Filter{Roles: deploy.ParseList(c.String("roles")), Hosts: deploy.ParseList(c.String("hosts"))}
	if err := cfg.Filter.Validate(); err != nil {
		return usageError(fmt.Errorf("--roles/--hosts: %w", err))
	}
	if cfg.Terminal, err = terminalFormat(c, stdout); err != nil {
		return err
	}
	// Stops the live status line and clears it before the closing error,
	// if any, is printed.
	if closer, ok := cfg.Terminal.(io.Closer); ok {
		defer closer.Close()
	}
	r, err := run.Load(ctx, cfg)
	if err != nil {
		return usageError(err)
	}
	p := r.Project()
	inv := invocation{overrides: overrides}
	if len(words) > 0 && p.HasStage(words[0]) {
		inv.stage, words = words[0], words[1:]
	}
	inv.tasks = words
	if inv.stage != "" {
		if err := r.UseStage(ctx, inv.stage); err != nil {
			return usageError(redacted(r, err))
		}
	}
	if c.Bool("tasks") {
		return listTasks(stdout, p, c.Bool("all"))
	}
	if len(inv.tasks) == 0 {
		return usageError(errNoTasks)
	}
	if scheduleCommand(p, inv.tasks) {
		return runScheduleCommand(c, s, r, cfg, inv, stdout)
	}
	if err := checkStage(p, inv); err != nil {
		return usageError(err)
	}
	var unknown []error
	for _, name := range inv.tasks {
		if _, err := p.Registry().Lookup(name); err != nil {
			unknown = append(unknown, withRecipeHint(p, err, name))
		}
	}
	if err := errors.Join(unknown...); err != nil {
		return usageError(err)
	}
	if err := r.Check(inv.tasks...); err != nil {
		// A variable's check may quote its value.
		return usageError(redacted(r, err))
	}
	s.started(inv.stage, r)
	if err := r.Execute(ctx, inv.tasks...); err != nil {
		var ue *run.UsageError
		if errors.As(err, &ue) {
			return usageError(redacted(r, err))
		}
		return taskFailure(ctx, r, err)
	}
	return nil
}

// checkStage refuses to run tasks without a stage when the Deployfile
// declares stages, as Capistrano does: the hosts come from the stage, so a
// task would run nowhere. A first word that is close to a stage's name is
// taken for a misspelt stage.
func checkStage(p *deployfile.Project, inv invocation) error {
	stages := p.Stages()
	if inv.stage != "" || len(stages) == 0 {
		return nil
	}
	list := strings.Join(stages, ", ")
	first := inv.tasks[0]
	if _, err := p.Registry().Lookup(first); err != nil {
		if s := tasks.Suggest(first, stages); s != "" {
			return fmt.Errorf("unknown stage or task %q (did you mean the stage %s?); stages: %s", first, s, list)
		}
		return fmt.Errorf("%w; or a stage: davit STAGE TASK (stages: %s)", withRecipeHint(p, err, first), list)
	}
	return fmt.Errorf("no stage given: davit STAGE %s (stages: %s)", strings.Join(inv.tasks, " "), list)
}

// withRecipeHint adds to an unknown task error the recipe that provides
// the task, when the Deployfile does not use it yet.
func withRecipeHint(p *deployfile.Project, err error, name string) error {
	if name != "deploy" && name != "rollback" && name != "releases" && !strings.HasPrefix(name, "deploy:") {
		return err
	}
	if _, derr := p.Registry().Lookup("deploy"); derr == nil {
		return err
	}
	return fmt.Errorf("%w: the deploy recipe provides it; add use(\"deploy\") to the Deployfile", err)
}

// interruptedMessage is what an interrupted run says: where it was, and
// what every host was left with when the task keeps such a summary (a
// deploy's), instead of each host's "context canceled".
func interruptedMessage(err error) string {
	var names []string // outermost first
	var te *tasks.TaskError
	for e := err; errors.As(e, &te); e = te.Err {
		names = append(names, te.Task)
	}
	msg := "interrupted"
	switch len(names) {
	case 0:
	case 1:
		msg += " in task " + names[0]
	default:
		msg += " in task " + names[len(names)-1] + " (of " + names[0] + ")"
	}
	var s interface{ Summary() string }
	if errors.As(err, &s) {
		return msg + "\n" + s.Summary()
	}
	return msg
}

// checkFlags refuses flag values that cannot mean anything, before the
// Deployfile is read.
func checkFlags(c *urfave.Context) error {
	if c.IsSet("parallel") && c.Int("parallel") < 1 {
		return usageError(fmt.Errorf("--parallel %d: want at least 1", c.Int("parallel")))
	}
	switch policy := c.String("host-key-checking"); policy {
	case "", "strict", "accept-new", "off":
	default:
		return usageError(fmt.Errorf("--host-key-checking %q: want strict, accept-new or off", policy))
	}
	return nil
}

// taskFailure is the closing error of a run whose tasks failed or were
// interrupted: redacted, and saying where the whole story is.
func taskFailure(ctx context.Context, r *run.Run, err error) error {
	msg := err.Error()
	if ctx.Err() != nil {
		msg = interruptedMessage(err)
	}
	return taskError(&output.RedactedError{Msg: r.Redact(msg) + "\n(see " + r.ShownLogPath() + " for every command and its output)", Err: err})
}

// redacted hides the run's secrets in err's text: a task's error quotes
// the command that failed and its stderr, which may carry them.
func redacted(r *run.Run, err error) error {
	return &output.RedactedError{Msg: r.Redact(err.Error()), Err: err}
}

// terminalFormat builds the chosen output format on stdout.
func terminalFormat(c *urfave.Context, stdout io.Writer) (output.Sink, error) {
	format := c.String("format")
	tty := false
	if f, ok := stdout.(*os.File); ok {
		tty = isatty.IsTerminal(f.Fd())
	}
	if format == "" {
		format = "plain"
		if tty {
			format = "pretty"
		}
	}
	verbosity := output.Normal
	switch {
	case c.Bool("quiet"):
		verbosity = output.Quiet
	case c.Count("verbose") >= 2:
		verbosity = output.VeryVerbose
	case c.Count("verbose") == 1:
		verbosity = output.Verbose
	}
	switch format {
	case "pretty":
		opts := output.PrettyOptions{Verbosity: verbosity}
		if f, ok := stdout.(*os.File); ok {
			opts.Color = output.ColorEnabled(f)
			if tty && os.Getenv("TERM") != "dumb" {
				// On a terminal: a live status line of what runs, and
				// lines cut to the terminal's width (the log keeps them).
				opts.Live = true
				if w, _, err := term.GetSize(int(f.Fd())); err == nil {
					opts.Width = w
				}
			}
		}
		return output.NewPretty(stdout, opts), nil
	case "plain":
		return output.NewPlainWith(stdout, output.PlainOptions{Verbosity: verbosity}), nil
	case "json":
		return output.NewJSONWith(stdout, output.JSONOptions{Verbosity: verbosity}), nil
	}
	return nil, usageError(fmt.Errorf("--format %q: want pretty, plain or json", format))
}

// listTasks prints the tasks that have a description (the ones meant to be
// run by hand, as in Capistrano), or all of them with all set, then the
// stages with their descriptions. The steps of the SCM strategies the
// project does not use are left out even with all.
func listTasks(w io.Writer, p *deployfile.Project, all bool) error {
	var list []*tasks.Task
	unused := unusedStrategies(p)
	for _, t := range p.Registry().List() {
		prefix, _, namespaced := strings.Cut(t.Name, ":")
		if namespaced && slices.Contains(unused, prefix) {
			continue
		}
		if all || t.Desc != "" {
			list = append(list, t)
		}
	}
	width := 0
	for _, t := range list {
		width = max(width, len(t.Name))
	}
	for _, t := range list {
		if t.Desc == "" {
			fmt.Fprintf(w, "davit %s\n", t.Name)
			continue
		}
		fmt.Fprintf(w, "davit %-*s  # %s\n", width, t.Name, t.Desc)
	}
	stages := p.Stages()
	if len(stages) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nstages: %s\n", strings.Join(stages, ", "))
	width = 0
	for _, s := range stages {
		width = max(width, len(s))
	}
	for _, s := range stages {
		if d := p.StageDesc(s); d != "" {
			fmt.Fprintf(w, "  %-*s  # %s\n", width, s, d)
		}
	}
	return nil
}

// unusedStrategies names the SCM strategies whose tasks (git:check, …) the
// deploy recipe defines but the project's scm variable does not pick.
func unusedStrategies(p *deployfile.Project) []string {
	current, err := p.Vars().FetchString("scm")
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range scm.Names() {
		if n != current {
			out = append(out, n)
		}
	}
	return out
}
