package deployfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/tasks"
	"github.com/davit-deploy/davit/tasks/remoterecipe"
)

// Options configure Load.
type Options struct {
	// Version is davit's own version, checked by require("davit", …). An
	// empty or non-semver version (a development build) satisfies every
	// constraint.
	Version string
	// Recipes holds the embedded recipes that load("davit/NAME.star")
	// reads, addressed without the "davit/" prefix (recipes.Starlark()).
	Recipes fs.FS
	// Overrides are KEY=VALUE pairs from the command line; they win over
	// every set() in the Deployfile.
	Overrides map[string]string
	// GoRecipes are the recipes written in Go that use("NAME") installs
	// (recipes.Go()). Load makes each one once, before the Deployfile
	// runs, to predeclare the builtins it contributes
	// (tasks.BuiltinProvider); use() installs that same instance.
	GoRecipes map[string]func() tasks.Recipe
	// Getenv reads the environment for env(); nil means os.LookupEnv.
	// Tests and in-process runs (a self-deploy) give their own.
	Getenv func(name string) (string, bool)
	// Sink receives info(), warn() and print() output from the load and
	// stage phases; nil discards it. During tasks, messages go to the
	// executor's sink.
	Sink output.Sink
	// Remote resolves load("git+…") of shared recipes, and decides whether
	// to follow the lock file or update it. nil makes one, on the first
	// such load, that follows the lock beside the Deployfile
	// (remoterecipe.LockPathFor) with the default cache, writing the lock
	// when there is none.
	Remote *remoterecipe.Resolver
}

// fileOptions is the Starlark dialect of Deployfiles: top-level if/for,
// while loops, reassigned globals and recursion are allowed, since a
// Deployfile is configuration written by people, not a sandboxed build
// rule. (lambda and nested def are always allowed.) Starlark's set type
// stays out: the predeclared set(), which sets a variable, owns the name.
func fileOptions() *syntax.FileOptions {
	return &syntax.FileOptions{
		While:           true,
		TopLevelControl: true,
		GlobalReassign:  true,
		Recursion:       true,
	}
}

// Project is a loaded Deployfile: its tasks and hooks (Registry), its
// variables (Vars), its stages and the servers of the selected stage.
type Project struct {
	path        string
	dir         string
	opts        Options
	ctx         context.Context
	registry    *tasks.Registry
	vars        *tasks.Vars
	predeclared starlark.StringDict

	mu          sync.Mutex
	stages      []*stageDef
	globalHosts []*deploy.Host // server()/role() at top level: every stage
	stageHosts  []*deploy.Host // server()/role() in the selected stage
	stage       string
	modules     map[string]*module
	loading     []moduleRef // the load stack, for cycle messages
	toFreeze    []starlark.Value
	used        map[string]bool         // Go recipes installed by use()
	recipes     map[string]tasks.Recipe // every Go recipe, made once by Load

	globalSources []deploy.HostSource // recorded at top level: every stage
	stageSources  []deploy.HostSource // recorded in the selected stage

	remote    *remoterecipe.Resolver // of git recipes; made on the first such load
	schedules []*Schedule            // schedule() calls (schedule.go)
}

type stageDef struct {
	name, desc string
	fn         starlark.Callable
	pos        tasks.Position
}

// moduleRef names a Starlark file: on disk (path relative to the working
// directory, as the user wrote the Deployfile path), embedded (path
// inside Options.Recipes) or in a git recipe's checkout (path inside the
// repository).
type moduleRef struct {
	embedded bool
	remote   *remoterecipe.Checkout
	path     string
}

func (m moduleRef) display() string {
	if m.embedded {
		return "davit/" + m.path
	}
	if m.remote != nil {
		return m.remote.Spec.Source + "//" + m.path + "@" + m.remote.Version()
	}
	return m.path
}

func (m moduleRef) key() string {
	if m.embedded {
		return "davit:" + m.path
	}
	if m.remote != nil {
		return m.remote.Spec.Source + "@" + m.remote.Commit + "//" + m.path
	}
	if abs, err := filepath.Abs(m.path); err == nil {
		return abs
	}
	return m.path
}

type module struct {
	globals starlark.StringDict
	err     error
	done    bool
}

// Load reads and runs the Deployfile at path (the load phase). Variables
// from opts.Overrides are in place before the first line runs. ctx bounds
// the load and, through UseStage, the stage function.
func Load(ctx context.Context, path string, opts Options) (*Project, error) {
	p := &Project{
		path:     filepath.Clean(path),
		dir:      filepath.Dir(path),
		opts:     opts,
		ctx:      ctx,
		registry: tasks.NewRegistry(),
		vars:     tasks.NewVars(),
		modules:  map[string]*module{},
	}
	for k, v := range opts.Overrides {
		p.vars.Override(k, v)
	}
	var err error
	if p.predeclared, err = p.builtins(); err != nil {
		return nil, err
	}
	// A load error may quote a value (fail() with a fetched password, a
	// type error naming it): the secrets set so far are hidden in it.
	if _, err := p.execModule(ctx, moduleRef{path: p.path}); err != nil {
		return nil, output.RedactError(err, p.vars.SecretValues())
	}
	if err := p.finishRemote(); err != nil {
		return nil, output.RedactError(err, p.vars.SecretValues())
	}
	p.freezeRecorded()
	return p, nil
}

