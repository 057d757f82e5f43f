package deployfile

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"

	"github.com/Masterminds/semver/v3"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/runner"
	"github.com/davit-deploy/davit/tasks"
)

type builtinFunc = func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)

// builtins is the predeclared environment of every Deployfile and loaded
// file: the core builtins and every Go recipe's (recipebuiltins.go). The
// README's Deployfile reference documents each core one; keep the two in
// step.
func (p *Project) builtins() (starlark.StringDict, error) {
	d := p.coreBuiltins()
	if err := p.addRecipeBuiltins(d); err != nil {
		return nil, err
	}
	return d, nil
}

func (p *Project) coreBuiltins() starlark.StringDict {
	fns := map[string]builtinFunc{
		"env":         p.bEnv,
		"after":       p.bAfter,
		"ask":         p.bAsk,
		"before":      p.bBefore,
		"fetch":       p.bFetch,
		"hosts":       p.bHosts,
		"info":        p.bInfo,
		"invoke":      p.bInvoke,
		"on":          p.bOn,
		"primary":     p.bPrimary,
		"reinvoke":    p.bInvoke,
		"require":     p.bRequire,
		"schedule":    p.bSchedule,
		"use":         p.bUse,
		"role":        p.bRole,
		"roles":       p.bRoles,
		"run_locally": p.bRunLocally,
		"server":      p.bServer,
		"set":         p.bSet,
		"stage":       p.bStage,
		"task":        p.bTask,
		"warn":        p.bWarn,
	}
	d := starlark.StringDict{}
	for name, fn := range fns {
		d[name] = starlark.NewBuiltin(name, fn)
	}
	d["struct"] = starlark.NewBuiltin("struct", starlarkstruct.Make)
	return d
}

// publicPhase is the tasks.Phase a thread's phase is called in recipe
// builtins' declarations.
func (ph phase) public() tasks.Phase {
	switch ph {
	case phaseLoad:
		return tasks.PhaseLoad
	case phaseStage:
		return tasks.PhaseStage
	case phaseTask:
		return tasks.PhaseTask
	}
	return tasks.PhaseLazy
}

// --- variables ---

func (p *Project) bSet(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	var value starlark.Value
	var secret bool
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "value", &value, "secret?", &secret); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errors.New("empty variable name")
	}
	pos := callerPos(th)
	if secret {
		p.vars.MarkSecret(name)
	}
	if fn, ok := value.(starlark.Callable); ok {
		p.freezeShared(th, value)
		p.vars.Set(name, tasks.LazyChain(func(chain []string) (any, error) { return p.computeLazy(chain, fn) }), pos)
		return starlark.None, nil
	}
	gv, ok, err := toGo(value)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if !ok {
		// No plain Go form (a struct, say): keep the Starlark value,
		// frozen, since other threads will read it.
		value.Freeze()
		gv = value
	}
	p.vars.Set(name, gv, pos)
	return starlark.None, nil
}

// freezeShared freezes a value that other threads will use: now if a task
// is running, or when loading ends (so that the loading file can finish
// building values its functions capture).
func (p *Project) freezeShared(th *starlark.Thread, v starlark.Value) {
	if stateOf(th).phase == phaseTask || stateOf(th).phase == phaseLazy {
		v.Freeze()
		return
	}
	p.record(v)
}

// computeLazy runs a lazy variable's function on its own thread. chain is
// the fetch chain computing it (ending with its name): the thread keeps it
// so that the function's own fetch() calls pass it on, which is how Vars
// tells a cycle from a fetch that merely waits for another goroutine.
func (p *Project) computeLazy(chain []string, fn starlark.Callable) (any, error) {
	th := p.newThread("lazy "+chain[len(chain)-1], &threadState{phase: phaseLazy, chain: chain})
	v, err := starlark.Call(th, fn, nil, nil)
	if err != nil {
		return nil, convertErr(nil, err)
	}
	gv, ok, err := toGo(v)
	if err != nil {
		return nil, err
	}
	if !ok {
		v.Freeze()
		return v, nil
	}
	return gv, nil
}

func (p *Project) bFetch(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	var def starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "default?", &def); err != nil {
		return nil, err
	}
	var val any
	var err error
	if def != nil && !p.vars.Has(name) {
		val = def
	} else {
		val, err = p.vars.FetchChain(stateOf(th).chain, name)
	}
	if err != nil {
		return nil, err
	}
	sv, err := toStarlark(val)
	if err != nil {
		return nil, fmt.Errorf("variable %s: %w", name, err)
	}
	return sv, nil
}

