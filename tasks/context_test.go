package tasks

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/deploy/runner"
)

// runTask defines a task with body fn and invokes it.
func runTask(t *testing.T, ex *Executor, fn func(*Context) error) error {
	t.Helper()
	name := "t" + strings.ReplaceAll(t.Name(), "/", "_")
	must(t, ex.Registry.Define(&Task{Name: name, Run: fn}))
	return ex.Invoke(context.Background(), name)
}

// concurrency runs a 50ms sleep on every host with strategy and reports the
// most hosts that were inside fn at once and the order hosts started in.
func concurrency(t *testing.T, strategy runner.Runner, defaultParallel int, n int) (int, []string, error) {
	t.Helper()
	var names []string
	for i := range n {
		names = append(names, "h"+string(rune('a'+i)))
	}
	ex, _ := newExecutor(t, localHosts(names...))
	ex.DefaultParallel = defaultParallel
	var cur, peak atomic.Int32
	var mu sync.Mutex
	var order []string
	err := runTask(t, ex, func(c *Context) error {
		return c.On(c.Roles("app"), strategy, func(h *HostContext) error {
			mu.Lock()
			order = append(order, h.Host.Name)
			mu.Unlock()
			now := cur.Add(1)
			for {
				p := peak.Load()
				if now <= p || peak.CompareAndSwap(p, now) {
					break
				}
			}
			time.Sleep(50 * time.Millisecond)
			cur.Add(-1)
			return nil
		})
	})
	return int(peak.Load()), order, err
}

func TestOnStrategies(t *testing.T) {
	t.Run("parallel default limit", func(t *testing.T) {
		peak, _, err := concurrency(t, nil, 2, 6)
		must(t, err)
		if peak != 2 {
			t.Errorf("peak concurrency %d, want DefaultParallel 2", peak)
		}
	})
	t.Run("parallel explicit limit", func(t *testing.T) {
		peak, _, err := concurrency(t, runner.Parallel{Limit: 3}, 0, 6)
		must(t, err)
		if peak != 3 {
			t.Errorf("peak concurrency %d, want 3", peak)
		}
	})
	t.Run("parallel unlimited", func(t *testing.T) {
		peak, _, err := concurrency(t, nil, 0, 5)
		must(t, err)
		if peak != 5 {
			t.Errorf("peak concurrency %d, want all 5", peak)
		}
	})
	t.Run("sequence", func(t *testing.T) {
		peak, order, err := concurrency(t, runner.Sequence{}, 0, 4)
		must(t, err)
		if peak != 1 || !reflect.DeepEqual(order, []string{"ha", "hb", "hc", "hd"}) {
			t.Errorf("peak %d order %v", peak, order)
		}
	})
	t.Run("batches", func(t *testing.T) {
		peak, order, err := concurrency(t, runner.Batches{Size: 2}, 0, 5)
		must(t, err)
		if peak != 2 {
			t.Errorf("peak %d, want 2", peak)
		}
		// Batches start in order: {ha hb} before {hc hd} before {he}.
		if len(order) != 5 || !slices.Contains(order[:2], "ha") || !slices.Contains(order[2:4], "hc") || order[4] != "he" {
			t.Errorf("order %v", order)
		}
	})
}

func TestOnFilter(t *testing.T) {
	hosts := localHosts("web1", "web2", "db1")
	hosts[2].Roles = []string{"db"}
	hosts = append(hosts, hosts[0]) // listed twice: still once
	ex, _ := newExecutor(t, hosts)
	ex.Filter = deploy.Filter{Hosts: []string{"web*", "db1"}, Roles: []string{"app"}}
	var mu sync.Mutex
	var ran []string
	err := runTask(t, ex, func(c *Context) error {
		if p := c.Primary("db"); p == nil || p.Name != "db1" {
			t.Errorf("Primary(db) = %v", p)
		}
		if hs := c.Hosts("web2"); len(hs) != 1 || hs[0].Name != "web2" {
			t.Errorf("Hosts(web2) = %v", hs)
		}
		// Every host is offered; the filter keeps app hosts named web*.
		return c.On(c.Executor.Hosts, nil, func(h *HostContext) error {
			mu.Lock()
			defer mu.Unlock()
			ran = append(ran, h.Host.Name)
			return nil
		})
	})
	must(t, err)
	slices.Sort(ran)
	if !reflect.DeepEqual(ran, []string{"web1", "web2"}) {
		t.Fatalf("ran on %v", ran)
	}
}

