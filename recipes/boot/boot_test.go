package boot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/deploy/output/outputtest"
	"github.com/davit-deploy/davit/recipes"
	"github.com/davit-deploy/davit/tasks"
	"github.com/davit-deploy/davit/tasks/run"
)

// flowDeployfile stands in for the deploy recipe with tasks of the same
// names, so the flow's order, hosts and skips are seen without a release.
const flowDeployfile = `
use("fleet")
def production():
    fleet_servers()
stage("production", production)
def show(ctx):
    for h in roles("all"):
        info("%s %s %s %s %s" % (h.name, ",".join(h.roles), h.user, h.properties.get("instance_type", "-"), h.properties.get("instance_id", "-")))
task("deploy:setup", lambda ctx: info("ran deploy:setup"))
task("deploy", lambda ctx: [show(ctx), invoke("deploy:health_check"), invoke("deploy:published")])
task("deploy:health_check", lambda ctx: fail("the health check ran"))
task("deploy:published", lambda ctx: None)
task("assets:sync", lambda ctx: fail("assets:sync ran"))
after("deploy:published", "assets:sync")
task("start:app", lambda ctx: info("ran start:app db=" + fetch("db") + " revision=" + fetch("revision", "-")))
task("start:job", lambda ctx: info("ran start:job"))
task("notify", lambda ctx: fail("notify ran"))
set("etc_hosts", lambda: {"dbhost": fetch("db")})
set("self_deploy_user", "root")
`

// fleetRecipe's fleet_servers() records a host source that counts how
// often it is asked.
type fleetRecipe struct{ asked *atomic.Int32 }

type fleetSource struct{ asked *atomic.Int32 }

func (fleetSource) Name() string     { return "fleet" }
func (fleetSource) Describe() string { return "the fleet" }
func (s fleetSource) Hosts(context.Context) ([]*deploy.Host, error) {
	s.asked.Add(1)
	return nil, errors.New("the fleet was asked")
}

func (fleetRecipe) SetDefaults(*tasks.Vars)             {}
func (fleetRecipe) DefineTasks(*tasks.Registry) error   { return nil }
func (fleetRecipe) RegisterHooks(*tasks.Registry) error { return nil }
func (r fleetRecipe) Builtins() []tasks.Builtin {
	return []tasks.Builtin{{Name: "fleet_servers", Phases: tasks.PhaseLoad | tasks.PhaseStage,
		Call: func(c *tasks.BuiltinCall) (any, error) { c.AddHostSource(fleetSource{r.asked}); return nil, nil }}}
}

type flow struct {
	t     *testing.T
	dir   string
	hosts string
	asked atomic.Int32
	rec   *outputtest.Recorder
}

func newFlow(t *testing.T, extra string) *flow {
	f := &flow{t: t, dir: t.TempDir()}
	f.hosts = filepath.Join(f.dir, "hosts")
	os.WriteFile(f.hosts, []byte("127.0.0.1 localhost\n"), 0o644)
	os.WriteFile(filepath.Join(f.dir, "Deployfile"), []byte(flowDeployfile+extra), 0o644)
	return f
}

func (f *flow) run(userData string, overrides map[string]string, dry bool) error {
	f.rec = &outputtest.Recorder{}
	go1 := recipes.Go()
	go1["fleet"] = func() tasks.Recipe { return fleetRecipe{&f.asked} }
	_, err := SelfDeploy(context.Background(), Options{
		Run: run.Config{Deployfile: filepath.Join(f.dir, "Deployfile"), Recipes: recipes.Starlark(), GoRecipes: go1,
			Overrides: overrides, Terminal: f.rec, DryRun: dry, LogPath: filepath.Join(f.dir, "davit.log")},
		UserData: []byte(userData), InstanceType: "m1.large", HostsFile: f.hosts,
	})
	return err
}

func (f *flow) lines() []string {
	var out []string
	for _, ev := range f.rec.Of(output.Message) {
		out = append(out, ev.Line)
	}
	return out
}

func (f *flow) has(line string) bool {
	return slices.ContainsFunc(f.lines(), func(l string) bool { return strings.Contains(l, line) })
}

