package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/backend/dryrun"
	"github.com/davit-deploy/davit/deploy/backend/local"
	sshbackend "github.com/davit-deploy/davit/deploy/backend/ssh"
	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/recipes"
	"github.com/davit-deploy/davit/tasks"
	"github.com/davit-deploy/davit/tasks/deployfile"
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

func loadProject(ctx context.Context, c *cli.Context, overrides map[string]string) (*deployfile.Project, string, error) {
	path, err := findDeployfile(c.String("file"))
	if err != nil {
		return nil, "", err
	}
	p, err := deployfile.Load(ctx, path, deployfile.Options{
		Version:   version,
		Recipes:   recipes.Starlark(),
		GoRecipes: recipes.Go(),
		Overrides: overrides,
	})
	if err != nil {
		return nil, "", usageError(err)
	}
	return p, path, nil
}

// runTasks is the main action: load the Deployfile, pick the stage, and
// invoke each task in order.
func runTasks(c *cli.Context, stdin *os.File, stdout, stderr io.Writer) error {
	ctx := c.Context
	words, overrides, err := splitArgs(c.Args().Slice(), c.StringSlice("set"))
	if err != nil {
		return err
	}
	p, path, err := loadProject(ctx, c, overrides)
	if err != nil {
		return err
	}
	inv := invocation{overrides: overrides}
	if len(words) > 0 && p.HasStage(words[0]) {
		inv.stage, words = words[0], words[1:]
	}
	inv.tasks = words
	if inv.stage != "" {
		if err := p.UseStage(inv.stage); err != nil {
			return usageError(err)
		}
	}
	if c.Bool("tasks") {
		return listTasks(stdout, p, c.Bool("all"))
	}
	if len(inv.tasks) == 0 {
		return usageError(errNoTasks)
	}
	for _, name := range inv.tasks {
		if _, err := p.Registry().Lookup(name); err != nil {
			if len(p.Stages()) > 0 && inv.stage == "" && name == words[0] {
				err = fmt.Errorf("%w (stages: %s)", err, strings.Join(p.Stages(), ", "))
			}
			return usageError(err)
		}
	}
	filter := deploy.Filter{Roles: deploy.ParseList(c.String("roles")), Hosts: deploy.ParseList(c.String("hosts"))}
	if err := filter.Validate(); err != nil {
		return usageError(fmt.Errorf("--roles/--hosts: %w", err))
	}

	sink, closeSink, err := openOutput(c, path, p.Vars(), stdout)
	if err != nil {
		return err
	}
	defer closeSink()

	pool, localBackend, err := openBackends(c, filepath.Dir(path), sink)
	if err != nil {
		return err
	}
	defer pool.Close()

	exec := &tasks.Executor{
		Registry:        p.Registry(),
		Vars:            p.Vars(),
		Hosts:           p.Hosts(),
		Filter:          filter,
		Pool:            pool,
		Local:           localBackend,
		LocalDir:        filepath.Dir(path),
		Sink:            sink,
		DefaultParallel: c.Int("parallel"),
		Prompter:        tasks.NewTerminalPrompter(stdin, stderr),
	}
	for _, name := range inv.tasks {
		if err := exec.Invoke(ctx, name); err != nil {
			return taskError(err)
		}
	}
	return nil
}

// openOutput builds the sink every event goes to: the chosen format on
// stdout and the run log, both behind the secret redactor.
func openOutput(c *cli.Context, deployfilePath string, vars *tasks.Vars, stdout io.Writer) (output.Sink, func(), error) {
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
	var term output.Sink
	switch format {
	case "pretty":
		color := false
		if f, ok := stdout.(*os.File); ok {
			color = output.ColorEnabled(f)
		}
		term = output.NewPretty(stdout, output.PrettyOptions{Color: color, Verbose: c.Bool("verbose")})
	case "plain":
		term = output.NewPlain(stdout)
	case "json":
		term = output.NewJSON(stdout)
	default:
		return nil, nil, usageError(fmt.Errorf("--format %q: want pretty, plain or json", format))
	}
	logPath := c.String("log")
	if logPath == "" {
		logPath = filepath.Join(filepath.Dir(deployfilePath), "log", "davit.log")
	}
	log, err := output.NewLog(logPath, redactArgs(os.Args, vars)...)
	if err != nil {
		return nil, nil, usageError(fmt.Errorf("--log: %w", err))
	}
	sink := output.NewRedactor(output.Multi(term, log), vars.SecretValues)
	return sink, func() { log.Close() }, nil
}

// openBackends returns the per-host connection pool and the backend for
// run_locally. Under --dry-run both only report, through the sink, so the
// reports keep the chosen format and secrets stay redacted.
//
// run_locally works in the Deployfile's directory, as Capistrano's does in
// the project root; a localhost server works in the home directory, as a
// login over SSH would, so a task behaves the same on either backend.
func openBackends(c *cli.Context, projectDir string, sink output.Sink) (*deploy.Pool, deploy.Backend, error) {
	if c.Bool("dry-run") {
		report := func(host string) func(string) {
			return func(msg string) {
				sink.Emit(output.Event{Time: time.Now(), Kind: output.Message, Host: host, Level: "info", Line: msg})
			}
		}
		pool := deploy.NewPool(func(_ context.Context, h *deploy.Host) (deploy.Backend, error) {
			return dryrun.New(report(h.String())), nil
		})
		return pool, dryrun.New(report(tasks.LocalHost().String())), nil
	}
	policy := c.String("host-key-checking")
	switch policy {
	case "", "strict", "accept-new", "off":
	default:
		return nil, nil, usageError(fmt.Errorf("--host-key-checking %q: want strict, accept-new or off", policy))
	}
	dialer, err := sshbackend.NewDialer(sshbackend.Options{
		ConfigFile:    c.String("ssh-config"),
		HostKeyPolicy: sshbackend.HostKeyPolicy(policy),
	})
	if err != nil {
		return nil, nil, usageError(err)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, nil, fmt.Errorf("localhost backend: %w", err)
	}
	pool := deploy.NewPool(func(ctx context.Context, h *deploy.Host) (deploy.Backend, error) {
		if h.IsLocal() {
			return local.New(home), nil
		}
		return dialer.Connect(ctx, h)
	})
	return pool, local.New(projectDir), nil
}

// listTasks prints the tasks that have a description (the ones meant to be
// run by hand, as in Capistrano), or all of them with all set.
func listTasks(w io.Writer, p *deployfile.Project, all bool) error {
	var list []*tasks.Task
	for _, t := range p.Registry().List() {
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
	if stages := p.Stages(); len(stages) > 0 {
		fmt.Fprintf(w, "\nstages: %s\n", strings.Join(stages, ", "))
	}
	return nil
}

// redactArgs hides the values of secret variables given on the command
// line (db_password=…) before the run log records the command.
func redactArgs(args []string, vars *tasks.Vars) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if m := assignment.FindStringSubmatch(a); m != nil && vars.IsSecret(m[1]) {
			out[i] = m[1] + "=" + output.Redacted
		}
	}
	return out
}