func TestFailureNamesEveryHost(t *testing.T) {
	ex, _ := newExecutor(t, localHosts("web1", "web2", "web3"))
	err := runTask(t, ex, func(c *Context) error {
		return c.On(c.Roles("app"), nil, func(h *HostContext) error {
			if h.Host.Name == "web2" {
				return h.Execute([]string{"true"}, CommandOptions{})
			}
			return h.Execute([]string{"for i in $(seq 1 15); do echo line$i >&2; done; exit 3"}, CommandOptions{})
		})
	})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	t.Log(msg)
	if !strings.HasPrefix(msg, "task tTestFailureNamesEveryHost failed: 2 hosts failed:") {
		t.Errorf("message starts wrong:\n%s", msg)
	}
	for _, want := range []string{"web1: command", "web3: command", "exited with status 3", "| line15", "| line6"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "web2") || strings.Contains(msg, "| line5\n") {
		t.Errorf("message names a good host or too much stderr:\n%s", msg)
	}
	var he *runner.HostErrors
	if !errors.As(err, &he) || len(he.Errors) != 2 {
		t.Fatalf("not HostErrors: %#v", err)
	}
	var ce *CommandError
	if !errors.As(he.Errors[1], &ce) || ce.Host != "web3" || ce.ExitStatus != 3 || len(ce.StderrTail) != 10 || ce.StderrTail[9] != "line15" {
		t.Fatalf("CommandError = %+v", ce)
	}
	var te *TaskError
	if !errors.As(err, &te) || errors.Is(err, context.Canceled) {
		t.Fatal("failure looks canceled or is not a TaskError")
	}
}

func TestCancellation(t *testing.T) {
	ex, _ := newExecutor(t, localHosts("web1", "web2"))
	ctx, cancel := context.WithCancel(context.Background())
	must(t, ex.Registry.Define(&Task{Name: "slow", Run: func(c *Context) error {
		return c.On(c.Roles("app"), nil, func(h *HostContext) error {
			return h.Execute([]string{"sleep 30"}, CommandOptions{})
		})
	}}))
	var afterRan bool
	must(t, ex.Registry.Define(&Task{Name: "later", Run: func(*Context) error { afterRan = true; return nil }}))
	must(t, ex.Registry.After("slow", "later", Position{}))
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	err := ex.Invoke(ctx, "slow")
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("cancellation took %s", d)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error is not context.Canceled: %v", err)
	}
	if !strings.HasPrefix(err.Error(), "task slow canceled:") {
		t.Errorf("message: %v", err)
	}
	if afterRan {
		t.Error("after hook ran after cancellation")
	}
	if err := ex.Invoke(ctx, "later"); !errors.Is(err, context.Canceled) {
		t.Errorf("invoke on a canceled context: %v", err)
	}
}

