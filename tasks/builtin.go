package tasks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/davit-deploy/davit/deploy"
)

// Phase is a set of the moments at which a Deployfile builtin may be
// called. The Deployfile loader refuses a call made at any other moment,
// naming where the builtin may be called.
type Phase uint8

const (
	// PhaseLoad is the top level of a Deployfile or of a file it loads.
	PhaseLoad Phase = 1 << iota
	// PhaseStage is a stage function, run when its stage is selected.
	PhaseStage
	// PhaseTask is a task body, or a function given to on() or
	// run_locally().
	PhaseTask
	// PhaseLazy is a lazy variable's function.
	PhaseLazy

	// PhaseAny is every phase.
	PhaseAny = PhaseLoad | PhaseStage | PhaseTask | PhaseLazy
)

// String says where a builtin of these phases may be called, in the words
// of an error message: "at the top level or in a stage function".
func (p Phase) String() string {
	var parts []string
	for _, x := range []struct {
		ph    Phase
		words string
	}{
		{PhaseLoad, "at the top level"},
		{PhaseStage, "in a stage function"},
		{PhaseTask, "inside a task"},
		{PhaseLazy, "in a lazy value"},
	} {
		if p&x.ph != 0 {
			parts = append(parts, x.words)
		}
	}
	switch len(parts) {
	case 0:
		return "nowhere"
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " or " + parts[len(parts)-1]
}

// Kind is the type a builtin's parameter accepts. The loader checks and
// converts each argument before Call runs, so Call finds Args[name] as the
// Go type listed here (or absent, for an optional parameter not given or
// given as None).
type Kind string

const (
	KindString   Kind = "string"   // string
	KindInt      Kind = "int"      // int
	KindFloat    Kind = "float"    // float64; an integer is accepted too
	KindBool     Kind = "bool"     // bool
	KindList     Kind = "list"     // []any of converted values (a list or tuple)
	KindStrings  Kind = "strings"  // []string: a list or tuple of strings, or one string
	KindDict     Kind = "dict"     // map[string]any (string keys)
	KindHost     Kind = "host"     // *deploy.Host
	KindDuration Kind = "duration" // time.Duration, given in seconds (int or float)
	KindAny      Kind = "any"      // any converted value: nil, bool, int, float64, string, []any, map[string]any, *deploy.Host
)

var kinds = []Kind{KindString, KindInt, KindFloat, KindBool, KindList, KindStrings, KindDict, KindHost, KindDuration, KindAny}

// Param is one parameter of a Builtin. Parameters can be given by position
// (in the order declared) or by keyword, as in Starlark.
type Param struct {
	Name string
	// Optional parameters may be left out; they must follow the required
	// ones.
	Optional bool
	// Kind is what the argument must be; "" means KindAny.
	Kind Kind
}

// Builtin is a Deployfile function written in Go, contributed by a recipe
// (see BuiltinProvider). The loader makes it callable once the Deployfile
// says use() of its recipe; it unpacks and type-checks the arguments,
// checks the phase, converts Call's result back for the Deployfile, and
// reports Call's error at the calling line.
type Builtin struct {
	// Name is what the Deployfile calls ("ec2_servers"). It may not be a
	// core builtin's name or another recipe's builtin's.
	Name string
	// Doc is one line saying what it does, for the documentation.
	Doc    string
	Params []Param
	// Phases is where it may be called.
	Phases Phase
	// ExtraKeywords accepts keyword arguments that name no parameter; they
	// arrive converted in BuiltinCall.Extra (like server()'s host
	// properties). Without it an unknown keyword is an error.
	ExtraKeywords bool
	// Call does the work. Its result must be nil (None) or a value of a
	// kind listed for KindAny, or []string, []*deploy.Host, map[string]string.
	Call func(*BuiltinCall) (any, error)
}

// Validate checks a declaration: a name, a Call, at least one phase,
// parameters with distinct names and known kinds, required ones first.
func (b *Builtin) Validate() error {
	if !isIdentifier(b.Name) {
		return fmt.Errorf("builtin %q: the name must be an identifier", b.Name)
	}
	if b.Call == nil {
		return fmt.Errorf("builtin %s: no Call function", b.Name)
	}
	if b.Phases&PhaseAny == 0 {
		return fmt.Errorf("builtin %s: no phase to call it in", b.Name)
	}
	seen := map[string]bool{}
	optional := false
	for _, p := range b.Params {
		switch {
		case !isIdentifier(p.Name):
			return fmt.Errorf("builtin %s: parameter %q: the name must be an identifier", b.Name, p.Name)
		case seen[p.Name]:
			return fmt.Errorf("builtin %s: parameter %s is declared twice", b.Name, p.Name)
		case p.Kind != "" && !slices.Contains(kinds, p.Kind):
			return fmt.Errorf("builtin %s: parameter %s: unknown kind %q%s", b.Name, p.Name, p.Kind, DidYouMean(string(p.Kind), kindNames()))
		case optional && !p.Optional:
			return fmt.Errorf("builtin %s: required parameter %s follows an optional one", b.Name, p.Name)
		}
		seen[p.Name] = true
		optional = optional || p.Optional
	}
	return nil
}

func kindNames() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = string(k)
	}
	return out
}