// bEnv reads an environment variable (Options.Getenv): cron and boot-time
// runs have no terminal for ask(). A value read from a secret-looking name
// (or with secret=True) is redacted from all output.
func (p *Project) bEnv(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	var def starlark.Value
	var secret bool
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "default?", &def, "secret?", &secret); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errors.New("empty environment variable name")
	}
	getenv := p.opts.Getenv
	if getenv == nil {
		getenv = os.LookupEnv
	}
	val, ok := getenv(name)
	if !ok {
		if def == nil {
			return nil, fmt.Errorf("environment variable %s is not set (give env() a default to make it optional)", name)
		}
		return def, nil
	}
	if secret || tasks.LooksSecret(name) {
		p.vars.AddSecretValue(val)
	}
	return starlark.String(val), nil
}

// --- inventory ---

func (p *Project) addHosts(st *threadState, hs ...*deploy.Host) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st.phase == phaseStage {
		p.stageHosts = append(p.stageHosts, hs...)
	} else {
		p.globalHosts = append(p.globalHosts, hs...)
	}
}

func propsToGo(kwargs []starlark.Tuple, skip ...string) (map[string]any, error) {
	var props map[string]any
	for _, kv := range kwargs {
		k := string(kv[0].(starlark.String))
		if slices.Contains(skip, k) {
			continue
		}
		gv, ok, err := toGo(kv[1])
		if err != nil {
			return nil, fmt.Errorf("property %s: %w", k, err)
		}
		if !ok {
			return nil, fmt.Errorf("property %s: a %s cannot be a host property", k, kv[1].Type())
		}
		if props == nil {
			props = map[string]any{}
		}
		props[k] = gv
	}
	return props, nil
}

// splitKwargs separates the keyword arguments a builtin names from the
// free-form host properties. A property one edit away from a parameter
// (role= for roles=) is refused as the typo it almost surely is.
func splitKwargs(kwargs []starlark.Tuple, known ...string) (named, props []starlark.Tuple, err error) {
	for _, kv := range kwargs {
		k := string(kv[0].(starlark.String))
		if slices.Contains(known, k) {
			named = append(named, kv)
			continue
		}
		if err := nearParam(k, known, "other keywords become host properties"); err != nil {
			return nil, nil, err
		}
		props = append(props, kv)
	}
	return named, props, nil
}

func (p *Project) bServer(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	st, err := whileLoading(th, b.Name(), true)
	if err != nil {
		return nil, err
	}
	named, extra, err := splitKwargs(kwargs, "name", "roles", "user", "port", "address", "primary", "backend")
	if err != nil {
		return nil, err
	}
	var name string
	var rolesV starlark.Value
	var user, address, backend string
	var port int
	var primary bool
	if err := starlark.UnpackArgs(b.Name(), args, named, "name", &name, "roles?", &rolesV,
		"user?", &user, "port?", &port, "address?", &address, "primary?", &primary, "backend?", &backend); err != nil {
		return nil, err
	}
	h, err := deploy.ParseHost(name)
	if err != nil {
		return nil, err
	}
	if user != "" {
		h.User = user
	}
	if port != 0 {
		if port < 1 || port > 65535 {
			return nil, fmt.Errorf("invalid port %d", port)
		}
		h.Port = port
	}
	switch backend {
	case "", "ssh", "local":
		h.Backend = backend
	default:
		return nil, fmt.Errorf("backend %q: want \"ssh\" or \"local\"", backend)
	}
	h.Address, h.Primary = address, primary
	if h.Roles, err = stringList("roles", rolesV); err != nil {
		return nil, err
	}
	if h.Props, err = propsToGo(extra); err != nil {
		return nil, err
	}
	p.addHosts(st, h)
	return starlark.None, nil
}

