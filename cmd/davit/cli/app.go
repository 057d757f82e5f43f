package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"

	urfave "github.com/urfave/cli/v2"

	"github.com/davit-deploy/davit/deploy/runner"
	"github.com/davit-deploy/davit/recipes"
	"github.com/davit-deploy/davit/tasks"
	"github.com/davit-deploy/davit/tasks/run"
)

// Version is davit's own version, checked by require("davit", ...) in
// Deployfiles.
const Version = "0.1.0"

// Options make a davit of one's own from this package: a team's binary
// with its Go recipes compiled in (examples/custom-binary).
type Options struct {
	// Recipes are Go recipes added to davit's own, by the name use()
	// takes; one named like a built-in recipe replaces it. Each call of a
	// constructor must make a fresh recipe.
	Recipes map[string]func() tasks.Recipe
	// Version is the binary's version for --version and require(); empty
	// is davit's own.
	Version string
}

func (o Options) version() string {
	if o.Version != "" {
		return o.Version
	}
	return Version
}

// goRecipes are davit's Go recipes with the options' added.
func (o Options) goRecipes() map[string]func() tasks.Recipe {
	all := recipes.Go()
	for name, fn := range o.Recipes {
		all[name] = fn
	}
	return all
}

// Main is the whole davit command line: args as os.Args gives them, the
// process's streams, and the exit status to end with (0, 1, 2 or 130, as
// the README says). It never exits itself, except on a second Ctrl-C,
// which must exit at once.
func Main(args []string, stdin *os.File, stdout, stderr io.Writer, opts Options) int {
	s := &session{opts: opts}
	ctx, stop := s.handleInterrupts(stderr, os.Exit)
	defer stop()
	app := newApp(s, stdin, stdout, stderr)
	err := app.RunContext(ctx, args)
	code := exitCode(ctx, err)
	if err != nil {
		fmt.Fprintf(stderr, "davit: %v\n", err)
	}
	return code
}

// session is what the interrupt handler needs to know of the run in
// progress: which stage it is on and which hosts it reached.
type session struct {
	opts  Options
	mu    sync.Mutex
	stage string
	run   *run.Run
}

func (s *session) started(stage string, r *run.Run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stage, s.run = stage, r
}

// handleInterrupts cancels the returned context on the first Ctrl-C (or
// SIGTERM), which stops every command and lets a deploy undo what it did
// (bounded, see the deploy recipe). A second one exits at once, saying
// which hosts may be left with a command running, a lock or a partial
// release, and how to recover.
func (s *session) handleInterrupts(stderr io.Writer, exit func(int)) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
		case <-done:
			return
		}
		cancel()
		fmt.Fprintln(stderr, "davit: interrupted: stopping the commands and undoing what this run changed; interrupt again to exit at once")
		select {
		case <-sigs:
		case <-done:
			return
		}
		fmt.Fprintln(stderr, "davit: interrupted again: exiting without waiting for the hosts."+s.leftBehind())
		exit(exitInterrupted)
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// leftBehind says what an abandoned run may have left on its hosts.
func (s *session) leftBehind() string {
	s.mu.Lock()
	stage, r := s.stage, s.run
	s.mu.Unlock()
	if r == nil {
		return ""
	}
	hosts := r.Touched()
	if len(hosts) == 0 {
		return " No host was reached."
	}
	cmd := "davit"
	if stage != "" {
		cmd += " " + stage
	}
	return r.Redact(fmt.Sprintf(" Commands may still be running, and a deploy's lock and new release may be left, on: %s.\n"+
		"  `%s deploy:check` shows a lock's holder, `%s deploy:unlock` removes it, `%s deploy:cleanup` removes a left-over release.",
		strings.Join(hosts, ", "), cmd, cmd, cmd))
}

