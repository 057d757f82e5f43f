package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// Every example Deployfile loads, selects each of its stages and lists its
// tasks, so the examples in the README never rot.
func TestExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("../../examples/*/Deployfile")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example Deployfiles found: %v", err)
	}
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
	df := "../../examples/quickstart/Deployfile"
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
