package capdeploy

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/davit-deploy/davit/deploy"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from what the hosts receive")

// recording is a backend that notes the exact shell line each command
// hands the host (what sshd receives; the local backend gives it to sh
// -c) before running it.
type recording struct {
	deploy.Backend
	mu    *sync.Mutex
	lines *[]string
}

func (r recording) Run(ctx context.Context, c *deploy.Command, stdout, stderr io.Writer) (*deploy.Result, error) {
	r.mu.Lock()
	*r.lines = append(*r.lines, "$ "+c.String()+"\n")
	r.mu.Unlock()
	if c.Stdin != nil {
		// A shell reading its commands from stdin (tasks.Shell): what it
		// reads is what the host receives.
		cc := *c
		cc.Stdin = stdinRecorder{c.Stdin, r}
		c = &cc
	}
	return r.Backend.Run(ctx, c, stdout, stderr)
}

type stdinRecorder struct {
	io.Reader
	r recording
}

func (s stdinRecorder) Read(p []byte) (int, error) {
	n, err := s.Reader.Read(p)
	if n > 0 {
		s.r.mu.Lock()
		*s.r.lines = append(*s.r.lines, string(p[:n]))
		s.r.mu.Unlock()
	}
	return n, err
}

func (r recording) Upload(ctx context.Context, rd io.Reader, remote string, mode fs.FileMode) error {
	r.mu.Lock()
	*r.lines = append(*r.lines, fmt.Sprintf("upload %s (mode %#o)\n", remote, mode.Perm()))
	r.mu.Unlock()
	return r.Backend.Upload(ctx, rd, remote, mode)
}

// normaliser replaces what varies between runs (temporary paths, release
// ids, commit shas, lock tokens, step markers, times, the pid and the
// control machine's name) by stable names, numbering ids and shas in the
// order they first appear.
type normaliser struct {
	fixed *strings.Replacer
	seen  map[string]string
	n     map[string]int
}

var (
	reMarker  = regexp.MustCompile(`@@davit-(step|end)-[0-9a-f]{16}-`)
	reToken   = regexp.MustCompile(`token=[0-9a-f]{16}`)
	reTime    = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
	rePid     = regexp.MustCompile(`pid=\d+`)
	reSHA     = regexp.MustCompile(`\b[0-9a-f]{40}\b`)
	reRelease = regexp.MustCompile(`\b\d{14}\b`)
)

func (n *normaliser) name(kind, v string) string {
	if s, ok := n.seen[v]; ok {
		return s
	}
	n.n[kind]++
	s := fmt.Sprintf("%s_%d", kind, n.n[kind])
	n.seen[v] = s
	return s
}

func (n *normaliser) line(l string) string {
	l = n.fixed.Replace(l)
	l = reMarker.ReplaceAllString(l, "@@davit-$1-MARK-")
	l = reToken.ReplaceAllString(l, "token=TOKEN")
	l = reTime.ReplaceAllString(l, "TIME")
	l = rePid.ReplaceAllString(l, "pid=PID")
	l = reSHA.ReplaceAllStringFunc(l, func(s string) string { return n.name("SHA", s) })
	return reRelease.ReplaceAllStringFunc(l, func(s string) string { return n.name("RELEASE", s) })
}

// TestLocalGoldenTranscripts records exactly what a host receives for a
// setup, a first deploy, a repeat deploy and a rollback (git strategy,
// linked dirs and files), and compares it with testdata/*.golden: the
// one place a reviewer reads every remote script as it runs. A change to
// a script, or to how commands are put together, fails here until the
// golden files are refreshed with
//
//	go test ./recipes/capdeploy -run Golden -update
func TestLocalGoldenTranscripts(t *testing.T) {
	e := newLocalEnv(t)
	var mu sync.Mutex
	var lines []string
	e.wrap = func(_ *deploy.Host, b deploy.Backend) deploy.Backend {
		return recording{Backend: b, mu: &mu, lines: &lines}
	}
	host, _ := os.Hostname()
	n := &normaliser{
		fixed: strings.NewReplacer(e.deployTo, "/DEPLOY_TO", e.repo, "/REPO", "control="+host, "control=CONTROL"),
		seen:  map[string]string{}, n: map[string]int{},
	}
	extra := `set("local_user", "deployer")
set("linked_dirs", ["log", "tmp/pids"])
set("linked_files", ["config/secrets.yml"])`
	e.write(0, "shared/config/secrets.yml", "secret: x\n")
	for _, step := range []struct{ name, task string }{
		{"setup", "deploy:setup"},
		{"first_deploy", "deploy"},
		{"repeat_deploy", "deploy"},
		{"rollback", "rollback"},
	} {
		if step.name == "repeat_deploy" {
			e.commit("Welcome to v2")
		}
		lines = nil
		if rec, err := e.run(extra, nil, nil, step.task); err != nil {
			t.Fatalf("%s: %v\n%s", step.name, err, rec.text())
		}
		mu.Lock()
		text := strings.Join(lines, "")
		mu.Unlock()
		var b strings.Builder
		for _, l := range strings.SplitAfter(text, "\n") {
			b.WriteString(n.line(l))
		}
		checkGolden(t, filepath.Join("testdata", step.name+".golden"), b.String())
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from what the host received (run with -update after reviewing the change):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
