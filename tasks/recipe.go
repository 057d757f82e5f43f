package tasks

import (
	"fmt"
	"strings"
)

// Recipe is a reusable set of tasks written in Go (Capistrano's plugin). A
// Deployfile brings one in with use("NAME"); its tasks then behave exactly
// like tasks the Deployfile defines: listed by -T, hookable with
// before/after, replaceable by a later task() of the same name. A recipe
// that also implements BuiltinProvider adds Deployfile builtins, callable
// once its use() has run.
type Recipe interface {
	// SetDefaults gives the recipe's variables their defaults with
	// Vars.SetDefault, so values the Deployfile set already, or sets
	// later, win.
	SetDefaults(v *Vars)
	// DefineTasks adds the recipe's tasks.
	DefineTasks(r *Registry) error
	// RegisterHooks wires the recipe's tasks into each other's flow.
	RegisterHooks(r *Registry) error
}

// UseRecipe installs a recipe into a registry and variables.
func UseRecipe(rc Recipe, r *Registry, v *Vars) error {
	rc.SetDefaults(v)
	if err := rc.DefineTasks(r); err != nil {
		return err
	}
	return rc.RegisterHooks(r)
}

// VarsChecker is a recipe that can validate its variables before anything
// runs: types, ranges and forms, every problem at once, so a mistake
// (keep_releases="three") is refused at the start of a run rather than
// found by the step that reads it, perhaps after the fleet switched. A run
// calls CheckVars once its stage is selected, with the command line's
// overrides in place (their values are strings, "3": a checker accepts
// what the recipe's own reads accept).
type VarsChecker interface {
	CheckVars(v *Vars) error
}

// VarsError is every problem a recipe's CheckVars found, each naming the
// variable, where its value was set and what is wrong with it; the run
// shows them together and exits 2 before any command.
type VarsError struct {
	Recipe   string // "deploy", as use() names it
	Problems []string
}

// Problem words what is wrong with the variable name for a VarsError:
// err's text, starting with the name once (the readers' errors often
// start with it already), and ending with where the value came from, the
// command line or the Deployfile's line; nothing for a value set at
// defaults, the recipe's own defaults' position file.
func (v *Vars) Problem(name string, err error, defaults string) string {
	msg := strings.TrimPrefix(err.Error(), "variable ")
	if !strings.HasPrefix(msg, name) {
		msg = name + ": " + msg
	}
	if at := v.SetAt(name, defaults); at != "" {
		msg += " (" + at + ")"
	}
	return msg
}

// SetAt says where name's value came from: "given on the command line",
// "set at Deployfile:LINE:COL", or "" for a value set at defaults (a
// recipe's own defaults' position file) or nowhere.
func (v *Vars) SetAt(name, defaults string) string {
	if v.Overridden(name) {
		return "given on the command line"
	}
	if p := v.Pos(name); p.IsValid() && p.File != defaults {
		return "set at " + p.String()
	}
	return ""
}

func (e *VarsError) Error() string {
	word := "problems"
	if len(e.Problems) == 1 {
		word = "problem"
	}
	return fmt.Sprintf("the %s recipe's variables: %d %s (nothing was run):\n  - %s",
		e.Recipe, len(e.Problems), word, strings.Join(e.Problems, "\n  - "))
}
