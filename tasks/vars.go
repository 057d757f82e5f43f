package tasks

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Lazy is a variable value computed on first Fetch. Set, SetDefault and
// SetLazy treat a Lazy (or a plain func() (any, error)) as such a value.
type Lazy func() (any, error)

// LazyChain is a lazy value told which fetch computes it: chain lists the
// lazy variables being computed by that fetch, outermost first, ending with
// this variable's own name. A LazyChain that reads other variables passes
// chain to FetchChain, so that a cycle — even one that runs through other
// goroutines' fetches — is a *CycleError rather than a deadlock. The chain
// travels with the fetch, so concurrent fetches never see each other's.
type LazyChain func(chain []string) (any, error)

// Vars is the project's variable store (Capistrano's set/fetch). Values come
// from three places, in increasing precedence: defaults (SetDefault, e.g. a
// recipe's), values (Set, e.g. the Deployfile's), and command-line overrides
// (Override), which win so that `davit production deploy branch=hotfix`
// works whatever the Deployfile says. It is safe for concurrent use: hosts
// fetch variables from their own goroutines.
//
// A lazy value is computed once, under a sync.Once, the first time it is
// fetched; concurrent fetches wait for and share that one result, including
// its error. A Lazy that fetches its own variable (directly or through
// others) with Fetch deadlocks, as any recursive sync.Once does; a
// LazyChain that reads variables with FetchChain gets a *CycleError
// instead. The Deployfile loader makes every Starlark lazy value a
// LazyChain.
type Vars struct {
	mu        sync.RWMutex
	vals      map[string]*variable
	overrides map[string]string
	secret    map[string]bool
	// secretValues are secrets with no variable of their own, such as a
	// value read from a secret-looking environment variable.
	secretValues map[string]bool
	waits        waitGraph
}

type variable struct {
	value any
	lazy  *lazyValue
	pos   Position
}

type lazyValue struct {
	once sync.Once
	fn   LazyChain
	done atomic.Bool // set after fn returned, so SecretValues can peek without forcing
	val  any
	err  error
}

// get computes the value once; chain is the fetch chain of whichever fetch
// gets there first, ending with this variable.
func (l *lazyValue) get(chain []string) (any, error) {
	l.once.Do(func() {
		l.val, l.err = l.fn(chain)
		l.done.Store(true)
	})
	return l.val, l.err
}

// NewVars returns an empty variable store.
func NewVars() *Vars {
	return &Vars{vals: map[string]*variable{}, overrides: map[string]string{}, secret: map[string]bool{},
		secretValues: map[string]bool{}}
}

func newVariable(value any, pos Position) *variable {
	var fn LazyChain
	switch f := value.(type) {
	case Lazy:
		fn = func([]string) (any, error) { return f() }
	case func() (any, error):
		fn = func([]string) (any, error) { return f() }
	case LazyChain:
		fn = f
	case func([]string) (any, error):
		fn = f
	default:
		return &variable{value: value, pos: pos}
	}
	return &variable{lazy: &lazyValue{fn: fn}, pos: pos}
}

// Set gives name a value, replacing any earlier value or default. A Lazy
// or LazyChain value is computed on first Fetch. pos records where it was set.
func (v *Vars) Set(name string, value any, pos Position) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.vals[name] = newVariable(value, pos)
}

// SetDefault sets name only if it has no value yet, so recipes can offer
// defaults that a Deployfile's set() replaces whatever the load order.
func (v *Vars) SetDefault(name string, value any, pos Position) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.vals[name]; !ok {
		v.vals[name] = newVariable(value, pos)
	}
}

// SetLazy sets name to a value computed by fn on first Fetch.
func (v *Vars) SetLazy(name string, fn func() (any, error)) {
	v.Set(name, Lazy(fn), Position{})
}

// Override sets name from the command line (KEY=VALUE). An override wins
// over every Set, earlier or later. Values stay strings: the command line
// cannot say whether "3" is a number, so readers that want numbers or
// booleans use FetchInt and FetchBool, which accept both forms.
func (v *Vars) Override(name, value string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.overrides[name] = value
}