func TestSelfDeployFlow(t *testing.T) {
	f := newFlow(t, "")
	if err := f.run("DB=10.0.0.5;ROLE=app;STAGE=production;REVISION=41", map[string]string{"revision": "42"}, false); err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(f.lines(), "\n"))
	}
	if f.asked.Load() != 0 {
		t.Errorf("the stage's host source was asked %d times", f.asked.Load())
	}
	for _, want := range []string{
		"self-deploy: instance metadata: not asked (user data and instance type given)",
		"ran deploy:setup",
		"localhost app root m1.large -",
		"self-deploy: skipped deploy:health_check at boot",
		"self-deploy: skipped assets:sync at boot: self_deploy_skip lists it",
		// The command line's revision wins over the user data's.
		"ran start:app db=10.0.0.5 revision=42",
	} {
		if !f.has(want) {
			t.Errorf("no %q in:\n%s", want, strings.Join(f.lines(), "\n"))
		}
	}
	if f.has("ran start:job") {
		t.Error("start:job ran for role app")
	}
	if b, _ := os.ReadFile(f.hosts); !strings.HasPrefix(string(b), "10.0.0.5\tdbhost\t"+HostsMarker+"\n") {
		t.Errorf("hosts file:\n%s", b)
	}
}

func TestSelfDeployTasksVariable(t *testing.T) {
	f := newFlow(t, `
set("self_deploy_tasks", {"app": ["start:job", "start:app"], "worker": "start:job"})
set("self_deploy_skip", ["notify"])
after("start:app", "notify")
`)
	if err := f.run("DB=10.0.0.5;ROLE=app;STAGE=production", nil, false); err == nil || !strings.Contains(err.Error(), "assets:sync ran") {
		// self_deploy_skip replaces the default list.
		t.Errorf("assets:sync was skipped though self_deploy_skip leaves it out: %v", err)
	}
	f = newFlow(t, `
set("self_deploy_tasks", {"app": ["start:job", "start:app"], "worker": "start:job"})
set("self_deploy_skip", ["notify", "assets:sync"])
after("start:app", "notify")
`)
	if err := f.run("DB=10.0.0.5;ROLE=app;STAGE=production", nil, false); err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(f.lines(), "\n"))
	}
	if !f.has("ran start:job") || !f.has("ran start:app") || !f.has("self-deploy: skipped notify at boot") {
		t.Errorf("output:\n%s", strings.Join(f.lines(), "\n"))
	}
	err := f.run("DB=10.0.0.5;ROLE=job;STAGE=production", nil, false)
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), `role "job": self_deploy_tasks names no tasks for it; the Deployfile's roles: app, worker`) {
		t.Errorf("unknown role: %v", err)
	}
}

// Everything wrong is reported at once, before anything changes.
func TestSelfDeployReportsAllMistakes(t *testing.T) {
	f := newFlow(t, `
set("self_deploy_user", "no-such-user-here")
set("etc_hosts", {"db host": "10.0.0.1", "cache": 7})
`)
	err := f.run("DB=10.0.0.5;ROLE=web;STAGE=production", nil, false)
	for _, want := range []string{
		`role "web": no task start:web to start it; the Deployfile's roles: app, job`,
		`etc_hosts["cache"]: want an address string, have int`,
		`etc_hosts: "db host" is not a host name`,
		`self_deploy_user "no-such-user-here"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if b, _ := os.ReadFile(f.hosts); string(b) != "127.0.0.1 localhost\n" {
		t.Errorf("the hosts file changed:\n%s", b)
	}
	if f.has("ran deploy:setup") {
		t.Error("the deploy ran")
	}
}

// As root, a Deployfile must name the application user.
func TestSelfDeployNeedsAnAppUserAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the tests run as root")
	}
	f := newFlow(t, `set("self_deploy_user", "")`)
	err := f.run("DB=10.0.0.5;ROLE=app;STAGE=production", nil, false)
	if err == nil || !strings.Contains(err.Error(), "self_deploy_user is not set: the deploy would run as root") {
		t.Errorf("error: %v", err)
	}
}

// A dry run writes no hosts file and runs no command.
func TestSelfDeployDryRun(t *testing.T) {
	f := newFlow(t, "")
	if err := f.run("DB=10.0.0.5;ROLE=app;STAGE=production", nil, true); err != nil {
		t.Fatal(err)
	}
	if !f.has("self-deploy: dry run: would write dbhost → 10.0.0.5 to " + f.hosts) {
		t.Errorf("output:\n%s", strings.Join(f.lines(), "\n"))
	}
	if b, _ := os.ReadFile(f.hosts); string(b) != "127.0.0.1 localhost\n" {
		t.Errorf("the dry run changed the hosts file:\n%s", b)
	}
}
