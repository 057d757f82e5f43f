// Command custom-binary is a davit of a team's own: davit's command line
// with a Go recipe of the team's compiled in. A Deployfile then says
// use("greet") and gets its task, as it gets the deploy recipe's with
// use("deploy").
//
//	go build -o mydavit ./examples/custom-binary
//	./mydavit -f examples/custom-binary/Deployfile local greet:hello
package main

import (
	"os"
	"strings"

	"github.com/davit-deploy/davit/cmd/davit/cli"
	"github.com/davit-deploy/davit/tasks"
)

func main() {
	os.Exit(cli.Main(os.Args, os.Stdin, os.Stdout, os.Stderr, cli.Options{
		Recipes: map[string]func() tasks.Recipe{"greet": newGreet},
		Version: "0.1.0-acme",
	}))
}

// greet is the team's recipe: one variable with a default and one task
// that runs a command on every host of the stage.
type greet struct{}

func newGreet() tasks.Recipe { return greet{} }

func (greet) SetDefaults(v *tasks.Vars) {
	v.SetDefault("greeting", "hello from Go", tasks.Position{File: "examples/custom-binary"})
}

func (greet) DefineTasks(r *tasks.Registry) error {
	return r.Define(&tasks.Task{
		Name: "greet:hello",
		Desc: "Say the greeting on every host (a task written in Go)",
		Pos:  tasks.Position{File: "examples/custom-binary"},
		Run: func(c *tasks.Context) error {
			greeting, err := c.Executor.Vars.FetchString("greeting")
			if err != nil {
				return err
			}
			return c.On(c.Roles("all"), nil, func(h *tasks.HostContext) error {
				return h.Execute([]string{"echo", strings.ToUpper(greeting[:1]) + greeting[1:], "on", h.Host.Name}, tasks.CommandOptions{})
			})
		},
	})
}

// RegisterHooks wires nothing: a Deployfile hooks greet:hello where it
// wants it, e.g. after("deploy:published", "greet:hello").
func (greet) RegisterHooks(*tasks.Registry) error { return nil }