// Overridden reports whether name was set on the command line.
func (v *Vars) Overridden(name string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	_, ok := v.overrides[name]
	return ok
}

// Has reports whether name has a value (possibly not yet computed).
func (v *Vars) Has(name string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	_, ok := v.overrides[name]
	if !ok {
		_, ok = v.vals[name]
	}
	return ok
}

// Names returns every variable name, sorted.
func (v *Vars) Names() []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	names := slices.Collect(maps.Keys(v.vals))
	for k := range v.overrides {
		if _, ok := v.vals[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names
}

// Pos returns where name was set, if known.
func (v *Vars) Pos(name string) Position {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if e, ok := v.vals[name]; ok {
		return e.pos
	}
	return Position{}
}

// UnknownVariableError is returned by Fetch for a name with no value.
type UnknownVariableError struct {
	Name string
	// Suggestion is the closest known name, or "".
	Suggestion string
}

func (e *UnknownVariableError) Error() string {
	msg := fmt.Sprintf("unknown variable %q", e.Name)
	if e.Suggestion != "" {
		msg += " (did you mean " + e.Suggestion + "?)"
	}
	return msg
}

// lookup returns (override, true) or the variable entry; both zero when
// name is unknown. The lock is not held while a lazy value computes, so a
// lazy function may fetch other variables.
func (v *Vars) lookup(name string) (override string, isOverride bool, e *variable) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if o, ok := v.overrides[name]; ok {
		return o, true, nil
	}
	return "", false, v.vals[name]
}

// CycleError is a lazy value that needs itself: Chain runs from the
// variable whose fetch was refused back to it (a, b, a).
type CycleError struct {
	Chain []string
}

func (e *CycleError) Error() string {
	return "variable cycle: " + strings.Join(e.Chain, " -> ")
}

// Fetch returns name's value, computing a lazy value on first use. An
// unknown name's error suggests the closest known one.
func (v *Vars) Fetch(name string) (any, error) { return v.FetchChain(nil, name) }

// FetchChain is Fetch made from inside a lazy value's computation: chain is
// what that LazyChain was given (nil outside any lazy value). Fetching a
// variable that is in chain, or whose computation on another goroutine is
// itself waiting for this one, is a *CycleError; a lazy value computed by
// this fetch is given chain plus name.
func (v *Vars) FetchChain(chain []string, name string) (any, error) {
	o, isOverride, e := v.lookup(name)
	switch {
	case isOverride:
		return o, nil
	case e == nil:
		return nil, &UnknownVariableError{Name: name, Suggestion: Suggest(name, v.Names())}
	case e.lazy != nil:
		if len(chain) > 0 && !e.lazy.done.Load() {
			if i := slices.Index(chain, name); i >= 0 {
				return nil, &CycleError{Chain: append(slices.Clone(chain[i:]), name)}
			}
			from := chain[len(chain)-1]
			if err := v.waits.enter(from, name); err != nil {
				return nil, err
			}
			defer v.waits.leave(from, name)
		}
		val, err := e.lazy.get(append(slices.Clone(chain), name))
		if err != nil {
			if e.pos.IsValid() {
				return nil, fmt.Errorf("variable %s (set at %s): %w", name, e.pos, err)
			}
			return nil, fmt.Errorf("variable %s: %w", name, err)
		}
		return val, nil
	}
	return e.value, nil
}

// FetchOr returns name's value, or def when name has none. Errors of lazy
// values are still returned.
func (v *Vars) FetchOr(name string, def any) (any, error) {
	if !v.Has(name) {
		return def, nil
	}
	return v.Fetch(name)
}

// FetchString returns name's value as a string. Strings and numbers are
// accepted; anything else is an error naming the type.
func (v *Vars) FetchString(name string) (string, error) {
	val, err := v.Fetch(name)
	if err != nil {
		return "", err
	}
	switch x := val.(type) {
	case string:
		return x, nil
	case int, int64, float64, bool:
		return fmt.Sprint(x), nil
	case fmt.Stringer:
		return x.String(), nil
	}
	return "", fmt.Errorf("variable %s: want a string, have %T", name, val)
}

