package deployfile

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/deploy/runner"
	"github.com/davit-deploy/davit/tasks"
)

func TestSetFetch(t *testing.T) {
	p, _ := load(t, `
set("application", "payroll")
set("keep_releases", 5)
set("linked_dirs", ["log", "tmp/pids"])
set("default_env", {"RAILS_ENV": "production"})
set("db_password", "hunter2")
set("license", "L-123", secret = True)
set("release_path", lambda: fetch("deploy_to") + "/current")
set("deploy_to", "/srv/" + fetch("application"))
set("maybe", fetch("nothing", None))
set("fallback", fetch("nothing", "dflt"))
`)
	v := p.Vars()
	checks := map[string]any{
		"application":   "payroll",
		"keep_releases": 5,
		"linked_dirs":   []any{"log", "tmp/pids"},
		"default_env":   map[string]any{"RAILS_ENV": "production"},
		"release_path":  "/srv/payroll/current",
		"maybe":         nil,
		"fallback":      "dflt",
	}
	for name, want := range checks {
		got, err := v.Fetch(name)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, %v; want %#v", name, got, err, want)
		}
	}
	if l, _ := v.FetchStrings("linked_dirs"); !reflect.DeepEqual(l, []string{"log", "tmp/pids"}) {
		t.Errorf("FetchStrings = %q", l)
	}
	if got := v.SecretValues(); !reflect.DeepEqual(got, []string{"L-123", "hunter2"}) {
		t.Errorf("secrets %q", got)
	}
	if pos := v.Pos("application"); !strings.HasSuffix(pos.String(), "Deployfile:2:4") {
		t.Errorf("position of set = %s", pos)
	}
}

func TestOverridesWinOverDeployfile(t *testing.T) {
	p, _ := load(t, `
set("branch", "main")
set("seen_at_load", fetch("branch"))
`, func(o *Options) { o.Overrides = map[string]string{"branch": "hotfix"} })
	for _, n := range []string{"branch", "seen_at_load"} {
		if s, _ := p.Vars().FetchString(n); s != "hotfix" {
			t.Errorf("%s = %q", n, s)
		}
	}
}

func TestLazyOnceAndCycle(t *testing.T) {
	rec := &recorder{}
	p, _ := load(t, `
def compute():
    print("computing")
    return {"rev": "abc"}
set("revision", compute)
set("a", lambda: fetch("b"))
set("b", lambda: fetch("a"))
`, func(o *Options) { o.Sink = rec })
	done := make(chan any)
	for range 20 {
		go func() {
			v, err := p.Vars().Fetch("revision")
			if err != nil {
				t.Error(err)
			}
			done <- v
		}()
	}
	for range 20 {
		if v := <-done; !reflect.DeepEqual(v, map[string]any{"rev": "abc"}) {
			t.Errorf("revision = %#v", v)
		}
	}
	if m := rec.messages(); !reflect.DeepEqual(m, []string{"info:computing"}) {
		t.Errorf("lazy value computed %d times: %q", len(m), m)
	}
	_, err := p.Vars().Fetch("a")
	contains(t, err, "variable cycle: a -> b -> a", "Deployfile:7:")
}

func TestUnknownVariableInTask(t *testing.T) {
	_, _, _, err := run(t, `
set("deploy_to", "/srv/app")
def t(ctx):
    fetch("deploy_too")
task("t", t)
`, "", "t")
	contains(t, err, "task t failed: ", "Deployfile:4:10: fetch: unknown variable \"deploy_too\" (did you mean deploy_to?)")
	var uve *tasks.UnknownVariableError
	if !errors.As(err, &uve) {
		t.Errorf("UnknownVariableError not reachable: %T", err)
	}
}