func newApp(s *session, stdin *os.File, stdout, stderr io.Writer) *urfave.App {
	return &urfave.App{
		Name:      "davit",
		Usage:     "deploy applications to fleets of servers, Capistrano-style",
		UsageText: "davit [global options] [STAGE] TASK [TASK...] [KEY=VALUE...]\ndavit -T [STAGE]\ndavit init | version | completion SHELL",
		Version:   s.opts.version(),
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		// -vv is -v twice.
		UseShortOptionHandling: true,
		// Exit codes are ours to decide (see errors.go), never urfave's os.Exit.
		ExitErrHandler:       func(*urfave.Context, error) {},
		EnableBashCompletion: true,
		HideVersion:          true,
		Suggest:              true,
		Flags:                globalFlags(),
		Action: func(c *urfave.Context) error {
			if c.Bool("version") {
				printVersion(stdout, s.opts.version())
				return nil
			}
			return runTasks(c, s, stdin, stdout, stderr)
		},
		BashComplete: func(c *urfave.Context) { completeStagesAndTasks(c, s) },
		OnUsageError: func(c *urfave.Context, err error, _ bool) error {
			return usageError(suggestFlag(c.App.Flags, err))
		},
		Commands: []*urfave.Command{
			selfDeployCommand(s, stdout),
			{
				Name:      "init",
				Usage:     "write a commented starter Deployfile in this directory",
				ArgsUsage: " ",
				Action: func(c *urfave.Context) error {
					return initDeployfile(c.String("file"), stdout)
				},
			},
			{
				Name:  "version",
				Usage: "print davit's version",
				Action: func(c *urfave.Context) error {
					printVersion(stdout, s.opts.version())
					return nil
				},
			},
			{
				Name:      "completion",
				Usage:     "print a shell completion script (bash, zsh or fish)",
				ArgsUsage: "SHELL",
				Action: func(c *urfave.Context) error {
					return printCompletion(c, stdout)
				},
			},
			recipesCommand(s, stdout, stderr),
			simulateCommand(stdout),
		},
	}
}

// suggestFlag turns the flag parser's "flag provided but not defined: -x"
// into an error that suggests the closest flag, as for tasks and stages.
func suggestFlag(flags []urfave.Flag, err error) error {
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: ")
	if !ok {
		return err
	}
	name = strings.TrimLeft(name, "-")
	var names []string
	for _, f := range flags {
		names = append(names, f.Names()...)
	}
	dashes := func(n string) string {
		if len(n) == 1 {
			return "-" + n
		}
		return "--" + n
	}
	msg := "unknown flag " + dashes(name)
	if s := tasks.Suggest(name, names); s != "" {
		msg += " (did you mean " + dashes(s) + "?)"
	}
	return errors.New(msg + "; `davit --help` lists the flags")
}

func printVersion(w io.Writer, version string) {
	fmt.Fprintf(w, "davit %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func globalFlags() []urfave.Flag {
	return []urfave.Flag{
		&urfave.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "the Deployfile (default: ./Deployfile or the nearest parent's)"},
		&urfave.BoolFlag{Name: "tasks", Aliases: []string{"T"}, DisableDefaultText: true, Usage: "list the tasks with their descriptions"},
		&urfave.BoolFlag{Name: "all", Aliases: []string{"A"}, DisableDefaultText: true, Usage: "with -T, also list tasks without a description"},
		&urfave.StringFlag{Name: "roles", Aliases: []string{"r"}, Usage: "run only on hosts with these roles (comma-separated, globs)"},
		&urfave.StringFlag{Name: "hosts", Aliases: []string{"H"}, Usage: "run only on these hosts (comma-separated, globs such as 'web*')"},
		&urfave.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, DisableDefaultText: true, Usage: "print the commands each host would run; run nothing"},
		&urfave.IntFlag{Name: "parallel", Aliases: []string{"p"}, Value: runner.DefaultLimit, Usage: "at most N hosts at once in parallel steps"},
		&urfave.StringFlag{Name: "format", Usage: "output: pretty (default on a terminal), plain or json"},
		&urfave.BoolFlag{Name: "verbose", Aliases: []string{"v"}, DisableDefaultText: true, Count: new(int), Usage: "also show each command as it starts; -vv: also davit's own scripts and all they print"},
		&urfave.BoolFlag{Name: "quiet", Aliases: []string{"q"}, DisableDefaultText: true, Usage: "show only task headers, failures, warnings and the end"},
		&urfave.StringFlag{Name: "log", Usage: "write the run log here (default: log/davit.log beside the Deployfile)"},
		&urfave.StringSliceFlag{Name: "set", Aliases: []string{"s"}, Usage: "set a variable, KEY=VALUE (repeatable)"},
		&urfave.StringFlag{Name: "host-key-checking", Usage: "SSH host keys: strict (default), accept-new (record unknown keys) or off"},
		&urfave.StringFlag{Name: "ssh-config", Usage: "ssh_config file to read (default ~/.ssh/config; 'none' to read none)"},
		&urfave.BoolFlag{Name: "version", Aliases: []string{"V"}, DisableDefaultText: true, Usage: "print davit's version"},
	}
}

var errNoTasks = errors.New("no task given; `davit -T` lists the tasks")
