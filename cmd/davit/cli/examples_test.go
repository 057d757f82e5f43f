package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Every example Deployfile loads, selects each of its stages and lists its
// tasks, so the examples in the README never rot.
func TestExamplesLoad(t *testing.T) {
	files := exampleDeployfiles(t)
	for _, f := range files {
		code, out := runDavit(t, "-f", f, "-T")
		if code != 0 {
			t.Errorf("%s: -T exit %d\n%s", f, code, out)
			continue
		}
		_, stages, _ := strings.Cut(out, "stages: ")
		stages, _, _ = strings.Cut(stages, "\n")
		for _, s := range strings.Split(strings.TrimSpace(stages), ", ") {
			if s == "" {
				continue
			}
			if code, out := runDavit(t, "-f", f, "-T", s); code != 0 {
				t.Errorf("%s: stage %s: exit %d\n%s", f, s, code, out)
			}
		}
	}
}

// The quickstart (the README's first command) deploys, deploys again,
// lists releases and rolls back on the local backend.
func TestQuickstart(t *testing.T) {
	deployTo := filepath.Join(t.TempDir(), "quickstart")
	df := "../../../examples/quickstart/Deployfile"
	logFile := filepath.Join(t.TempDir(), "davit.log")
	for _, task := range []string{"deploy", "deploy", "releases", "rollback"} {
		code, out := runDavit(t, "-f", df, "--format", "plain", "--log", logFile, "local", task, "deploy_to="+deployTo)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", task, code, out)
		}
		if task == "rollback" && !strings.Contains(out, "rolled back to release") {
			t.Errorf("rollback output:\n%s", out)
		}
	}
}

// exampleDeployfiles are the examples' Deployfiles for plain davit; an
// example with a main.go is a davit of its own, whose Deployfile needs that
// binary (TestCustomBinary runs it).
func exampleDeployfiles(t *testing.T) []string {
	t.Helper()
	all, err := filepath.Glob("../../../examples/*/Deployfile")
	if err != nil || len(all) == 0 {
		t.Fatalf("no example Deployfiles found: %v", err)
	}
	var out []string
	for _, f := range all {
		if _, err := os.Stat(filepath.Join(filepath.Dir(f), "main.go")); err != nil {
			out = append(out, f)
		}
	}
	return out
}

// examples/custom-binary builds into a davit of its own whose Go recipe's
// task a Deployfile uses; plain davit does not know that recipe.
func TestCustomBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mydavit")
	build := exec.Command("go", "build", "-o", bin, "./examples/custom-binary")
	build.Dir = "../../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	df := "../../../examples/custom-binary/Deployfile"
	logFile := filepath.Join(t.TempDir(), "davit.log")
	run := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"-f", df, "--format", "plain", "--log", logFile}, args...)...).CombinedOutput()
		return string(out), err
	}
	out, err := run("local", "greet:hello")
	if err != nil || !strings.Contains(out, "[localhost] Hello from a team's own davit on localhost") {
		t.Errorf("greet:hello: %v\n%s", err, out)
	}
	if out, err := run("-T"); err != nil || !strings.Contains(out, "davit greet:hello  # Say the greeting on every host") {
		t.Errorf("-T: %v\n%s", err, out)
	}
	if out, err := run("-V"); err != nil || !strings.HasPrefix(out, "davit 0.1.0-acme ") {
		t.Errorf("-V: %v\n%s", err, out)
	}
	if code, out := runDavit(t, "-f", df, "local", "greet:hello"); code != 2 || !strings.Contains(out, `unknown recipe "greet"`) {
		t.Errorf("plain davit: exit %d\n%s", code, out)
	}
}