func (p *Project) bRole(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	st, err := whileLoading(th, b.Name(), true)
	if err != nil {
		return nil, err
	}
	named, extra, err := splitKwargs(kwargs, "name", "hosts", "primary")
	if err != nil {
		return nil, err
	}
	var name string
	var hostsV starlark.Value
	var primary bool
	if err := starlark.UnpackArgs(b.Name(), args, named, "name", &name, "hosts", &hostsV, "primary?", &primary); err != nil {
		return nil, err
	}
	specs, err := stringList("hosts", hostsV)
	if err != nil {
		return nil, err
	}
	props, err := propsToGo(extra)
	if err != nil {
		return nil, err
	}
	var hs []*deploy.Host
	for _, s := range specs {
		h, err := deploy.ParseHost(s)
		if err != nil {
			return nil, err
		}
		h.Roles, h.Primary = []string{name}, primary
		if len(props) > 0 {
			h.Props = map[string]any{}
			for k, v := range props {
				h.Props[k] = v
			}
		}
		hs = append(hs, h)
	}
	p.addHosts(st, hs...)
	return starlark.None, nil
}

func (p *Project) bStage(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if _, err := whileLoading(th, b.Name(), false); err != nil {
		return nil, err
	}
	var name, desc string
	var fn starlark.Callable
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "fn", &fn, "desc?", &desc); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errors.New("empty stage name")
	}
	if s := p.findStage(name); s != nil {
		return nil, fmt.Errorf("stage %s is already declared at %s", name, s.pos)
	}
	p.record(fn)
	p.mu.Lock()
	p.stages = append(p.stages, &stageDef{name: name, desc: desc, fn: fn, pos: callerPos(th)})
	p.mu.Unlock()
	return starlark.None, nil
}

// hostsNow returns the inventory a non-task thread sees: the declared
// hosts, without the --roles/--hosts filter (which belongs to the run).
func (p *Project) hostsNow(th *starlark.Thread, name string) (*threadState, []*deploy.Host, error) {
	st := stateOf(th)
	switch {
	case st.tc != nil:
		return st, nil, nil
	case st.phase == phaseLoad:
		return nil, nil, fmt.Errorf("%s() can only be called inside a task, a stage function or a lazy value (no stage is selected while loading)", name)
	}
	return st, p.Hosts(), nil
}

func (p *Project) bRoles(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(kwargs) > 0 {
		return nil, errors.New("unexpected keyword arguments")
	}
	names, err := stringArgs(args)
	if err != nil {
		return nil, err
	}
	st, all, err := p.hostsNow(th, b.Name())
	if err != nil {
		return nil, err
	}
	if st.tc != nil {
		return hostList(st.tc.Roles(names...)), nil
	}
	return hostList(deploy.WithRoles(all, names...)), nil
}

func (p *Project) bHosts(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(kwargs) > 0 {
		return nil, errors.New("unexpected keyword arguments")
	}
	patterns, err := stringArgs(args)
	if err != nil {
		return nil, err
	}
	if err := (deploy.Filter{Hosts: patterns}).Validate(); err != nil {
		return nil, err
	}
	st, all, err := p.hostsNow(th, b.Name())
	if err != nil {
		return nil, err
	}
	if st.tc != nil {
		return hostList(st.tc.Hosts(patterns...)), nil
	}
	if len(patterns) == 0 {
		return starlark.NewList(nil), nil
	}
	return hostList(deploy.Filter{Hosts: patterns}.Apply(all)), nil
}

func (p *Project) bPrimary(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var role string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "role", &role); err != nil {
		return nil, err
	}
	st, all, err := p.hostsNow(th, b.Name())
	if err != nil {
		return nil, err
	}
	var h *deploy.Host
	if st.tc != nil {
		h = st.tc.Primary(role)
	} else {
		h = deploy.Primary(all, role)
	}
	if h == nil {
		return starlark.None, nil
	}
	return &hostValue{h: h}, nil
}

func stringArgs(args starlark.Tuple) ([]string, error) {
	out := make([]string, len(args))
	for i, a := range args {
		s, ok := starlark.AsString(a)
		if !ok {
			return nil, fmt.Errorf("argument %d is a %s; want a string", i+1, a.Type())
		}
		out[i] = s
	}
	return out, nil
}

// --- tasks and hooks ---

func (p *Project) bTask(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if _, err := whileLoading(th, b.Name(), true); err != nil {
		return nil, err
	}
	var name, desc string
	var fn starlark.Callable
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "fn", &fn, "desc?", &desc); err != nil {
		return nil, err
	}
	p.record(fn)
	err := p.registry.Define(&tasks.Task{Name: name, Desc: desc, Pos: callerPos(th), Run: p.taskBody(name, fn)})
	if err != nil {
		return nil, err
	}
	return starlark.None, nil
}

