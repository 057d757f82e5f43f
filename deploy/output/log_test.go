package output

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log", "nested", "davit.log")
	l, err := NewLog(path, "davit", "production", "deploy", "branch=it's")
	if err != nil {
		t.Fatal(err)
	}
	if l.Path() != path {
		t.Errorf("Path() = %q", l.Path())
	}
	emitAll(l, script())
	l.Emit(Event{Time: at(30), Kind: CommandEnd, Task: "t", Host: "h", ID: 9, Command: "sleep 9",
		ExitStatus: status(-1), Duration: 5 * time.Second, Error: "command timed out after 5s"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l.Emit(Event{Kind: Message, Line: "after close"}) // dropped, no panic
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	header := regexp.MustCompile(`^=== run \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z pid \d+: davit production deploy 'branch=it'\\''s'$`)
	if !header.MatchString(lines[0]) {
		t.Errorf("header = %q", lines[0])
	}
	checkOutput(t, strings.Join(lines[1:], "\n")+"\n", `2026-11-29T02:23:00.000000Z [deploy:check] task started
2026-11-29T02:23:00.001000Z [deploy:check] web1 #1 $ mkdir -p /x
2026-11-29T02:23:00.002000Z [deploy:check] web22 #2 $ test -d /y
2026-11-29T02:23:00.003000Z [deploy:check] web1 #1 1> created /x
2026-11-29T02:23:00.004000Z [deploy:check] web22 #2 2> no such directory
2026-11-29T02:23:00.005000Z [deploy:check] web22 #2 1> 
2026-11-29T02:23:00.013000Z [deploy:check] web1 #1 exit 0 in 12ms: mkdir -p /x
2026-11-29T02:23:00.014000Z [deploy:check] web22 #2 exit 1 in 3ms: test -d /y
2026-11-29T02:23:00.020000Z [deploy:check] web1 warn: disk almost full
2026-11-29T02:23:00.021000Z [deploy:check] info: two\nlines
2026-11-29T02:23:01.500000Z [deploy:check] task failed after 1.5s: web22: exit 1
2026-11-29T02:23:00.030000Z [t] h #9 exit -1 in 5s error command timed out after 5s: sleep 9
`)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log mode = %v, %v; want 0600", fi.Mode(), err)
	}

	// A second run appends under its own header.
	l2, err := NewLog(path, "davit", "rollback")
	if err != nil {
		t.Fatal(err)
	}
	l2.Emit(Event{Time: at(0), Kind: TaskStart, Task: "deploy:rollback"})
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	all := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(all) != len(lines)+2 || !strings.HasPrefix(all[len(lines)], "=== run ") ||
		!strings.HasSuffix(all[len(lines)], ": davit rollback") {
		t.Errorf("second run not appended:\n%s", data)
	}
}

func TestLogErrors(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o600)
	if _, err := NewLog(filepath.Join(blocker, "sub", "x.log")); err == nil {
		t.Error("NewLog under a regular file succeeded")
	}
	if _, err := NewLog(dir); err == nil {
		t.Error("NewLog on a directory succeeded")
	}
}

// TestLogRedacted is the property users rely on: a secret never reaches
// the run log, in commands, output or errors.
func TestLogRedacted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.log")
	l, err := NewLog(path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	secrets := []string{"hunter2"}
	sink := NewRedactor(Multi(l), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return secrets
	})
	sink.Emit(Event{Kind: CommandStart, Host: "h", ID: 1, Command: "echo hunter2 | passwd"})
	sink.Emit(Event{Kind: Output, Host: "h", ID: 1, Line: "hunter2hunter2"})
	// A password asked for mid-run.
	mu.Lock()
	secrets = append(secrets, "s3cr3t pass")
	mu.Unlock()
	sink.Emit(Event{Kind: CommandEnd, Host: "h", ID: 1, ExitStatus: status(1), Error: "bad password s3cr3t pass", Command: "echo hunter2 | passwd"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	for _, s := range []string{"hunter2", "s3cr3t"} {
		if strings.Contains(string(data), s) {
			t.Errorf("log holds secret %q:\n%s", s, data)
		}
	}
	if n := strings.Count(string(data), Redacted); n != 5 {
		t.Errorf("%d redactions, want 5:\n%s", n, data)
	}
}

func TestLogConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.log")
	l, err := NewLog(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				l.Emit(Event{Kind: Output, Host: fmt.Sprint("h", g), ID: uint64(i + 1), Line: "x"})
			}
		})
	}
	wg.Wait()
	l.Close()
	data, _ := os.ReadFile(path)
	if n := strings.Count(string(data), " 1> x\n"); n != 800 {
		t.Errorf("%d output lines, want 800", n)
	}
}
