package tasks_test

import (
	"context"
	"fmt"

	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/tasks"
)

// printMessages is a sink that prints what tasks say, for the examples.
type printMessages struct{}

func (printMessages) Emit(e output.Event) {
	if e.Kind == output.Message {
		fmt.Println(e.Task + ": " + e.Line)
	}
}

// A task in Go, with a hook: the same DSL a Deployfile uses.
func ExampleRegistry_Define() {
	reg := tasks.NewRegistry()
	say := func(msg string) func(*tasks.Context) error {
		return func(c *tasks.Context) error { c.Info(msg); return nil }
	}
	reg.Define(&tasks.Task{Name: "app:restart", Desc: "Restart the app", Run: say("restarting")})
	reg.Define(&tasks.Task{Name: "notify", Run: say("telling the team")})
	reg.After("app:restart", "notify", tasks.Position{})

	ex := &tasks.Executor{Registry: reg, Sink: printMessages{}}
	if err := ex.Invoke(context.Background(), "app:restart"); err != nil {
		fmt.Println(err)
	}
	// Output:
	// app:restart: restarting
	// notify: telling the team
}

// stamp is a recipe: a variable's default and a task that reads it.
type stamp struct{}

func (stamp) SetDefaults(v *tasks.Vars) { v.SetDefault("stamp_label", "build 42", tasks.Position{}) }
func (stamp) DefineTasks(r *tasks.Registry) error {
	return r.Define(&tasks.Task{Name: "stamp:show", Desc: "Show the stamp", Run: func(c *tasks.Context) error {
		label, err := c.Executor.Vars.FetchString("stamp_label")
		if err != nil {
			return err
		}
		c.Info(label)
		return nil
	}})
}
func (stamp) RegisterHooks(*tasks.Registry) error { return nil }

// A recipe written in Go, installed as use("stamp") would install it; a
// value the Deployfile sets wins over the recipe's default.
func ExampleUseRecipe() {
	reg, vars := tasks.NewRegistry(), tasks.NewVars()
	vars.Set("stamp_label", "build 43", tasks.Position{File: "Deployfile", Line: 2})
	if err := tasks.UseRecipe(stamp{}, reg, vars); err != nil {
		fmt.Println(err)
	}
	ex := &tasks.Executor{Registry: reg, Vars: vars, Sink: printMessages{}}
	if err := ex.Invoke(context.Background(), "stamp:show"); err != nil {
		fmt.Println(err)
	}
	// Output:
	// stamp:show: build 43
}