func TestCommands(t *testing.T) {
	ex, rec := newExecutor(t, localHosts("web1"))
	dir := t.TempDir()
	ex.Vars.Set("default_env", map[string]any{"GREETING": "hello", "N": 1}, Position{})
	ex.Vars.Set("umask", "077", Position{})
	err := runTask(t, ex, func(c *Context) error {
		return c.On(c.Roles("app"), nil, func(h *HostContext) error {
			out, err := h.Capture([]string{"echo $GREETING $N $EXTRA; pwd; umask"}, CommandOptions{Within: dir, Env: map[string]string{"EXTRA": "x y"}})
			if err != nil {
				return err
			}
			if want := "hello 1 x y\n" + dir + "\n0077"; out != want {
				t.Errorf("capture = %q, want %q", out, want)
			}
			if ok, err := h.Test([]string{"test", "-d", dir}, CommandOptions{}); !ok || err != nil {
				t.Errorf("test -d = %v, %v", ok, err)
			}
			if ok, err := h.Test([]string{"test", "-f", dir + "/nope"}, CommandOptions{}); ok || err != nil {
				t.Errorf("test -f nope = %v, %v", ok, err)
			}
			// A timeout is an error, not false.
			ok, err := h.Test([]string{"sleep 5"}, CommandOptions{Timeout: 100 * time.Millisecond})
			if ok || !errors.Is(err, deploy.ErrTimeout) {
				t.Errorf("timeout test = %v, %v", ok, err)
			}
			if err := h.Upload(strings.NewReader("content\n"), filepath.Join(dir, "up.txt"), 0o640); err != nil {
				return err
			}
			st, err := os.Stat(filepath.Join(dir, "up.txt"))
			if err != nil || st.Mode().Perm() != 0o640 {
				t.Errorf("uploaded file: %v %v", st, err)
			}
			var buf bytes.Buffer
			if err := h.Download(filepath.Join(dir, "up.txt"), &buf); err != nil || buf.String() != "content\n" {
				t.Errorf("download = %q, %v", buf.String(), err)
			}
			must(t, os.WriteFile(filepath.Join(dir, "local.sh"), []byte("#!/bin/sh\n"), 0o755))
			must(t, h.UploadFile(filepath.Join(dir, "local.sh"), filepath.Join(dir, "remote.sh"), 0))
			if st, err := os.Stat(filepath.Join(dir, "remote.sh")); err != nil || st.Mode().Perm() != 0o755 {
				t.Errorf("UploadFile kept mode: %v %v", st, err)
			}
			must(t, h.DownloadFile(filepath.Join(dir, "remote.sh"), filepath.Join(dir, "back.sh")))
			if b, _ := os.ReadFile(filepath.Join(dir, "back.sh")); string(b) != "#!/bin/sh\n" {
				t.Errorf("DownloadFile wrote %q", b)
			}
			h.Info("done here")
			return nil
		})
	})
	must(t, err)

	starts := rec.Of(output.CommandStart)
	if len(starts) == 0 || starts[0].Command != "echo $GREETING $N $EXTRA; pwd; umask (in "+dir+")" || starts[0].Host != "web1" || starts[0].Task == "" {
		t.Fatalf("first CommandStart = %+v", starts[0])
	}
	id := starts[0].ID
	var lines []string
	var end *output.Event
	for _, ev := range rec.Events() {
		if ev.ID != id {
			continue
		}
		switch ev.Kind {
		case output.Output:
			lines = append(lines, string(ev.Stream)+":"+ev.Line)
		case output.CommandEnd:
			end = &ev
		}
	}
	if !reflect.DeepEqual(lines, []string{"stdout:hello 1 x y", "stdout:" + dir, "stdout:0077"}) {
		t.Errorf("captured output not emitted as events: %q", lines)
	}
	if end == nil || end.ExitStatus == nil || *end.ExitStatus != 0 {
		t.Errorf("CommandEnd = %+v", end)
	}
	ids := map[uint64]bool{}
	for _, ev := range starts {
		if ids[ev.ID] {
			t.Errorf("command ID %d reused", ev.ID)
		}
		ids[ev.ID] = true
	}
	msgs := rec.Of(output.Message)
	if len(msgs) != 1 || msgs[0].Line != "done here" || msgs[0].Host != "web1" || msgs[0].Level != "info" {
		t.Errorf("messages %+v", msgs)
	}
}

