// Command davit deploys applications to fleets of servers over SSH, or to
// this machine, from a Starlark Deployfile.
package main

import (
	"os"
)

func main() {
	os.Exit(runCLI(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