// FetchInt returns name's value as an int; a string such as an override
// "5" is parsed.
func (v *Vars) FetchInt(name string) (int, error) {
	val, err := v.Fetch(name)
	if err != nil {
		return 0, err
	}
	switch x := val.(type) {
	case int:
		return x, nil
	case int64:
		return int(x), nil
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("variable %s: want an integer, have %q", name, x)
		}
		return n, nil
	}
	return 0, fmt.Errorf("variable %s: want an integer, have %T", name, val)
}

// Duration reads a duration given as seconds (a number, or a string of
// one, as a command-line override is) or as a Go duration string ("90s",
// "5m"); nil and "" are 0. It is the one reading of durations for every
// recipe, whether the value comes from a variable or a builtin's argument.
func Duration(val any) (time.Duration, error) {
	switch x := val.(type) {
	case nil:
		return 0, nil
	case int:
		return time.Duration(x) * time.Second, nil
	case int64:
		return time.Duration(x) * time.Second, nil
	case float64:
		return time.Duration(x * float64(time.Second)), nil
	case string:
		x = strings.TrimSpace(x)
		if x == "" {
			return 0, nil
		}
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return time.Duration(f * float64(time.Second)), nil
		}
		d, err := time.ParseDuration(x)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration (want \"5m\", \"90s\" or a number of seconds)", x)
		}
		return d, nil
	}
	return 0, fmt.Errorf("want a duration (\"5m\" or seconds), not %T", val)
}

// FetchDuration returns name's value as a duration (see Duration); unset
// to nil or "" is 0.
func (v *Vars) FetchDuration(name string) (time.Duration, error) {
	val, err := v.Fetch(name)
	if err != nil {
		return 0, err
	}
	d, err := Duration(val)
	if err != nil {
		if s, ok := val.(string); ok {
			return 0, fmt.Errorf("%s %q: want seconds or a duration like 90s", name, strings.TrimSpace(s))
		}
		return 0, fmt.Errorf("%s is %T; want seconds or a duration like 90s", name, val)
	}
	return d, nil
}

// FetchBool returns name's value as a bool; strings such as "true", "1",
// "no" are parsed (strconv.ParseBool plus yes/no).
func (v *Vars) FetchBool(name string) (bool, error) {
	val, err := v.Fetch(name)
	if err != nil {
		return false, err
	}
	switch x := val.(type) {
	case bool:
		return x, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "yes", "y", "on":
			return true, nil
		case "no", "n", "off", "":
			return false, nil
		}
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		if err != nil {
			return false, fmt.Errorf("variable %s: want true or false, have %q", name, x)
		}
		return b, nil
	}
	return false, fmt.Errorf("variable %s: want true or false, have %T", name, val)
}