func TestRunAsUser(t *testing.T) {
	if os.Getenv("CI") != "true" {
		if err := exec0("sudo", "-n", "-u", "nobody", "true"); err != nil {
			t.Skip("needs passwordless sudo to nobody:", err)
		}
	}
	ex, rec := newExecutor(t, nil)
	err := runTask(t, ex, func(c *Context) error {
		return c.RunLocally(func(h *HostContext) error {
			out, err := h.Capture([]string{"id", "-un"}, CommandOptions{User: "nobody", Within: "/"})
			if err != nil {
				return err
			}
			if out != "nobody" {
				t.Errorf("ran as %q", out)
			}
			return nil
		})
	})
	must(t, err)
	if s := rec.Of(output.CommandStart); len(s) != 1 || s[0].Command != "id -un (in / as nobody)" || s[0].Host != "localhost" {
		t.Errorf("CommandStart %+v", s)
	}
}

func TestRunLocallyError(t *testing.T) {
	ex, _ := newExecutor(t, nil)
	err := runTask(t, ex, func(c *Context) error {
		return c.RunLocally(func(h *HostContext) error { return h.Execute([]string{"exit 4"}, CommandOptions{}) })
	})
	if err == nil || !strings.Contains(err.Error(), `run locally: command "exit 4" exited with status 4`) {
		t.Fatalf("got %v", err)
	}
	ex.Local = nil
	must(t, ex.Registry.Define(&Task{Name: "nolocal", Run: func(c *Context) error {
		return c.RunLocally(func(h *HostContext) error { return nil })
	}}))
	err = ex.Invoke(context.Background(), "nolocal")
	if err == nil || !strings.Contains(err.Error(), "no local backend") {
		t.Fatalf("got %v", err)
	}
}

func TestAskWithoutTerminal(t *testing.T) {
	ex, _ := newExecutor(t, nil)
	r, w, err := os.Pipe()
	must(t, err)
	defer r.Close()
	defer w.Close()
	var out bytes.Buffer
	ex.Prompter = NewTerminalPrompter(r, &out)
	err = runTask(t, ex, func(c *Context) error {
		_, err := c.Ask("db_password", "Database password", "", true)
		return err
	})
	want := "task tTestAskWithoutTerminal failed: ask db_password: no terminal to ask on; set it with db_password=VALUE"
	if err == nil || err.Error() != want || !errors.Is(err, ErrNoTerminal) {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	// With the value on the command line nothing is asked.
	ex.Vars.Override("db_password", "s3cret")
	must(t, ex.Registry.Define(&Task{Name: "ask2", Run: func(c *Context) error {
		v, err := c.Ask("db_password", "", "", true)
		if v != "s3cret" {
			t.Errorf("ask = %q", v)
		}
		return err
	}}))
	must(t, ex.Invoke(context.Background(), "ask2"))
}

type fakePrompter struct {
	calls atomic.Int32
}

func (f *fakePrompter) Ask(prompt, def string, secret bool) (string, error) {
	f.calls.Add(1)
	return "answer:" + prompt + ":" + def, nil
}

func TestAskOncePerRun(t *testing.T) {
	ex, _ := newExecutor(t, localHosts("a", "b", "c"))
	p := &fakePrompter{}
	ex.Prompter = p
	ex.Vars.Set("branch", "main", Position{})
	err := runTask(t, ex, func(c *Context) error {
		return c.On(c.Roles("app"), nil, func(h *HostContext) error {
			v, err := h.Context.Ask("branch", "Branch", "", false)
			if v != "answer:Branch:main" {
				t.Errorf("ask = %q", v)
			}
			return err
		})
	})
	must(t, err)
	if p.calls.Load() != 1 {
		t.Errorf("asked %d times", p.calls.Load())
	}
	if v, _ := ex.Vars.FetchString("branch"); v != "answer:Branch:main" {
		t.Errorf("variable = %q", v)
	}
}

func exec0(name string, args ...string) error {
	return execCommand(name, args...).Run()
}
