// Package run is one run of a Deployfile, from the file to the last task:
// load it, select a stage, resolve the stage's inventory (declared servers
// and host sources), build the executor with its output and backends, and
// invoke the tasks asked for.
//
// The CLI makes one Run per invocation. A command that runs for a long time
// (a scheduler firing tasks, an autoscaler deciding every few minutes, an
// instance deploying itself at boot) makes a fresh Run each time: tasks run
// once per run and lazy values are computed once per run, so a Run must
// never be reused for a second round of work.
//
//	r, err := run.Load(ctx, cfg)      // cfg.Deployfile, recipes, overrides, output
//	err = r.UseStage(ctx, "production")
//	err = r.Check("scale")             // every task and hook name, before anything runs
//	err = r.Execute(ctx, "scale")      // inventory, executor, invoke
package run

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/backend/dryrun"
	"github.com/davit-deploy/davit/deploy/backend/local"
	sshbackend "github.com/davit-deploy/davit/deploy/backend/ssh"
	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/tasks"
	"github.com/davit-deploy/davit/tasks/deployfile"
)

// Config is what a run needs besides the Deployfile itself.
type Config struct {
	// Deployfile is the path of the Deployfile to load.
	Deployfile string
	// Version is davit's version, for require("davit", …).
	Version string
	// Recipes are the embedded Starlark recipes (load("davit/NAME.star"))
	// and GoRecipes the Go ones (use("NAME")).
	Recipes   fs.FS
	GoRecipes map[string]func() tasks.Recipe
	// Overrides are the command line's KEY=VALUE words; they win over the
	// Deployfile's set().
	Overrides map[string]string
	// Filter narrows every task's hosts (--roles, --hosts).
	Filter deploy.Filter
	// DryRun reports every command instead of running it, and tells tasks
	// (Context.DryRun) to call no mutating API.
	DryRun bool
	// Parallel bounds parallel steps (--parallel); 0 is the runner's default.
	Parallel int
	// Prompter answers ask(); nil makes ask() fail with a hint.
	Prompter tasks.Prompter
	// Terminal is the chosen output format (pretty, plain, json); nil
	// shows nothing. The run puts the secret redactor in front of it.
	Terminal output.Sink
	// LogPath is the run log; "" is log/davit.log beside the Deployfile.
	LogPath string
	// LogArgs is the command line the run log records; the values of
	// secret variables given as KEY=VALUE are hidden.
	LogArgs []string
	// Getenv reads the environment for env(); nil is the process's.
	Getenv func(string) (string, bool)
	// SSH configures connections to hosts that are not local.
	SSH sshbackend.Options
	// SourceTimeout bounds the host sources; 0 is deploy.DefaultSourceTimeout.
	SourceTimeout time.Duration
}

// Run is one run: a loaded Deployfile and, once Execute is called, the
// executor working through its tasks.
type Run struct {
	cfg     Config
	project *deployfile.Project

	mu   sync.Mutex
	pool *deploy.Pool // of the Execute in progress, or the last one
	// hosts, when not nil, replace the stage's servers and sources (UseHosts).
	hosts []*deploy.Host
}

// UsageError is a run that cannot start because of how it was configured
// (an unreadable ssh_config, a log path that cannot be written): the
// user's to fix, as a Deployfile error is.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// HostsTask is the engine's own task that lists the stage's hosts.
const HostsTask = "hosts"

