package deployfile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/recipes"
	"github.com/davit-deploy/davit/tasks"
)

func TestHooksAndInvoke(t *testing.T) {
	rec, _, _ := mustRun(t, `
def step(name):
    return lambda ctx: info(name)
task("deploy", step("deploy"))
task("deploy:check", step("check"))
task("deploy:cleanup", step("cleanup"))
def notify(ctx):
    info("notify " + ctx.task)
before("deploy", "deploy:check")
after("deploy", notify)
after("deploy", "deploy:cleanup")
before("deploy:check", lambda: info("pre-check"))
def outer(ctx):
    invoke("deploy")
    invoke("deploy")
    reinvoke("deploy:cleanup")
task("outer", outer)
`, "outer")
	want := []string{"info:pre-check", "info:check", "info:deploy", "info:notify after deploy (notify)", "info:cleanup", "info:cleanup"}
	if got := rec.messages(); !reflect.DeepEqual(got, want) {
		t.Errorf("ran\n%q\nwant\n%q", got, want)
	}
}

func TestHookErrors(t *testing.T) {
	_, _, _, err := run(t, `
task("deploy", lambda: None)
task("deploy:check", lambda: None)
after("deploy", "deploy:chek")
`, "", "deploy")
	contains(t, err, "after hook of task deploy at ", "Deployfile:4:6", `unknown task "deploy:chek" (did you mean deploy:check?)`)

	_, _, _, err = run(t, `
task("a", lambda: None)
task("b", lambda: None)
before("a", "b")
before("b", "a")
`, "", "a")
	contains(t, err, "hook cycle: a -> b -> a")

	p, _ := load(t, `task("deploy", lambda: None)`)
	ex, _ := executor(t, p)
	contains(t, ex.Invoke(context.Background(), "deplyo"), `unknown task "deplyo" (did you mean deploy?)`)
}

func TestOnStrategies(t *testing.T) {
	src := `
server("h1", roles = ["app"], backend = "local")
server("h2", roles = ["app"], backend = "local")
server("h3", roles = ["app"], backend = "local")
def work(h):
    if h.name == "h1":
        fail("h1 is broken")
    h.execute("touch", "$DIR/" + h.name)
    return h.name.upper()
def t(ctx):
    r = on(roles("app"), work, STRATEGY)
    info("%s" % r)
task("t", t)
`
	cases := []struct {
		strategy string
		ran      []string
	}{
		{`strategy = "parallel", limit = 2`, []string{"h2", "h3"}},
		{`strategy = "sequence"`, nil},
		{`strategy = "groups", batch_size = 2`, []string{"h2"}},
	}
	for _, c := range cases {
		t.Run(c.strategy, func(t *testing.T) {
			_, _, dir, err := run(t, strings.Replace(src, "STRATEGY", c.strategy, 1), "", "t")
			contains(t, err, "task t failed: Deployfile:11:11: on: h1: Deployfile:7:13: fail: h1 is broken")
			var ran []string
			for _, h := range []string{"h1", "h2", "h3"} {
				if _, err := os.Stat(filepath.Join(dir, h)); err == nil {
					ran = append(ran, h)
				}
			}
			if !reflect.DeepEqual(ran, c.ran) {
				t.Errorf("ran on %v, want %v", ran, c.ran)
			}
		})
	}
	rec, _, _, err := run(t, strings.Replace(strings.Replace(src, `fail("h1 is broken")`, "pass", 1), "STRATEGY", `strategy = "sequence", wait = 0.01`, 1), "", "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.messages(); !reflect.DeepEqual(got, []string{`info:{"h1": "H1", "h2": "H2", "h3": "H3"}`}) {
		t.Errorf("on() results %q", got)
	}
	_, _, _, err = run(t, strings.Replace(src, "STRATEGY", `strategy = "sequense"`, 1), "", "t")
	contains(t, err, `unknown strategy "sequense" (did you mean sequence?)`)
}

