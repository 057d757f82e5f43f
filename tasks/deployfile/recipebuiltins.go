package deployfile

import (
	"fmt"
	"maps"
	"slices"

	"go.starlark.net/starlark"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/tasks"
)

// addRecipeBuiltins makes every Go recipe once (use() installs that same
// instance later) and predeclares the builtins each contributes
// (tasks.BuiltinProvider) beside the core ones in d. Every Deployfile sees
// them, so that a call before the recipe's use() can say which use() it
// needs rather than "undefined". A builtin that shadows a core or Starlark
// name, or that two recipes both declare, is an error: the build of davit
// is wrong, whatever the Deployfile says.
func (p *Project) addRecipeBuiltins(d starlark.StringDict) error {
	p.recipes = map[string]tasks.Recipe{}
	owner := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(p.opts.GoRecipes)) {
		rc := p.opts.GoRecipes[name]()
		p.recipes[name] = rc
		defs, err := tasks.RecipeBuiltins(rc)
		if err != nil {
			return fmt.Errorf("recipe %q: %w", name, err)
		}
		for _, def := range defs {
			switch _, universe := starlark.Universe[def.Name]; {
			case owner[def.Name] != "":
				return fmt.Errorf("recipes %q and %q both declare builtin %s()", owner[def.Name], name, def.Name)
			case d[def.Name] != nil || universe:
				return fmt.Errorf("recipe %q: builtin %s() has the name of a core builtin", name, def.Name)
			}
			owner[def.Name] = name
			d[def.Name] = starlark.NewBuiltin(def.Name, p.recipeBuiltin(name, def))
		}
	}
	return nil
}

// recipeBuiltin is the Starlark side of a recipe's builtin: it checks that
// the recipe is in use and the phase allows the call, converts the
// arguments as def.Params say, calls def.Call, and converts its result.
// Errors are reported at the calling line by the thread's error handling.
func (p *Project) recipeBuiltin(recipe string, def tasks.Builtin) builtinFunc {
	return func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		p.mu.Lock()
		inUse := p.used[recipe]
		p.mu.Unlock()
		if !inUse {
			return nil, fmt.Errorf("%s() comes with recipe %q: add use(%q) before this line", def.Name, recipe, recipe)
		}
		st := stateOf(th)
		ph := st.phase.public()
		if def.Phases&ph == 0 {
			return nil, fmt.Errorf("%s() can only be called %s", def.Name, def.Phases)
		}
		call := &tasks.BuiltinCall{
			Pos:   callerPos(th),
			Phase: ph,
			Vars:  p.vars,
			Ctx:   st.ctx,
			Task:  st.tc,
			Host:  st.hc,
			Stage: p.Stage(),
		}
		if call.Ctx == nil {
			call.Ctx = p.ctx
		}
		if ph == tasks.PhaseLoad || ph == tasks.PhaseStage {
			call.AddHostSource = func(src deploy.HostSource) { p.addHostSource(ph, src) }
		}
		var err error
		if call.Args, call.Extra, err = unpackBuiltinArgs(&def, args, kwargs); err != nil {
			return nil, err
		}
		result, err := callGo(&def, call)
		if err != nil {
			return nil, err
		}
		v, err := toStarlark(result)
		if err != nil {
			return nil, fmt.Errorf("result: %w", err)
		}
		return v, nil
	}
}

// callGo runs def.Call, turning a panic into an error at the calling line
// rather than a crash of the whole load.
func callGo(def *tasks.Builtin, call *tasks.BuiltinCall) (result any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s() panicked: %v", def.Name, r)
		}
	}()
	return def.Call(call)
}

func (p *Project) addHostSource(ph tasks.Phase, src deploy.HostSource) {
	if src == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ph == tasks.PhaseStage {
		p.stageSources = append(p.stageSources, src)
	} else {
		p.globalSources = append(p.globalSources, src)
	}
}