// Load reads and runs the Deployfile (its load phase). Its errors are the
// Deployfile's: they name the file, line and column.
func Load(ctx context.Context, cfg Config) (*Run, error) {
	p, err := deployfile.Load(ctx, cfg.Deployfile, deployfile.Options{
		Version:   cfg.Version,
		Recipes:   cfg.Recipes,
		GoRecipes: cfg.GoRecipes,
		Overrides: cfg.Overrides,
		Getenv:    cfg.Getenv,
	})
	if err != nil {
		return nil, err
	}
	r := &Run{cfg: cfg, project: p}
	if _, err := p.Registry().Lookup(HostsTask); err != nil {
		// A Deployfile's own task of that name wins.
		if err := p.Registry().Define(&tasks.Task{
			Name: HostsTask, Desc: "List the stage's hosts: address, user, roles, source and properties",
			Pos: tasks.Position{File: "davit"}, Run: listHosts,
		}); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func orDiscard(s output.Sink) output.Sink {
	if s == nil {
		return output.Multi()
	}
	return s
}

// Project is the loaded Deployfile: its stages, tasks and variables.
func (r *Run) Project() *deployfile.Project { return r.project }

// UseStage selects a stage: runs its function, which declares its servers
// and host sources (asked only by Execute).
func (r *Run) UseStage(ctx context.Context, name string) error {
	return r.project.UseStageContext(ctx, name)
}

// Check finds, before anything runs, every task name that is not defined,
// every hook anywhere in the Deployfile and its recipes that names an
// unknown task (to hook, or to run), and every cycle of hooks reachable
// from the tasks asked for, and every problem the recipes in use find with
// their variables (Project.CheckRecipes). All problems are reported at
// once.
func (r *Run) Check(names ...string) error {
	var errs []error
	if err := r.project.Registry().CheckHookNames(); err != nil {
		errs = append(errs, err)
	}
	if err := r.project.CheckRecipes(); err != nil {
		errs = append(errs, err)
	}
	if err := r.project.CheckSchedules(); err != nil {
		errs = append(errs, err)
	}
	for _, name := range names {
		if err := (&tasks.Executor{Registry: r.project.Registry()}).CheckHooks(name); err != nil {
			errs = append(errs, err)
		}
		if t, err := r.project.Registry().Lookup(name); err == nil && t.Check != nil {
			err := t.Check(r.project.Vars())
			// Each of the task's problems on a line of its own, named.
			problems := []error{err}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				problems = j.Unwrap()
			}
			for _, p := range problems {
				if p != nil {
					errs = append(errs, fmt.Errorf("%s: %w", name, p))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Redact hides the values of the run's secrets in s: for text that leaves
// davit other than through the run's output (the CLI's closing error).
func (r *Run) Redact(s string) string {
	return output.RedactString(s, r.project.Vars().SecretValues())
}

// Touched lists the hosts this run connected to (by Key), in the order it
// did: after an interrupted run, where something may be left behind.
func (r *Run) Touched() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pool == nil {
		return nil
	}
	return r.pool.Opened()
}

// LogPath is where the run log is written.
func (r *Run) LogPath() string {
	if r.cfg.LogPath != "" {
		return r.cfg.LogPath
	}
	return filepath.Join(filepath.Dir(r.project.Path()), "log", "davit.log")
}

// Execute resolves the stage's inventory once, then invokes the tasks in
// order with one executor, stopping at the first that fails. Everything it
// reports goes through the secret redactor to the terminal format and the
// run log.
func (r *Run) Execute(ctx context.Context, names ...string) error {
	log, err := output.NewLog(r.LogPath(), r.logArgs()...)
	if err != nil {
		return &UsageError{Err: fmt.Errorf("--log: %w", err)}
	}
	defer log.Close()
	vars := r.project.Vars()
	sink := output.NewRedactor(output.Multi(orDiscard(r.cfg.Terminal), log), vars.SecretValues)

	inv, err := r.inventory(ctx)
	if err != nil {
		return fmt.Errorf("stage %s: %w", r.project.Stage(), err)
	}
	pool, localBackend, err := r.backends(sink)
	if err != nil {
		return err
	}
	defer pool.Close()
	r.mu.Lock()
	r.pool = pool
	r.mu.Unlock()
	exec := &tasks.Executor{
		Registry:        r.project.Registry(),
		Vars:            vars,
		Hosts:           inv.Hosts,
		Inventory:       inv,
		Filter:          r.cfg.Filter,
		Pool:            pool,
		Local:           localBackend,
		LocalDir:        filepath.Dir(r.project.Path()),
		Sink:            sink,
		DefaultParallel: r.cfg.Parallel,
		Prompter:        r.cfg.Prompter,
		DryRun:          r.cfg.DryRun,
	}
	for _, name := range names {
		if err := exec.Invoke(ctx, name); err != nil {
			return err
		}
	}
	// A run that ran commands says where every line of them is kept.
	if r.cfg.Terminal != nil && exec.CommandsRun() > 0 {
		r.cfg.Terminal.Emit(output.Event{Time: time.Now(), Kind: output.Message, Level: "info", Line: "full log: " + r.ShownLogPath()})
	}
	return nil
}

// UseHosts makes hosts the run's hosts in place of the Deployfile's
// servers and host sources, which are then never asked: an instance
// deploying itself at boot is its one host, and must not need the cloud
// API that discovers the fleet. Call it before Execute.
func (r *Run) UseHosts(hosts []*deploy.Host) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hosts = make([]*deploy.Host, len(hosts))
	for i, h := range hosts {
		c := *h
		c.Roles = slices.Clone(h.Roles)
		c.Props = maps.Clone(h.Props)
		r.hosts[i] = &c
	}
}

// inventory is the hosts given to UseHosts, else the Deployfile's servers
// and the answers of its host sources.
func (r *Run) inventory(ctx context.Context) (*deploy.Inventory, error) {
	r.mu.Lock()
	given := r.hosts
	r.mu.Unlock()
	if given == nil {
		return deploy.ResolveInventory(ctx, r.project.Hosts(), r.project.HostSources(), r.cfg.SourceTimeout)
	}
	hosts := make([]*deploy.Host, len(given))
	for i, h := range given {
		c := *h
		c.Roles = slices.Clone(h.Roles)
		c.Props = maps.Clone(h.Props)
		hosts[i] = &c
	}
	return &deploy.Inventory{Hosts: hosts, Declared: len(hosts)}, nil
}

// ShownLogPath is the run log's path as a person at this directory would
// type it: relative when it is below the working directory.
func (r *Run) ShownLogPath() string {
	p := r.LogPath()
	if wd, err := os.Getwd(); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			if rel, err := filepath.Rel(wd, abs); err == nil && !strings.HasPrefix(rel, "..") {
				return rel
			}
			return abs
		}
	}
	return p
}

// logArgs is the command line for the log, with secret values hidden.
func (r *Run) logArgs() []string {
	args := slices.Clone(r.cfg.LogArgs)
	secrets := r.project.Vars().SecretValues()
	for i, a := range args {
		args[i] = output.RedactString(a, secrets)
	}
	return args
}

// backends returns the per-host connection pool and the backend for
// run_locally. Under a dry run both only report, through the sink, so the
// reports keep the chosen format and secrets stay redacted.
//
// run_locally works in the Deployfile's directory, as Capistrano's does in
// the project root; a localhost server works in its user's home directory,
// as a login over SSH would, so a task behaves the same on either backend.
func (r *Run) backends(sink output.Sink) (*deploy.Pool, deploy.Backend, error) {
	projectDir := filepath.Dir(r.project.Path())
	if r.cfg.DryRun {
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
	dialer, err := sshbackend.NewDialer(r.cfg.SSH)
	if err != nil {
		return nil, nil, &UsageError{Err: err}
	}
	pool := deploy.NewPool(func(ctx context.Context, h *deploy.Host) (deploy.Backend, error) {
		if h.IsLocal() {
			return local.ForHost(h)
		}
		return dialer.Connect(ctx, h)
	})
	return pool, local.New(projectDir), nil
}

// listHosts is the hosts task: one HostInfo event per host of the stage
// (narrowed by --roles/--hosts), which the text formats show as a table.
func listHosts(c *tasks.Context) error {
	e := c.Executor
	hosts := e.Filter.Apply(e.Hosts)
	if len(hosts) == 0 {
		c.Info("no hosts: " + e.Inventory.Describe())
		return nil
	}
	for _, h := range hosts {
		c.Emit(output.Event{Kind: output.HostInfo, Host: h.String(), Server: &output.Server{
			Name: h.Name, Address: h.Address, User: h.User, Port: h.Port, Roles: slices.Clone(h.Roles),
			Primary: h.Primary, Source: h.Source, Props: h.Props,
		}})
	}
	return nil
}