func TestOnFilter(t *testing.T) {
	p, dir := load(t, `
server("web1", roles = ["web"], backend = "local")
server("web2", roles = ["web"], backend = "local")
server("db1", roles = ["db"], backend = "local")
task("t", lambda: on(roles("all"), lambda h: h.execute("touch", "$DIR/" + h.name)))
`)
	ex, _ := executor(t, p)
	ex.Filter.Hosts = []string{"web2", "db*"}
	ex.Filter.Roles = []string{"web"}
	if err := ex.Invoke(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		if e.Name() != "Deployfile" {
			names = append(names, e.Name())
		}
	}
	if !reflect.DeepEqual(names, []string{"web2"}) {
		t.Errorf("ran on %v", names)
	}
}

func TestRunLocally(t *testing.T) {
	rec, _, dir := mustRun(t, `
def t(ctx):
    out = run_locally(lambda h: h.capture("echo", "local " + h.name))
    info(out)
    run_locally(lambda h: h.execute("touch", "$DIR/made"))
task("t", t)
`, "t")
	if got := rec.messages(); !reflect.DeepEqual(got, []string{"info:local localhost"}) {
		t.Errorf("messages %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "made")); err != nil {
		t.Error(err)
	}
}

type answers map[string]string

func (a answers) Ask(prompt, def string, secret bool) (string, error) {
	if v, ok := a[prompt]; ok {
		return v, nil
	}
	return def, nil
}

func TestAsk(t *testing.T) {
	p, _ := load(t, `
set("branch", "main")
def t(ctx):
    b = ask("branch", "Which branch?")
    s = ask("api_key", "Key", secret = True)
    d = ask("color", "Color", default = "blue")
    info("%s %s %s" % (b, s, d))
task("t", t)
`)
	ex, rec := executor(t, p)
	ex.Prompter = answers{"Which branch?": "feature", "Key": "k-123"}
	if err := ex.Invoke(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	if got := rec.messages(); !reflect.DeepEqual(got, []string{"info:feature k-123 blue"}) {
		t.Errorf("messages %q", got)
	}
	if got := p.Vars().SecretValues(); !reflect.DeepEqual(got, []string{"k-123"}) {
		t.Errorf("secrets %q", got)
	}

	p, _ = load(t, `task("t", lambda: ask("db_password"))`)
	ex, _ = executor(t, p)
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	ex.Prompter = tasks.NewTerminalPrompter(r, os.Stderr)
	contains(t, ex.Invoke(context.Background(), "t"), "ask: ask db_password: no terminal to ask on; set it with db_password=VALUE")
}

func TestOutsideTaskRejected(t *testing.T) {
	for src, want := range map[string]string{
		`on([], lambda h: None)`:                 "Deployfile:1:3: on() can only be called inside a task",
		`run_locally(lambda h: None)`:            "Deployfile:1:12: run_locally() can only be called inside a task",
		`ask("x")`:                               "Deployfile:1:4: ask() can only be called inside a task",
		`invoke("x")`:                            "Deployfile:1:7: invoke() can only be called inside a task",
		`roles("app")`:                           "Deployfile:1:6: roles() can only be called inside a task, a stage function or a lazy value",
		"x = 1\ndef f():\n    on([], None)\nf()": "Deployfile:3:7: on() can only be called inside a task",
	} {
		contains(t, loadErr(t, src), want)
	}
	// Declarations are refused while a task runs.
	_, _, _, err := run(t, `task("t", lambda: task("u", lambda: None))`, "", "t")
	contains(t, err, "task() can only be called while loading the Deployfile or in a stage function")
	_, _, _, err = run(t, `
server("localhost", roles = ["app"])
task("t", lambda: roles("app")[0].execute("true"))`, "", "t")
	contains(t, err, "host.execute(): localhost is a description, not a connection")
}

func TestErrorPositions(t *testing.T) {
	contains(t, loadErr(t, "set('a', 1)\nset('b' 2)\n"), "Deployfile:2:10: got int literal, want ','")
	contains(t, loadErr(t, "x = 1\ny = x + 'a'\n"), "Deployfile:2:7: unknown binary op: int + string")
	contains(t, loadErr(t, "set('a', undefined_name)"), "Deployfile:1:10: undefined: undefined_name")
	contains(t, loadErr(t, "set('a', 1)\nfetsh('a')"), "Deployfile:2:1: undefined: fetsh (did you mean fetch?)")
	contains(t, loadErr(t, "def f():\n    fail('boom')\nf()\n"),
		"Deployfile:2:9: fail: boom", "Traceback (most recent call last):", "Deployfile:3:2: in <toplevel>", "Deployfile:2:9: in f")

	_, _, _, err := run(t, `
def helper():
    return 1 + "one"
def deploy(ctx):
    helper()
task("deploy", deploy)
`, "", "deploy")
	contains(t, err, "task deploy failed: Deployfile:3:14: unknown binary op: int + string", "Deployfile:5:11: in deploy", "Deployfile:3:14: in helper")
	var de *Error
	if !errors.As(err, &de) || de.Pos == "" || !strings.HasSuffix(de.Pos, "Deployfile:3:14") {
		t.Errorf("deployfile.Error not reachable or wrong position: %#v", de)
	}
	_, _, _, err = run(t, "def t(ctx):\n    fail('nope', 42)\ntask('t', t)", "", "t")
	contains(t, err, "task t failed: ", "Deployfile:2:9: fail: nope 42")
}

func TestRequire(t *testing.T) {
	load(t, `require("davit", ">=1.0, <2")`)
	load(t, `require("davit", "^1.4")`, func(o *Options) { o.Version = "1.5.0-rc.1" })
	load(t, `require("davit", ">=9")`, func(o *Options) { o.Version = "dev" })
	contains(t, loadErr(t, `require("davit", ">=2.0")`),
		"Deployfile:1:8: require: this Deployfile requires davit >=2.0, but this is davit 1.4.0")
	contains(t, loadErr(t, `require("davit", "bogus!")`), `invalid version constraint "bogus!"`)
	contains(t, loadErr(t, `require("ruby", ">=3")`), `unknown requirement "ruby"`)
}

func TestLoadFiles(t *testing.T) {
	path, dir := writeDeployfile(t, `
load("lib/common.star", "greeting", "shout")
set("greeting", greeting)
task("t", lambda: shout())
`)
	writeFile(t, filepath.Join(dir, "lib", "common.star"), `
load("helpers.star", "upper")
greeting = upper("hello")
def shout():
    info(greeting)
set("from_lib", True)
`)
	writeFile(t, filepath.Join(dir, "lib", "helpers.star"), "def upper(s):\n    return s.upper()\n")
	p, err := Load(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := p.Vars().FetchString("greeting"); g != "HELLO" {
		t.Errorf("greeting %q", g)
	}
	if b, _ := p.Vars().FetchBool("from_lib"); !b {
		t.Error("a loaded file's set() was lost")
	}
	ex, rec := executor(t, p)
	if err := ex.Invoke(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	if got := rec.messages(); !reflect.DeepEqual(got, []string{"info:HELLO"}) {
		t.Errorf("messages %q", got)
	}
}

func TestLoadCycle(t *testing.T) {
	path, dir := writeDeployfile(t, `load("a.star", "a")`)
	writeFile(t, filepath.Join(dir, "a.star"), `load("b.star", "b")`+"\na = 1\n")
	writeFile(t, filepath.Join(dir, "b.star"), `load("a.star", "a")`+"\nb = 1\n")
	_, err := Load(context.Background(), path, Options{})
	contains(t, err, "load cycle: "+filepath.Join(dir, "a.star")+" -> "+filepath.Join(dir, "b.star")+" -> "+filepath.Join(dir, "a.star"), "Deployfile:1:1: cannot load a.star")

	path, dir = writeDeployfile(t, `load("missing.star", "x")`)
	_, err = Load(context.Background(), path, Options{})
	contains(t, err, "Deployfile:1:1: cannot load missing.star: read "+filepath.Join(dir, "missing.star")+": file not found")
}

func TestDoctorRecipe(t *testing.T) {
	rec, p, _ := mustRun(t, `
load("davit/doctor.star", "doctor")
server("localhost", roles = ["app"])
set("doctor_tools", ["sh", "tar"])
`, "doctor")
	if tk, err := p.Registry().Lookup("doctor"); err != nil || tk.Desc == "" || !strings.HasPrefix(tk.Pos.String(), "davit/doctor.star:") {
		t.Errorf("doctor task: %+v %v", tk, err)
	}
	var cmds []string
	for _, ev := range rec.Of(output.CommandStart) {
		cmds = append(cmds, ev.Host+": "+ev.Command)
	}
	want := []string{"localhost: uname -sr && id -un", "localhost: command -v sh", "localhost: command -v tar"}
	if !reflect.DeepEqual(cmds, want) {
		t.Errorf("commands %q", cmds)
	}

	// A missing tool fails with the recipe's message and position.
	_, _, _, err := run(t, `
load("davit/doctor.star", "doctor")
server("localhost", roles = ["app"])
set("doctor_tools", ["sh", "no-such-tool-davit"])
`, "", "doctor")
	contains(t, err, "task doctor failed:", "localhost: davit/doctor.star:", "no-such-tool-davit is not installed")

	// Without the embedded recipes the load fails clearly.
	path, _ := writeDeployfile(t, `load("davit/doctor.star", "doctor")`)
	_, err = Load(context.Background(), path, Options{})
	contains(t, err, "cannot load davit/doctor.star", "no embedded recipes")
	_, err = Load(context.Background(), path, Options{Recipes: recipes.Starlark()})
	if err != nil {
		t.Error(err)
	}
}

func TestCancel(t *testing.T) {
	p, _ := load(t, `
server("localhost", roles = ["app"])
task("sleep", lambda: on(roles("app"), lambda h: h.execute("sleep 30")))
def spin(ctx):
    n = 0
    while True:
        n += 1
task("spin", spin)
`)
	for _, name := range []string{"sleep", "spin"} {
		t.Run(name, func(t *testing.T) {
			ex, _ := executor(t, p)
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			start := time.Now()
			err := ex.Invoke(ctx, name)
			if time.Since(start) > 10*time.Second {
				t.Errorf("took %s", time.Since(start))
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("not canceled: %v", err)
			}
			contains(t, err, "task "+name+" canceled")
		})
	}
	// Loading stops too.
	path, _ := writeDeployfile(t, "while True:\n    pass\n")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := Load(ctx, path, Options{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("load not stopped: %v", err)
	}
	contains(t, err, "Deployfile:1:1: Starlark computation cancelled")
}

func TestMessagesAndPrint(t *testing.T) {
	loadRec := &recorder{}
	p, _ := load(t, `
warn("loading")
server("localhost", roles = ["app"])
def t(ctx):
    info("in task")
    print("printed")
    on(roles("app"), lambda h: warn("on host"))
task("t", t)
`, func(o *Options) { o.Sink = loadRec })
	if got := loadRec.messages(); !reflect.DeepEqual(got, []string{"warn:loading"}) {
		t.Errorf("load messages %q", got)
	}
	ex, rec := executor(t, p)
	if err := ex.Invoke(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	if got := rec.messages(); !reflect.DeepEqual(got, []string{"info:in task", "info:printed", "localhost:warn:on host"}) {
		t.Errorf("messages %q", got)
	}
}

func TestFrozenAcrossThreads(t *testing.T) {
	_, _, _, err := run(t, `
server("localhost", roles = ["app"])
def t(ctx):
    seen = []
    on(roles("app"), lambda h: seen.append(h.name))
task("t", t)
`, "", "t")
	contains(t, err, "cannot append to frozen list")
}