func (p *Project) bBefore(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return p.hook(th, b, args, kwargs, p.registry.Before)
}

func (p *Project) bAfter(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return p.hook(th, b, args, kwargs, p.registry.After)
}

// hook registers a before/after hook. A callable hook becomes an anonymous
// task named after the hook ("after deploy:published (notify)"), which has
// no description and so stays out of task listings.
func (p *Project) hook(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple,
	add func(target, hook string, pos tasks.Position) error) (starlark.Value, error) {
	if _, err := whileLoading(th, b.Name(), true); err != nil {
		return nil, err
	}
	var target string
	var hookV starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "task", &target, "hook", &hookV); err != nil {
		return nil, err
	}
	pos := callerPos(th)
	var hook string
	switch h := hookV.(type) {
	case starlark.String:
		hook = string(h)
	case starlark.Callable:
		label := pos.String()
		if f, ok := h.(*starlark.Function); ok && f.Name() != "lambda" {
			label = f.Name()
		}
		hook = fmt.Sprintf("%s %s (%s)", b.Name(), target, label)
		p.record(h)
		if err := p.registry.Define(&tasks.Task{Name: hook, Pos: pos, Run: p.taskBody(hook, h)}); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("hook must be a task name or a function, not %s", hookV.Type())
	}
	if err := add(target, hook, pos); err != nil {
		return nil, err
	}
	return starlark.None, nil
}

// bInvoke is invoke() and reinvoke(): run a task from a task body, once
// per run or (reinvoke) again.
func (p *Project) bInvoke(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	st, err := inTask(th, b.Name())
	if err != nil {
		return nil, err
	}
	var name string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name); err != nil {
		return nil, err
	}
	invoke := st.tc.Invoke
	if b.Name() == "reinvoke" {
		invoke = st.tc.Reinvoke
	}
	if err := invoke(name); err != nil {
		return nil, err
	}
	return starlark.None, nil
}

// --- running on hosts ---

// targetHosts reads on()'s first argument: a host, a role name, or a list
// of hosts and role names.
func targetHosts(st *threadState, v starlark.Value) ([]*deploy.Host, error) {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case *hostValue:
		return []*deploy.Host{x.h}, nil
	case starlark.String:
		return st.tc.Roles(string(x)), nil
	case starlark.Iterable:
		var out []*deploy.Host
		iter := x.Iterate()
		defer iter.Done()
		var e starlark.Value
		for iter.Next(&e) {
			switch y := e.(type) {
			case *hostValue:
				out = append(out, y.h)
			case starlark.String:
				out = append(out, st.tc.Roles(string(y))...)
			default:
				return nil, fmt.Errorf("hosts: want hosts or role names, got a %s", e.Type())
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("hosts: want a host, a role name or a list of them, got a %s", v.Type())
}

func (p *Project) bOn(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	st, err := inTask(th, b.Name())
	if err != nil {
		return nil, err
	}
	var hostsV, wait starlark.Value
	var fn starlark.Callable
	strategy := "parallel"
	var limit, batchSize int
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "hosts", &hostsV, "fn", &fn,
		"strategy?", &strategy, "limit?", &limit, "batch_size?", &batchSize, "wait?", &wait); err != nil {
		return nil, err
	}
	hosts, err := targetHosts(st, hostsV)
	if err != nil {
		return nil, err
	}
	w, err := seconds("wait", wait)
	if err != nil {
		return nil, err
	}
	var r runner.Runner
	switch strategy {
	case "parallel":
		r = runner.Parallel{Limit: limit}
	case "sequence":
		r = runner.Sequence{Wait: w}
	case "groups":
		size := batchSize
		if size == 0 {
			size = limit
		}
		if size <= 0 {
			return nil, errors.New(`strategy "groups" needs batch_size`)
		}
		r = runner.Batches{Size: size, Wait: w}
	default:
		msg := fmt.Sprintf("unknown strategy %q", strategy)
		if s := tasks.Suggest(strategy, []string{"parallel", "sequence", "groups"}); s != "" {
			msg += " (did you mean " + s + "?)"
		}
		return nil, errors.New(msg + `; want "parallel", "sequence" or "groups"`)
	}
	fn.Freeze() // every host's thread calls it
	var mu sync.Mutex
	results := map[string]starlark.Value{}
	err = st.tc.On(hosts, r, func(hc *tasks.HostContext) error {
		v, err := p.runOnHost(st, hc, fn)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		results[hc.Host.String()] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	d := starlark.NewDict(len(results))
	for _, h := range hosts {
		if v, ok := results[h.String()]; ok {
			_ = d.SetKey(starlark.String(h.String()), v)
		}
	}
	return d, nil
}

func (p *Project) bRunLocally(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	st, err := inTask(th, b.Name())
	if err != nil {
		return nil, err
	}
	var fn starlark.Callable
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "fn", &fn); err != nil {
		return nil, err
	}
	fn.Freeze()
	var result starlark.Value = starlark.None
	err = st.tc.RunLocally(func(hc *tasks.HostContext) error {
		v, err := p.runOnHost(st, hc, fn)
		result = v
		return err
	})
	if err != nil {
		return nil, err
	}
	return result, nil
}

func (p *Project) bAsk(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	st, err := inTask(th, b.Name())
	if err != nil {
		return nil, err
	}
	var name, prompt string
	var def starlark.Value = starlark.None
	var secret bool
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "prompt?", &prompt, "default?", &def, "secret?", &secret); err != nil {
		return nil, err
	}
	d := ""
	if def != starlark.None {
		if s, ok := starlark.AsString(def); ok {
			d = s
		} else {
			d = def.String()
		}
	}
	answer, err := st.tc.Ask(name, prompt, d, secret)
	if err != nil {
		return nil, err
	}
	return starlark.String(answer), nil
}

// --- misc ---

func (p *Project) bRequire(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name, constraint string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "constraint", &constraint); err != nil {
		return nil, err
	}
	if name != "davit" {
		return nil, fmt.Errorf("unknown requirement %q: only \"davit\" can be required", name)
	}
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return nil, fmt.Errorf("invalid version constraint %q: %w", constraint, err)
	}
	v, err := semver.NewVersion(p.opts.Version)
	if err != nil {
		// A development build has no release version to compare.
		return starlark.None, nil
	}
	// Check a prerelease (1.3.0-rc.1) as its release: semver would
	// otherwise refuse it for every constraint without a prerelease.
	release := semver.New(v.Major(), v.Minor(), v.Patch(), "", "")
	if !c.Check(release) {
		return nil, p.requireError(th, constraint)
	}
	return starlark.None, nil
}