// unpackBuiltinArgs binds positional and keyword arguments to def's
// parameters, as Starlark binds a def's, and converts each to the Go form
// its Kind names. Keywords that name no parameter go to extra when def
// allows them.
func unpackBuiltinArgs(def *tasks.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (vals, extra map[string]any, err error) {
	if len(args) > len(def.Params) {
		if len(def.Params) == 0 {
			return nil, nil, fmt.Errorf("takes no positional arguments (%d given)", len(args))
		}
		return nil, nil, fmt.Errorf("takes at most %d positional arguments (%d given)", len(def.Params), len(args))
	}
	given := make(map[string]starlark.Value, len(args)+len(kwargs))
	for i, a := range args {
		given[def.Params[i].Name] = a
	}
	names := make([]string, len(def.Params))
	for i, prm := range def.Params {
		names[i] = prm.Name
	}
	for _, kv := range kwargs {
		k := string(kv[0].(starlark.String))
		if slices.Contains(names, k) {
			if _, dup := given[k]; dup {
				return nil, nil, fmt.Errorf("got multiple values for parameter %s", k)
			}
			given[k] = kv[1]
			continue
		}
		if !def.ExtraKeywords {
			return nil, nil, fmt.Errorf("unexpected keyword argument %s%s", k, tasks.DidYouMean(k, names))
		}
		if err := nearParam(k, names, "other keywords are passed to "+def.Name+"() as extra arguments"); err != nil {
			return nil, nil, err
		}
		gv, ok, err := toGo(kv[1])
		if err != nil {
			return nil, nil, fmt.Errorf("keyword %s: %w", k, err)
		}
		if !ok {
			return nil, nil, fmt.Errorf("keyword %s: a %s has no Go form", k, kv[1].Type())
		}
		if extra == nil {
			extra = map[string]any{}
		}
		extra[k] = gv
	}
	vals = make(map[string]any, len(given))
	for _, prm := range def.Params {
		v, ok := given[prm.Name]
		kind := prm.Kind
		if kind == "" {
			kind = tasks.KindAny
		}
		if ok && v == starlark.None && prm.Optional && kind != tasks.KindAny {
			ok = false // None leaves an optional parameter out
		}
		if !ok {
			if !prm.Optional {
				return nil, nil, fmt.Errorf("missing argument for %s", prm.Name)
			}
			continue
		}
		gv, err := convertArg(kind, v)
		if err != nil {
			return nil, nil, fmt.Errorf("argument %s: %w", prm.Name, err)
		}
		vals[prm.Name] = gv
	}
	return vals, extra, nil
}

// convertArg converts one argument to the Go form of kind.
func convertArg(kind tasks.Kind, v starlark.Value) (any, error) {
	wrong := func() error { return fmt.Errorf("want %s, got %s", kindWords(kind), v.Type()) }
	switch kind {
	case tasks.KindString:
		if s, ok := v.(starlark.String); ok {
			return string(s), nil
		}
		return nil, wrong()
	case tasks.KindInt:
		if _, ok := v.(starlark.Int); !ok {
			return nil, wrong()
		}
	case tasks.KindFloat:
		switch x := v.(type) {
		case starlark.Int:
			return float64(x.Float()), nil
		case starlark.Float:
			return float64(x), nil
		}
		return nil, wrong()
	case tasks.KindBool:
		if b, ok := v.(starlark.Bool); ok {
			return bool(b), nil
		}
		return nil, wrong()
	case tasks.KindList:
		switch v.(type) {
		case *starlark.List, starlark.Tuple:
		default:
			return nil, wrong()
		}
	case tasks.KindStrings:
		if s, ok := v.(starlark.String); ok {
			return []string{string(s)}, nil
		}
		var seq starlark.Indexable
		switch x := v.(type) {
		case *starlark.List:
			seq = x
		case starlark.Tuple:
			seq = x
		default:
			return nil, wrong()
		}
		out := make([]string, seq.Len())
		for i := range out {
			s, ok := seq.Index(i).(starlark.String)
			if !ok {
				return nil, fmt.Errorf("element %d is a %s; want a string", i, seq.Index(i).Type())
			}
			out[i] = string(s)
		}
		return out, nil
	case tasks.KindDict:
		if _, ok := v.(*starlark.Dict); !ok {
			return nil, wrong()
		}
	case tasks.KindHost:
		if h, ok := v.(*hostValue); ok {
			return h.h, nil
		}
		return nil, wrong()
	case tasks.KindDuration:
		if _, ok := starlark.AsFloat(v); !ok || v.Type() == "bool" {
			return nil, wrong()
		}
		return seconds("duration", v)
	}
	gv, ok, err := toGo(v)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("a %s (or a value inside it) has no Go form", v.Type())
	}
	return gv, nil
}

func kindWords(k tasks.Kind) string {
	switch k {
	case tasks.KindString:
		return "a string"
	case tasks.KindInt:
		return "an int"
	case tasks.KindFloat:
		return "a number"
	case tasks.KindBool:
		return "True or False"
	case tasks.KindList:
		return "a list"
	case tasks.KindStrings:
		return "a list of strings"
	case tasks.KindDict:
		return "a dict"
	case tasks.KindHost:
		return "a host"
	case tasks.KindDuration:
		return "seconds (a number)"
	}
	return "a value"
}

// nearParam refuses a free-form keyword one edit away from a parameter's
// name (role= for roles=): such a keyword is almost surely a typo, and
// taken as free-form it would be silently ignored. rest says what happens
// to other keywords.
func nearParam(keyword string, params []string, rest string) error {
	for _, prm := range params {
		if oneEdit(keyword, prm) {
			return fmt.Errorf("unknown keyword %s (did you mean %s?); %s", keyword, prm, rest)
		}
	}
	return nil
}

// oneEdit reports whether a and b differ by exactly one inserted, deleted
// or replaced rune.
func oneEdit(a, b string) bool {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > len(rb) {
		ra, rb = rb, ra
	}
	switch len(rb) - len(ra) {
	case 0:
		diff := 0
		for i := range ra {
			if ra[i] != rb[i] {
				diff++
			}
		}
		return diff == 1
	case 1:
		i := 0
		for i < len(ra) && ra[i] == rb[i] {
			i++
		}
		return string(ra[i:]) == string(rb[i+1:])
	}
	return false
}
