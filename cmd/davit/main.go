// Command davit deploys applications to fleets of servers over SSH, or to
// this machine, from a Starlark Deployfile. It is the package cli with
// davit's own recipes; a team's own binary calls cli.Main with its Go
// recipes added (see examples/custom-binary).
package main

import (
	"os"

	"github.com/davit-deploy/davit/cmd/davit/cli"
)

func main() {
	os.Exit(cli.Main(os.Args, os.Stdin, os.Stdout, os.Stderr, cli.Options{}))
}