func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		letter := r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// BuiltinCall is one call of a Builtin, with its arguments converted to Go.
type BuiltinCall struct {
	// Args holds the arguments by parameter name, converted as the
	// parameter's Kind says. An optional parameter not given (or given as
	// None) is absent.
	Args map[string]any
	// Extra holds keyword arguments that name no parameter (only with
	// Builtin.ExtraKeywords), converted as for KindAny.
	Extra map[string]any
	// Pos is the calling line.
	Pos Position
	// Phase is the one phase the call is made in.
	Phase Phase
	// Vars is the project's variable store.
	Vars *Vars
	// Ctx is the running task's context in PhaseTask; otherwise the
	// context the Deployfile was loaded (or its stage selected) with.
	Ctx context.Context
	// Task is the running task; non-nil exactly in PhaseTask.
	Task *Context
	// Host is set inside a function given to on() or run_locally(): the
	// host that function runs on.
	Host *HostContext
	// Stage is the selected stage's name, "" before one is selected.
	Stage string
	// AddHostSource records a source of hosts: at the top level for every
	// stage, in a stage function for that stage. Recording never asks the
	// source for its hosts. Non-nil exactly in PhaseLoad and PhaseStage.
	AddHostSource func(deploy.HostSource)
}

// Has reports whether the argument name was given.
func (c *BuiltinCall) Has(name string) bool {
	_, ok := c.Args[name]
	return ok
}

// String returns a KindString argument, or "" when it was not given.
func (c *BuiltinCall) String(name string) string { s, _ := c.Args[name].(string); return s }

// Int returns a KindInt argument, or 0 when it was not given.
func (c *BuiltinCall) Int(name string) int { n, _ := c.Args[name].(int); return n }

// Bool returns a KindBool argument, or false when it was not given.
func (c *BuiltinCall) Bool(name string) bool { b, _ := c.Args[name].(bool); return b }

// Strings returns a KindStrings argument, or nil when it was not given.
func (c *BuiltinCall) Strings(name string) []string { s, _ := c.Args[name].([]string); return s }

// Dict returns a KindDict argument, or nil when it was not given.
func (c *BuiltinCall) Dict(name string) map[string]any {
	d, _ := c.Args[name].(map[string]any)
	return d
}

// Duration returns a KindDuration argument, or 0 when it was not given.
func (c *BuiltinCall) Duration(name string) time.Duration {
	d, _ := c.Args[name].(time.Duration)
	return d
}

// BuiltinProvider is implemented by a Recipe that contributes Deployfile
// builtins. The loader asks every recipe it knows for its builtins before
// the Deployfile runs, so that calling one without the recipe's use() is
// an error naming that use(); the builtins work once use() installed the
// recipe.
type BuiltinProvider interface {
	Builtins() []Builtin
}

// RecipeBuiltins returns rc's builtins (none unless it implements
// BuiltinProvider), each validated.
func RecipeBuiltins(rc Recipe) ([]Builtin, error) {
	bp, ok := rc.(BuiltinProvider)
	if !ok {
		return nil, nil
	}
	bs := bp.Builtins()
	var errs []error
	seen := map[string]bool{}
	for i := range bs {
		if err := bs[i].Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[bs[i].Name] {
			errs = append(errs, fmt.Errorf("builtin %s is declared twice", bs[i].Name))
		}
		seen[bs[i].Name] = true
	}
	return bs, errors.Join(errs...)
}
