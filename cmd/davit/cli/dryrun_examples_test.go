package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Every example's main tasks run under --dry-run, on each of its stages:
// exit 0, and nothing changes anywhere (deploy_to, the example's own
// directory, the temporary directory where the copy strategy would build
// its archive). Captured output is a placeholder then, which nothing may
// read back as real data (a path to archive, an answer of git ls-remote,
// the releases to roll back to).
func TestDryRunExamples(t *testing.T) {
	exampleCloud(t)
	files := exampleDeployfiles(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	logFile := filepath.Join(t.TempDir(), "davit.log")
	for _, f := range files {
		stages := exampleStages(t, f)
		if len(stages) == 0 {
			stages = []string{""}
		}
		before := snapshot(t, filepath.Dir(f))
		for _, stage := range stages {
			for _, task := range []string{"deploy", "rollback", "deploy:setup", "deploy:check"} {
				deployTo := filepath.Join(t.TempDir(), "app")
				args := []string{"-f", f, "--dry-run", "--format", "plain", "--log", logFile}
				if stage != "" {
					args = append(args, stage)
				}
				code, out := runDavit(t, append(args, task, "deploy_to="+deployTo)...)
				what := f + " " + stage + " " + task
				if code != 0 {
					t.Errorf("%s: exit %d\n%s", what, code, out)
					continue
				}
				if _, err := os.Stat(deployTo); err == nil {
					t.Errorf("%s: the dry run made deploy_to %s", what, deployTo)
				}
				// "would run: " or, for a command fed a secret on
				// stdin (svn's password), "would run (with stdin): ".
				if !strings.Contains(out, "would run: ") && !strings.Contains(out, "would run (with stdin): ") {
					t.Errorf("%s: reported no command:\n%s", what, out)
				}
				switch task {
				case "deploy":
					wantOnce(t, what, out, "dry run: would deploy release ")
					wantEachHostOnce(t, what, out, "ok (0s): switch current to ")
				case "rollback":
					wantOnce(t, what, out, "dry run: would roll back to release <previous release>")
					wantEachHostOnce(t, what, out, "ok (0s): switch current to <previous release>")
				}
			}
		}
		if after := snapshot(t, filepath.Dir(f)); after != before {
			t.Errorf("%s: the dry runs changed the example's directory:\nbefore:\n%s\nafter:\n%s", f, before, after)
		}
	}
	if ents, err := os.ReadDir(tmp); err != nil || len(ents) > 0 {
		t.Errorf("the dry runs left %d entries in TMPDIR (%v)", len(ents), err)
	}
}

// exampleStages lists a Deployfile's stages, as -T prints them.
func exampleStages(t *testing.T, f string) []string {
	t.Helper()
	code, out := runDavit(t, "-f", f, "-T")
	if code != 0 {
		t.Fatalf("%s: -T exit %d\n%s", f, code, out)
	}
	_, stages, _ := strings.Cut(out, "stages: ")
	stages, _, _ = strings.Cut(stages, "\n")
	var names []string
	for _, s := range strings.Split(strings.TrimSpace(stages), ", ") {
		if s != "" {
			names = append(names, s)
		}
	}
	return names
}

// snapshot describes every file under dir: path, size, mode and time.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b.WriteString(p + " " + info.Mode().String() + " " + info.ModTime().String())
		if !d.IsDir() {
			b.WriteString(" " + strconv.FormatInt(info.Size(), 10))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// wantOnce requires s exactly once in out.
func wantOnce(t *testing.T, what, out, s string) {
	t.Helper()
	if n := strings.Count(out, s); n != 1 {
		t.Errorf("%s: %q appears %d times, want once:\n%s", what, s, n, out)
	}
}

// wantEachHostOnce requires every host that reports a command to report
// s exactly once: each host's commands are printed once.
func wantEachHostOnce(t *testing.T, what, out, s string) {
	t.Helper()
	counts := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		host, rest, ok := strings.Cut(line, "] ")
		if !ok || !strings.HasPrefix(host, "[") {
			continue
		}
		if _, seen := counts[host]; !seen {
			counts[host] = 0
		}
		if strings.HasPrefix(rest, s) {
			counts[host]++
		}
	}
	if len(counts) == 0 {
		t.Errorf("%s: no host reported anything:\n%s", what, out)
	}
	for host, n := range counts {
		if n != 1 {
			t.Errorf("%s: %s] reports %q %d times, want once:\n%s", what, host, s, n, out)
		}
	}
}