func TestServerRoleHosts(t *testing.T) {
	p, _ := load(t, `
server("deploy@web1:2222", roles = ["app", "web"], primary = True, az = "a", weight = 2)
server("web2", roles = "web", user = "ops", port = 2200, address = "10.0.0.2")
role("db", ["db1", "web1:2222"], backup = True)
server("localhost", roles = ["app"], backend = "local")
`)
	hs := p.Hosts()
	if got := hostNames(hs); !reflect.DeepEqual(got, []string{"db1", "deploy@web1:2222", "localhost", "ops@web2:2200"}) {
		t.Fatalf("hosts %v", got)
	}
	byName := map[string]*deploy.Host{}
	for _, h := range hs {
		byName[h.Name] = h
	}
	w1 := byName["web1"]
	if !reflect.DeepEqual(w1.Roles, []string{"app", "web", "db"}) || !w1.Primary || w1.User != "deploy" {
		t.Errorf("web1 = %+v", w1)
	}
	if !reflect.DeepEqual(w1.Props, map[string]any{"az": "a", "weight": 2, "backup": true}) {
		t.Errorf("web1 props = %#v", w1.Props)
	}
	if w2 := byName["web2"]; w2.Address != "10.0.0.2" || w2.DialAddress() != "10.0.0.2" {
		t.Errorf("web2 = %+v", w2)
	}
	if !byName["localhost"].IsLocal() || byName["db1"].IsLocal() {
		t.Error("backends wrong")
	}
	// Copies: changing one does not change the project.
	hs[0].Roles = nil
	if len(p.Hosts()[0].Roles) == 0 {
		t.Error("Hosts returned shared values")
	}
	contains(t, loadErr(t, `server("a b")`), "Deployfile:1:7", "invalid character")
	contains(t, loadErr(t, `server("a", backend = "telnet")`), `backend "telnet"`)
}

func TestHostValues(t *testing.T) {
	rec, _, _ := mustRun(t, `
server("deploy@web1:2222", roles = ["app"], primary = True, az = "a")
server("web2", roles = ["app", "db"])
def t(ctx):
    hs = roles("app")
    h = hs[0]
    info("%s %s %s %d %s %s %s" % (h, h.name, h.user, h.port, h.roles, h.primary, h.properties))
    info("%s %s" % (primary("db").name, primary("web")))
    info("%s" % [x.name for x in hosts("web*")])
    info("%s" % (roles("app")[0] == roles("all")[0]))
    info(ctx.task)
task("t", t)
`, "t")
	want := []string{
		`info:deploy@web1:2222 web1 deploy 2222 ["app"] True {"az": "a"}`,
		"info:web2 None",
		`info:["web1", "web2"]`,
		"info:True",
		"info:t",
	}
	if got := rec.messages(); !reflect.DeepEqual(got, want) {
		t.Errorf("messages\n%q\nwant\n%q", got, want)
	}
}

func TestStages(t *testing.T) {
	src := `
server("bastion", roles = ["gateway"])
def production():
    server("app1", roles = ["app"])
    server("app2", roles = ["app"])
    set("branch", "release")
stage("production", production, desc = "The real thing")
stage("staging", lambda: server("stage1", roles = ["app"]))
`
	p, _ := load(t, src)
	if got := p.Stages(); !reflect.DeepEqual(got, []string{"production", "staging"}) {
		t.Errorf("Stages = %v", got)
	}
	if !p.HasStage("staging") || p.HasStage("prod") || p.StageDesc("production") != "The real thing" {
		t.Error("HasStage/StageDesc wrong")
	}
	if got := hostNames(p.Hosts()); !reflect.DeepEqual(got, []string{"bastion"}) {
		t.Errorf("before stage: %v", got)
	}
	err := p.UseStage("prodution")
	contains(t, err, `unknown stage "prodution" (did you mean production?)`)
	if err := p.UseStage("production"); err != nil {
		t.Fatal(err)
	}
	if got := hostNames(p.Hosts()); !reflect.DeepEqual(got, []string{"app1", "app2", "bastion"}) {
		t.Errorf("production hosts: %v", got)
	}
	if s, _ := p.Vars().FetchString("stage"); s != "production" || p.Stage() != "production" {
		t.Errorf("stage variable %q", s)
	}
	if b, _ := p.Vars().FetchString("branch"); b != "release" {
		t.Errorf("branch %q", b)
	}
	contains(t, p.UseStage("staging"), "already selected")

	p2, _ := load(t, src)
	if err := p2.UseStage("staging"); err != nil {
		t.Fatal(err)
	}
	if got := hostNames(p2.Hosts()); !reflect.DeepEqual(got, []string{"bastion", "stage1"}) {
		t.Errorf("staging hosts: %v", got)
	}
	contains(t, loadErr(t, "stage('a', lambda: None)\nstage('a', lambda: None)"), "Deployfile:2:6", "stage a is already declared at")
	p3, _ := load(t, "def s():\n    stage('x', lambda: None)\nstage('s', s)")
	contains(t, p3.UseStage("s"), "stage s: ", "Deployfile:2:10", "stage() can only be called at the top level")
}