// bUse installs a Go recipe: its variables' defaults, its tasks and its
// hooks, once however often it is named.
func (p *Project) bUse(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if _, err := whileLoading(th, b.Name(), false); err != nil {
		return nil, err
	}
	var name string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name); err != nil {
		return nil, err
	}
	if _, ok := p.recipes[name]; !ok {
		names := slices.Sorted(maps.Keys(p.opts.GoRecipes))
		msg := fmt.Sprintf("unknown recipe %q", name)
		if s := tasks.Suggest(name, names); s != "" {
			msg += " (did you mean " + s + "?)"
		}
		return nil, errors.New(msg)
	}
	p.mu.Lock()
	done := p.used[name]
	if p.used == nil {
		p.used = map[string]bool{}
	}
	p.used[name] = true
	p.mu.Unlock()
	if done {
		return starlark.None, nil
	}
	if err := tasks.UseRecipe(p.recipes[name], p.registry, p.vars); err != nil {
		return nil, fmt.Errorf("use %s: %w", name, err)
	}
	return starlark.None, nil
}

func (p *Project) bInfo(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return p.say(th, b, args, kwargs, "info")
}

func (p *Project) bWarn(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return p.say(th, b, args, kwargs, "warn")
}

func (p *Project) say(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, level string) (starlark.Value, error) {
	var msg starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "msg", &msg); err != nil {
		return nil, err
	}
	s, ok := starlark.AsString(msg)
	if !ok {
		s = msg.String()
	}
	p.message(th, level, s)
	return starlark.None, nil
}

// taskCtxValue is the ctx argument of a task body: read-only facts about
// the run. Everything that acts is a builtin, so ctx stays small.
func (p *Project) taskCtxValue(c *tasks.Context) starlark.Value {
	return starlarkstruct.FromStringDict(starlark.String("ctx"), starlark.StringDict{
		"task":    starlark.String(c.Task.Name),
		"stage":   starlark.String(p.Stage()),
		"dry_run": starlark.Bool(c.DryRun()),
	})
}