// freezeRecorded freezes the callables and values the load or stage phase
// recorded (task bodies, hooks, lazy values): from now on they are shared
// between threads.
func (p *Project) freezeRecorded() {
	p.mu.Lock()
	vals := p.toFreeze
	p.toFreeze = nil
	p.mu.Unlock()
	for _, v := range vals {
		v.Freeze()
	}
}

func (p *Project) record(v starlark.Value) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.toFreeze = append(p.toFreeze, v)
}

// execModule runs one file once; later loads of it share the result.
func (p *Project) execModule(ctx context.Context, ref moduleRef) (starlark.StringDict, error) {
	key := ref.key()
	p.mu.Lock()
	if m, ok := p.modules[key]; ok {
		p.mu.Unlock()
		if !m.done {
			return nil, p.cycleError(ref)
		}
		return m.globals, m.err
	}
	m := &module{}
	p.modules[key] = m
	p.loading = append(p.loading, ref)
	p.mu.Unlock()

	m.globals, m.err = p.runModule(ctx, ref)

	p.mu.Lock()
	m.done = true
	p.loading = p.loading[:len(p.loading)-1]
	p.mu.Unlock()
	return m.globals, m.err
}

func (p *Project) cycleError(ref moduleRef) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.IndexFunc(p.loading, func(m moduleRef) bool { return m.key() == ref.key() })
	var names []string
	for _, m := range p.loading[max(i, 0):] {
		names = append(names, m.display())
	}
	return fmt.Errorf("load cycle: %s -> %s", strings.Join(names, " -> "), ref.display())
}

func (p *Project) runModule(ctx context.Context, ref moduleRef) (starlark.StringDict, error) {
	var src []byte
	var err error
	if ref.embedded {
		if p.opts.Recipes == nil {
			return nil, fmt.Errorf("load %s: no embedded recipes are available", ref.display())
		}
		src, err = fs.ReadFile(p.opts.Recipes, ref.path)
	} else if ref.remote != nil {
		// Its errors name the source, version and file already.
		if src, err = p.remote.ReadFile(ref.remote, ref.path); err != nil {
			return nil, err
		}
	} else {
		src, err = os.ReadFile(ref.path)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read %s: file not found", ref.display())
		}
		return nil, fmt.Errorf("read %s: %w", ref.display(), err)
	}
	th := p.newThread("load "+ref.display(), &threadState{phase: phaseLoad, module: ref, ctx: ctx})
	stop := context.AfterFunc(ctx, func() { th.Cancel(context.Cause(ctx).Error()) })
	defer stop()
	globals, err := starlark.ExecFileOptions(fileOptions(), th, ref.display(), src, p.predeclared)
	if err != nil {
		return nil, convertErr(ctx, p.suggestBuiltins(err))
	}
	return globals, nil
}

// suggestBuiltins adds "did you mean" to undefined names that are typos of
// builtins (fetsh → fetch): Starlark's resolver only suggests names it can
// list, which excludes predeclared ones.
func (p *Project) suggestBuiltins(err error) error {
	var list resolve.ErrorList
	if !errors.As(err, &list) {
		return err
	}
	names := append(slices.Collect(maps.Keys(p.predeclared)), slices.Collect(maps.Keys(starlark.Universe))...)
	for i, e := range list {
		name, ok := strings.CutPrefix(e.Msg, "undefined: ")
		if !ok || strings.Contains(name, " ") {
			continue
		}
		if s := tasks.Suggest(name, names); s != "" {
			list[i].Msg += " (did you mean " + s + "?)"
		}
	}
	return list
}

// resolveLoad maps a load() module name, written in file from at position
// at, to a file: "davit/NAME.star" is an embedded recipe; "git+…" a git
// recipe (remote.go); other names are relative to the loading file (inside
// the embedded recipes for an embedded file, inside the repository at the
// same commit for a git recipe's file).
func (p *Project) resolveLoad(from moduleRef, name, at string) (moduleRef, error) {
	switch {
	case remoterecipe.IsRemote(name):
		return p.resolveRemote(name, at)
	case strings.Contains(name, "://"):
		return moduleRef{}, fmt.Errorf("%q: a recipe from a repository is loaded as git+https://HOST/REPO.git//FILE.star@VERSION", name)
	case strings.HasPrefix(name, "davit/"):
		rel := path.Clean(strings.TrimPrefix(name, "davit/"))
		if !fs.ValidPath(rel) {
			return moduleRef{}, fmt.Errorf("invalid recipe path %q", name)
		}
		return moduleRef{embedded: true, path: rel}, nil
	case from.embedded:
		rel := path.Join(path.Dir(from.path), name)
		if !fs.ValidPath(rel) {
			return moduleRef{}, fmt.Errorf("%q leaves the embedded recipes", name)
		}
		return moduleRef{embedded: true, path: rel}, nil
	case from.remote != nil:
		rel, err := remoterecipe.Join(from.path, name)
		if err != nil {
			return moduleRef{}, err
		}
		return moduleRef{remote: from.remote, path: rel}, nil
	case filepath.IsAbs(name):
		return moduleRef{path: filepath.Clean(name)}, nil
	}
	return moduleRef{path: filepath.Join(filepath.Dir(from.path), name)}, nil
}

