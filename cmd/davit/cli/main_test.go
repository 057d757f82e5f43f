package cli

import (
	"io"
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets testscript run `davit` in scripts as this test binary, so the
// end-to-end tests exercise the real CLI, exit codes included.
func TestMain(m *testing.M) {
	// Tests that need a real process (signals) run this binary as davit.
	if os.Getenv("DAVIT_TEST_AS_MAIN") == "1" {
		os.Exit(runCLI(os.Args, os.Stdin, os.Stdout, os.Stderr))
	}
	testscript.Main(m, map[string]func(){
		"davit": func() { os.Exit(runCLI(os.Args, os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// runCLI is davit's own command line, as cmd/davit runs it.
func runCLI(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	return Main(args, stdin, stdout, stderr, Options{})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			// Scripts must not depend on the developer's colours or ssh setup.
			env.Setenv("NO_COLOR", "1")
			env.Setenv("HOME", env.WorkDir)
			return nil
		},
	})
}