// FetchStrings returns name's value as a list of strings: a []string, a
// list whose elements are all strings, or a single string (an override
// "a,b" is split on commas).
func (v *Vars) FetchStrings(name string) ([]string, error) {
	val, err := v.Fetch(name)
	if err != nil {
		return nil, err
	}
	switch x := val.(type) {
	case nil:
		return nil, nil
	case []string:
		return slices.Clone(x), nil
	case string:
		var out []string
		for _, s := range strings.Split(x, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out, nil
	case []any:
		out := make([]string, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("variable %s: element %d is %T, want a string", name, i, e)
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("variable %s: want a list of strings, have %T", name, val)
}

// MarkSecret makes name's value secret: the output redacts it wherever it
// appears.
func (v *Vars) MarkSecret(name string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.secret[name] = true
}

// IsSecret reports whether name is secret: marked so, or named like a
// secret (containing "password", "token" or "secret", in any case), because
// forgetting to mark a password must not print it.
func (v *Vars) IsSecret(name string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.isSecretLocked(name)
}

func (v *Vars) isSecretLocked(name string) bool {
	return v.secret[name] || LooksSecret(name)
}

// LooksSecret reports whether a name (of a variable, or of an environment
// variable a Deployfile reads) says its value is a secret: it contains
// "password", "token" or "secret", in any case.
func LooksSecret(name string) bool {
	l := strings.ToLower(name)
	return strings.Contains(l, "password") || strings.Contains(l, "token") || strings.Contains(l, "secret")
}

// AddSecretValue makes value secret though no variable holds it (a value
// read from the environment, say): SecretValues includes it from now on.
func (v *Vars) AddSecretValue(value string) {
	if value == "" {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.secretValues[value] = true
}

// SecretValues returns the string forms of every secret value known so far,
// sorted, for the output's redactor. Lazy values not yet computed are
// skipped rather than forced: computing one may run commands or prompt, and
// a value never computed has never been printed. Call it again after a
// value is computed (or Set) to pick it up. Empty strings are left out.
func (v *Vars) SecretValues() []string {
	v.mu.RLock()
	var vals []any
	for name, e := range v.vals {
		if _, over := v.overrides[name]; over || !v.isSecretLocked(name) {
			continue
		}
		if e.lazy != nil {
			if !e.lazy.done.Load() || e.lazy.err != nil {
				continue
			}
			vals = append(vals, e.lazy.val)
			continue
		}
		vals = append(vals, e.value)
	}
	for name, o := range v.overrides {
		if v.isSecretLocked(name) {
			vals = append(vals, o)
		}
	}
	for s := range v.secretValues {
		vals = append(vals, s)
	}
	v.mu.RUnlock()
	seen := map[string]bool{}
	for _, val := range vals {
		for _, s := range secretStrings(val) {
			if s != "" {
				seen[s] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// secretStrings renders a value the way it could appear in output: a
// string as itself, a list element by element, a map value by value.
func secretStrings(val any) []string {
	switch x := val.(type) {
	case nil:
		return nil
	case string:
		return []string{x}
	case []string:
		return x
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, secretStrings(e)...)
		}
		return out
	case map[string]any:
		var out []string
		for _, e := range x {
			out = append(out, secretStrings(e)...)
		}
		return out
	case map[string]string:
		return slices.Collect(maps.Values(x))
	}
	return []string{fmt.Sprint(val)}
}

// waitGraph records which lazy values each lazy value being computed is
// fetching right now (whether it computes them itself or waits for another
// goroutine that does). A fetch that would close a loop in this graph would
// wait for itself, so FetchChain refuses it. One mutex makes the check and
// the record a single step, so of two goroutines closing a loop at the same
// moment, the second always sees the first's edge.
type waitGraph struct {
	mu    sync.Mutex
	edges map[string]map[string]int // computing variable -> fetched variable -> fetches in flight
}

// enter records that from's computation fetches to, unless to's
// computation is (transitively) waiting for from.
func (g *waitGraph) enter(from, to string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if path := g.pathLocked(to, from); path != nil {
		return &CycleError{Chain: append([]string{from}, path...)}
	}
	if g.edges == nil {
		g.edges = map[string]map[string]int{}
	}
	if g.edges[from] == nil {
		g.edges[from] = map[string]int{}
	}
	g.edges[from][to]++
	return nil
}

func (g *waitGraph) leave(from, to string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.edges[from][to]--; g.edges[from][to] <= 0 {
		delete(g.edges[from], to)
		if len(g.edges[from]) == 0 {
			delete(g.edges, from)
		}
	}
}

// pathLocked returns a path of edges from start to goal (both included),
// or nil. The graph holds only fetches in flight, so it stays small.
func (g *waitGraph) pathLocked(start, goal string) []string {
	prev := map[string]string{start: start}
	queue := []string{start}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if n == goal {
			var path []string
			for ; n != start; n = prev[n] {
				path = append(path, n)
			}
			path = append(path, start)
			slices.Reverse(path)
			return path
		}
		for _, next := range slices.Sorted(maps.Keys(g.edges[n])) {
			if _, seen := prev[next]; !seen {
				prev[next] = n
				queue = append(queue, next)
			}
		}
	}
	return nil
}