// load implements starlark.Thread.Load.
func (p *Project) load(th *starlark.Thread, name string) (starlark.StringDict, error) {
	st := stateOf(th)
	ref, err := p.resolveLoad(st.module, name, th.CallFrame(0).Pos.String())
	if err != nil {
		return nil, err
	}
	return p.execModule(p.ctx, ref)
}

// Path is the Deployfile's path as given to Load.
func (p *Project) Path() string { return p.path }

// Registry holds the tasks and hooks the Deployfile and its recipes define.
func (p *Project) Registry() *tasks.Registry { return p.registry }

// Vars holds the variables, with the command-line overrides applied.
func (p *Project) Vars() *tasks.Vars { return p.vars }

// Stages lists the declared stages in declaration order.
func (p *Project) Stages() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, s := range p.stages {
		out = append(out, s.name)
	}
	return out
}

// StageDesc returns a stage's description ("" if none or unknown).
func (p *Project) StageDesc(name string) string {
	if s := p.findStage(name); s != nil {
		return s.desc
	}
	return ""
}

// HasStage reports whether a stage called name is declared; the CLI uses it
// to tell `davit production deploy` from `davit deploy`.
func (p *Project) HasStage(name string) bool { return p.findStage(name) != nil }

func (p *Project) findStage(name string) *stageDef {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.stages {
		if s.name == name {
			return s
		}
	}
	return nil
}

// Stage is the selected stage, or "".
func (p *Project) Stage() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stage
}

// UseStage selects a stage with the context given to Load; see
// UseStageContext.
func (p *Project) UseStage(name string) error { return p.UseStageContext(p.ctx, name) }

// UseStageContext selects a stage: it sets the variable "stage" and runs
// the stage's function, whose server(), role() and set() calls add to the
// project. A stage can be selected once. An unknown name's error suggests
// the closest declared stage.
func (p *Project) UseStageContext(ctx context.Context, name string) error {
	s := p.findStage(name)
	if s == nil {
		stages := p.Stages()
		if len(stages) == 0 {
			return fmt.Errorf("unknown stage %q: %s declares no stages", name, p.path)
		}
		msg := fmt.Sprintf("unknown stage %q", name)
		if sug := tasks.Suggest(name, stages); sug != "" {
			msg += " (did you mean " + sug + "?)"
		}
		return errors.New(msg + "; stages: " + strings.Join(stages, ", "))
	}
	p.mu.Lock()
	if p.stage != "" {
		cur := p.stage
		p.mu.Unlock()
		return fmt.Errorf("stage %s: stage %s is already selected", name, cur)
	}
	p.stage = name
	p.mu.Unlock()
	p.vars.Set("stage", name, s.pos)

	th := p.newThread("stage "+name, &threadState{phase: phaseStage, ctx: ctx})
	stop := context.AfterFunc(ctx, func() { th.Cancel(context.Cause(ctx).Error()) })
	defer stop()
	if _, err := starlark.Call(th, s.fn, nil, nil); err != nil {
		return fmt.Errorf("stage %s: %w", name, convertErr(ctx, err))
	}
	p.freezeRecorded()
	return nil
}

// Hosts is the inventory: the top-level servers plus the selected stage's,
// with repeated declarations of one server (same name and port) merged —
// roles unioned, properties overlaid, primary if any says so, the first
// non-empty user. The hosts are fresh copies on every call.
func (p *Project) Hosts() []*deploy.Host {
	p.mu.Lock()
	decls := append(slices.Clone(p.globalHosts), p.stageHosts...)
	p.mu.Unlock()
	return deploy.MergeHosts(decls)
}

// CheckRecipes asks every Go recipe the Deployfile use()d that validates
// its variables (tasks.VarsChecker) to do so, in name order, and returns
// all their problems at once. Call it once the stage is selected: a stage
// may set variables too.
func (p *Project) CheckRecipes() error {
	p.mu.Lock()
	var checkers []tasks.VarsChecker
	for _, name := range slices.Sorted(maps.Keys(p.used)) {
		if vc, ok := p.recipes[name].(tasks.VarsChecker); ok {
			checkers = append(checkers, vc)
		}
	}
	p.mu.Unlock()
	var errs []error
	for _, vc := range checkers {
		if err := vc.CheckVars(p.vars); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// HostSources are the host sources recorded by recipe builtins
// (BuiltinCall.AddHostSource): those recorded at the top level, then the
// selected stage's. None of them has been asked for hosts; resolving them
// is the run's business (deploy.ResolveInventory).
func (p *Project) HostSources() []deploy.HostSource {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append(slices.Clone(p.globalSources), p.stageSources...)
}