func TestExecuteCaptureTest(t *testing.T) {
	rec, p, dir := mustRun(t, `
server("localhost", roles = ["app"])
set("default_env", {"FROM_VAR": "v"})
def check(h):
    h.execute("echo hello > out.txt", within = "$DIR")
    h.execute("printf '%s|%s|%s' \"$A\" \"$B\" \"$FROM_VAR\" > env.txt", within = "$DIR", env = {"A": "x y", "B": 3})
    h.execute("touch", "$DIR/it's here")
    set("captured", h.capture("cat", "$DIR/out.txt"))
    set("is_dir", h.test("test", "-d", "$DIR"))
    set("missing", h.test(["test", "-e", "$DIR/nope"]))
def t(ctx):
    on(roles("app"), check)
task("t", t)
`, "t")
	if got := readFile(t, filepath.Join(dir, "out.txt")); got != "hello\n" {
		t.Errorf("out.txt = %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "env.txt")); got != "x y|3|v" {
		t.Errorf("env.txt = %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "it's here")); err != nil {
		t.Errorf("quoted word: %v", err)
	}
	v := p.Vars()
	for name, want := range map[string]any{"captured": "hello", "is_dir": true, "missing": false} {
		if got, _ := v.Fetch(name); got != want {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	var cmds []string
	for _, ev := range rec.Of(output.CommandStart) {
		cmds = append(cmds, ev.Command)
	}
	if len(cmds) != 6 || cmds[0] != "echo hello > out.txt (in "+dir+")" || cmds[3] != "cat "+dir+"/out.txt" {
		t.Errorf("commands %q", cmds)
	}
	var out []string
	for _, ev := range rec.Of(output.Output) {
		out = append(out, ev.Line)
	}
	if !reflect.DeepEqual(out, []string{"hello"}) {
		t.Errorf("captured output not in events: %q", out)
	}
}

func TestExecuteFailureAndTimeout(t *testing.T) {
	_, _, _, err := run(t, `
server("localhost", roles = ["app"])
def t(ctx):
    on(roles("app"), lambda h: h.execute("echo bad >&2; exit 7"))
task("t", t)
`, "", "t")
	contains(t, err, "task t failed: Deployfile:4:7: on: localhost: Deployfile:4:41: execute: command \"echo bad >&2; exit 7\" exited with status 7", "| bad")
	var ce *tasks.CommandError
	var he *runner.HostErrors
	if !errors.As(err, &ce) || ce.ExitStatus != 7 || !errors.As(err, &he) {
		t.Errorf("CommandError/HostErrors not reachable: %#v", err)
	}

	_, _, _, err = run(t, `
server("localhost", roles = ["app"])
task("t", lambda: on("app", lambda h: h.execute("sleep 5", timeout = 0.2)))
`, "", "t")
	contains(t, err, "timed out after 200ms")
	if !errors.Is(err, deploy.ErrTimeout) {
		t.Errorf("not ErrTimeout: %v", err)
	}
}

func TestExecuteAsUser(t *testing.T) {
	if os.Getenv("CI") != "true" {
		if err := exec.Command("sudo", "-n", "-u", "nobody", "true").Run(); err != nil {
			t.Skip("needs passwordless sudo to nobody:", err)
		}
	}
	_, p, _ := mustRun(t, `
server("localhost", roles = ["app"])
def t(ctx):
    on(roles("app"), lambda h: set("who", h.capture("id -un", user = "nobody", within = "/")))
task("t", t)
`, "t")
	if who, _ := p.Vars().FetchString("who"); who != "nobody" {
		t.Errorf("ran as %q", who)
	}
}

func TestUploadDownload(t *testing.T) {
	p, dir := load(t, `
server("localhost", roles = ["app"])
def xfer(h):
    h.upload("files/script.sh", "$DIR/remote.sh")
    h.upload("files/script.sh", "$DIR/private.sh", mode = 0o600)
    h.upload_string("key = value\n", "$DIR/config.ini")
    h.download("$DIR/config.ini", "back/config.ini")
task("t", lambda ctx: on(roles("app"), xfer))
`)
	// Local paths are relative to the Deployfile's directory, whatever
	// the working directory is.
	script := filepath.Join(dir, "files", "script.sh")
	writeFile(t, script, "#!/bin/sh\necho hi\n")
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	ex, rec := executor(t, p)
	if err := ex.Invoke(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"remote.sh": 0o755, "private.sh": 0o600, "config.ini": 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v %v, want mode %o", name, st, err, mode)
		}
	}
	if got := readFile(t, filepath.Join(dir, "back", "config.ini")); got != "key = value\n" {
		t.Errorf("downloaded %q", got)
	}
	if n := len(rec.Of(output.CommandEnd)); n != 4 {
		t.Errorf("%d transfer events, want 4", n)
	}
}

// fakeRecipe records how use() installed it.
type fakeRecipe struct{ installs *int }

func (f fakeRecipe) SetDefaults(v *tasks.Vars) { v.SetDefault("keep_releases", 5, tasks.Position{}) }
func (f fakeRecipe) DefineTasks(r *tasks.Registry) error {
	*f.installs++
	return r.Define(&tasks.Task{Name: "fake:hello", Desc: "from Go", Run: func(*tasks.Context) error { return nil }})
}
func (f fakeRecipe) RegisterHooks(r *tasks.Registry) error {
	return r.After("fake:hello", "fake:hello2", tasks.Position{})
}

func TestUse(t *testing.T) {
	installs := 0
	opts := Options{GoRecipes: map[string]func() tasks.Recipe{
		"fake": func() tasks.Recipe { return fakeRecipe{&installs} },
	}}
	dir := t.TempDir()
	path := filepath.Join(dir, "Deployfile")
	os.WriteFile(path, []byte("set(\"keep_releases\", 3)\nuse(\"fake\")\nuse(\"fake\")\n"), 0o644)
	p, err := Load(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if installs != 1 {
		t.Errorf("recipe installed %d times", installs)
	}
	if _, err := p.Registry().Lookup("fake:hello"); err != nil {
		t.Error(err)
	}
	// The Deployfile's own value wins over the recipe's default.
	if v, _ := p.Vars().Fetch("keep_releases"); v != 3 {
		t.Errorf("keep_releases = %v", v)
	}
	if _, after := p.Registry().Hooks("fake:hello"); len(after) != 1 {
		t.Errorf("hooks not registered: %v", after)
	}

	os.WriteFile(path, []byte("use(\"fak\")\n"), 0o644)
	_, err = Load(context.Background(), path, opts)
	if err == nil || !strings.Contains(err.Error(), `Deployfile:1:4: use: unknown recipe "fak" (did you mean fake?)`) {
		t.Errorf("unknown recipe error: %v", err)
	}
}
