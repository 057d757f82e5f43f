package deployfile

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/recipes"
	"github.com/davit-deploy/davit/tasks"
)

// builtinRecipe is a Go recipe that only contributes builtins.
type builtinRecipe struct{ defs []tasks.Builtin }

func (builtinRecipe) SetDefaults(*tasks.Vars)             {}
func (builtinRecipe) DefineTasks(*tasks.Registry) error   { return nil }
func (builtinRecipe) RegisterHooks(*tasks.Registry) error { return nil }
func (r builtinRecipe) Builtins() []tasks.Builtin         { return r.defs }
func recipeOf(defs ...tasks.Builtin) func() tasks.Recipe {
	return func() tasks.Recipe { return builtinRecipe{defs} }
}
func withRecipes(m map[string]func() tasks.Recipe) func(*Options) {
	return func(o *Options) { o.GoRecipes = m }
}

// fakeSource is a host source that counts how often it is asked.
type fakeSource struct {
	name, what string
	asked      *atomic.Int32
}

func (s fakeSource) Name() string     { return s.name }
func (s fakeSource) Describe() string { return s.what }
func (s fakeSource) Hosts(context.Context) ([]*deploy.Host, error) {
	s.asked.Add(1)
	return []*deploy.Host{{Name: "from-" + s.name}}, nil
}

// quotaError is a recipe's own error type, which must stay reachable
// through the Deployfile's error.
type quotaError struct{ region string }

func (e *quotaError) Error() string { return "instance quota exceeded in " + e.region }

// awsRecipe is a stand-in for the EC2 recipe: a builtin per phase, one
// taking every kind of parameter, one with free keywords, one failing.
type awsRecipe struct {
	asked *atomic.Int32
	calls chan *tasks.BuiltinCall // every call's details, for the test to inspect
}

func (r *awsRecipe) record(c *tasks.BuiltinCall) {
	select {
	case r.calls <- c:
	default:
	}
}

func (r *awsRecipe) builtins() []tasks.Builtin {
	return []tasks.Builtin{
		{
			Name: "ec2_servers", Doc: "Hosts from EC2 tags", Phases: tasks.PhaseLoad | tasks.PhaseStage,
			Params: []tasks.Param{{Name: "region", Kind: tasks.KindString}, {Name: "tags", Optional: true, Kind: tasks.KindDict}},
			Call: func(c *tasks.BuiltinCall) (any, error) {
				r.record(c)
				c.AddHostSource(fakeSource{name: "ec2", what: fmt.Sprintf("instances in %s tagged %v", c.String("region"), c.Dict("tags")), asked: r.asked})
				return nil, nil
			},
		},
		{
			Name: "stage_name", Phases: tasks.PhaseStage,
			Call: func(c *tasks.BuiltinCall) (any, error) { return c.Stage, nil },
		},
		{
			Name: "launcher", Phases: tasks.PhaseTask,
			Params: []tasks.Param{{Name: "count", Kind: tasks.KindInt}},
			Call: func(c *tasks.BuiltinCall) (any, error) {
				r.record(c)
				host := ""
				if c.Host != nil {
					host = c.Host.Host.Name
				}
				return map[string]any{"task": c.Task.Task.Name, "count": c.Int("count"), "dry_run": c.Task.DryRun(), "host": host}, nil
			},
		},
		{
			Name: "lazy_only", Phases: tasks.PhaseLazy,
			Call: func(c *tasks.BuiltinCall) (any, error) { return "computed lazily", nil },
		},
		{
			Name: "convert", Phases: tasks.PhaseAny,
			Params: []tasks.Param{
				{Name: "s", Kind: tasks.KindString}, {Name: "n", Kind: tasks.KindInt}, {Name: "f", Kind: tasks.KindFloat},
				{Name: "b", Kind: tasks.KindBool}, {Name: "l", Kind: tasks.KindList}, {Name: "ss", Kind: tasks.KindStrings},
				{Name: "d", Kind: tasks.KindDict}, {Name: "dur", Kind: tasks.KindDuration}, {Name: "a"},
				{Name: "opt", Optional: true, Kind: tasks.KindString},
			},
			Call: func(c *tasks.BuiltinCall) (any, error) {
				r.record(c)
				out := map[string]any{}
				for k, v := range c.Args {
					out[k] = v
				}
				out["dur"] = c.Duration("dur").Seconds()
				return out, nil
			},
		},
		{
			Name: "tag", Phases: tasks.PhaseAny, ExtraKeywords: true,
			Params: []tasks.Param{{Name: "name", Kind: tasks.KindString}, {Name: "value", Optional: true}},
			Call:   func(c *tasks.BuiltinCall) (any, error) { return c.Extra, nil },
		},
		{
			Name: "quota", Phases: tasks.PhaseAny,
			Call: func(c *tasks.BuiltinCall) (any, error) {
				return nil, fmt.Errorf("launch: %w", &quotaError{"eu-west-1"})
			},
		},
		{
			Name: "odd_result", Phases: tasks.PhaseAny,
			Call: func(c *tasks.BuiltinCall) (any, error) { return struct{}{}, nil },
		},
	}
}

func (r *awsRecipe) SetDefaults(*tasks.Vars)             {}
func (r *awsRecipe) DefineTasks(*tasks.Registry) error   { return nil }
func (r *awsRecipe) RegisterHooks(*tasks.Registry) error { return nil }
func (r *awsRecipe) Builtins() []tasks.Builtin           { return r.builtins() }

// awsOptions offers the fake recipe as "aws"; made counts its
// constructions.
func awsOptions(made *int, r *awsRecipe) func(*Options) {
	return withRecipes(map[string]func() tasks.Recipe{
		"aws":    func() tasks.Recipe { *made++; return r },
		"deploy": recipes.Go()["deploy"],
	})
}

func newAWS() *awsRecipe {
	return &awsRecipe{asked: &atomic.Int32{}, calls: make(chan *tasks.BuiltinCall, 16)}
}

func loadAWSErr(t *testing.T, src string) error {
	t.Helper()
	path, _ := writeDeployfile(t, src)
	made := 0
	o := Options{Version: "1.4.0", Recipes: recipes.Starlark()}
	awsOptions(&made, newAWS())(&o)
	_, err := Load(context.Background(), path, o)
	if err == nil {
		t.Fatal("load succeeded")
	}
	return err
}

func TestRecipeBuiltinNeedsUse(t *testing.T) {
	err := loadAWSErr(t, "set(\"a\", 1)\n\nec2_servers(\"eu-west-1\")\nuse(\"aws\")\n")
	contains(t, err, `Deployfile:3:12: ec2_servers() comes with recipe "aws": add use("aws") before this line`)
	if strings.Contains(err.Error(), "ec2_servers: ec2_servers()") {
		t.Errorf("name repeated: %v", err)
	}
}

func TestRecipeBuiltinHostSources(t *testing.T) {
	r := newAWS()
	made := 0
	p, _ := load(t, `
use("aws")
use("aws")
ec2_servers("eu-west-1", tags = {"App": "payroll"})
def production():
    ec2_servers(region = "us-east-1")
    set("seen_stage", stage_name())
stage("production", production)
stage("staging", lambda: ec2_servers("eu-central-1"))
`, awsOptions(&made, r))
	if made != 1 {
		t.Errorf("recipe made %d times; want once, and use() installing that instance", made)
	}
	if err := p.UseStage("production"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.HostSources() {
		got = append(got, s.Name()+": "+s.Describe())
	}
	want := []string{"ec2: instances in eu-west-1 tagged map[App:payroll]", "ec2: instances in us-east-1 tagged map[]"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sources %q, want %q", got, want)
	}
	if n := r.asked.Load(); n != 0 {
		t.Errorf("recording asked the sources %d times", n)
	}
	if s, _ := p.Vars().FetchString("seen_stage"); s != "production" {
		t.Errorf("stage_name() = %q", s)
	}
	first := <-r.calls
	if first.Phase != tasks.PhaseLoad || first.Task != nil || first.Ctx == nil || !strings.HasSuffix(first.Pos.String(), "Deployfile:4:12") {
		t.Errorf("top-level call: phase %v, task %v, ctx %v, pos %s", first.Phase, first.Task, first.Ctx, first.Pos)
	}
	if second := <-r.calls; second.Phase != tasks.PhaseStage || second.Stage != "production" {
		t.Errorf("stage call: phase %v, stage %q", second.Phase, second.Stage)
	}
}

func TestRecipeBuiltinPhases(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"use(\"aws\")\nlauncher(1)\n", "Deployfile:2:9: launcher() can only be called inside a task"},
		{"use(\"aws\")\nstage_name()\n", "Deployfile:2:11: stage_name() can only be called in a stage function"},
		{"use(\"aws\")\nlazy_only()\n", "lazy_only() can only be called in a lazy value"},
		{"use(\"aws\")\nstage(\"s\", lambda: launcher(1))\nset(\"x\", lambda: stage_name())\nfetch(\"x\")\n", "stage_name() can only be called in a stage function"},
	} {
		contains(t, loadAWSErr(t, c.src), c.want)
	}

	r := newAWS()
	made := 0
	p, _ := load(t, `
use("aws")
set("lazy", lambda: lazy_only())
def deploy(ctx):
    got = launcher(3)
    if got != {"task": "deploy", "count": 3, "dry_run": False, "host": ""}:
        fail("launcher returned %r" % got)
    on("app", lambda h: set("on_host", launcher(count = 1)["host"]))
    set("lazy_seen", fetch("lazy"))
    ec2_servers("eu-west-1")
task("deploy", deploy)
`, awsOptions(&made, r))
	ex, _ := executor(t, p)
	ex.Hosts = []*deploy.Host{{Name: "localhost", Roles: []string{"app"}}}
	err := ex.Invoke(context.Background(), "deploy")
	contains(t, err, "Deployfile:10:16: ec2_servers() can only be called at the top level or in a stage function")
	for name, want := range map[string]string{"on_host": "localhost", "lazy_seen": "computed lazily"} {
		if s, _ := p.Vars().FetchString(name); s != want {
			t.Errorf("%s = %q, want %q", name, s, want)
		}
	}
	c := <-r.calls
	if c.Phase != tasks.PhaseTask || c.Task == nil || c.Host != nil || c.Ctx == nil {
		t.Errorf("task call: phase %v, task %v, host %v", c.Phase, c.Task, c.Host)
	}
	if c := <-r.calls; c.Host == nil || c.Host.Host.Name != "localhost" {
		t.Errorf("call in on(): host %v", c.Host)
	}
}

func TestRecipeBuiltinConversion(t *testing.T) {
	r := newAWS()
	made := 0
	p, _ := load(t, `
use("aws")
got = convert("x", 7, 2, True, [1, "two", [3]], ("a", "b"), {"k": {"n": None}}, 1.5, a = None)
want = {"s": "x", "n": 7, "f": 2.0, "b": True, "l": [1, "two", [3]], "ss": ["a", "b"],
        "d": {"k": {"n": None}}, "dur": 1.5, "a": None}
if got != want:
    fail("round trip: %r" % got)
one = convert("x", 7, 2.5, False, [], "single", {}, 0, a = {"x": 1}, opt = None)
if one["ss"] != ["single"] or "opt" in one or one["f"] != 2.5:
    fail("one: %r" % one)
set("extra", tag("web", az = "eu-1a", weight = 2))
`, awsOptions(&made, r))
	c := <-r.calls
	wantArgs := map[string]any{"s": "x", "n": 7, "f": 2.0, "b": true, "l": []any{1, "two", []any{3}}, "ss": []string{"a", "b"},
		"d": map[string]any{"k": map[string]any{"n": nil}}, "dur": 1500 * time.Millisecond, "a": nil}
	if !reflect.DeepEqual(c.Args, wantArgs) {
		t.Errorf("Go arguments\n got %#v\nwant %#v", c.Args, wantArgs)
	}
	if extra, _ := p.Vars().Fetch("extra"); !reflect.DeepEqual(extra, map[string]any{"az": "eu-1a", "weight": 2}) {
		t.Errorf("extra keywords = %#v", extra)
	}

	for _, c := range []struct{ src, want string }{
		{`convert(1, 7, 2, True, [], [], {}, 1, a = 1)`, "Deployfile:2:8: convert: argument s: want a string, got int"},
		{`convert("x", 7, 2, True, [], [1], {}, 1, a = 1)`, "convert: argument ss: element 0 is a int; want a string"},
		{`convert("x", True, 2, True, [], [], {}, 1, a = 1)`, "convert: argument n: want an int, got bool"},
		{`convert("x", 7, 2, True, [], [], {}, True, a = 1)`, "convert: argument dur: want seconds (a number), got bool"},
		{`convert("x", 7, 2, True, [], [], {1: 2}, 1, a = 1)`, "convert: argument d: a dict (or a value inside it) has no Go form"},
		{`convert("x", 7, 2, True, [], [], {}, 1)`, "convert: missing argument for a"},
		{`convert("x", 7, 2, True, [], [], {}, 1, a = 1, otp = "")`, "convert: unexpected keyword argument otp (did you mean opt?)"},
		{`convert("x", 7, 2, True, [], [], {}, 1, 1, "", 3)`, "convert: takes at most 10 positional arguments (11 given)"},
		{`convert("x", 7, 2, True, [], [], {}, 1, 1, s = "y")`, "convert: got multiple values for parameter s"},
		{`convert("x", 7, 2, True, [], [], {}, 1, a = lambda: 1)`, "convert: argument a: a function (or a value inside it) has no Go form"},
		{`tag("web", nme = "x")`, "tag: unknown keyword nme (did you mean name?); other keywords are passed to tag() as extra arguments"},
		{`odd_result()`, "odd_result: result: a Go struct {} has no Deployfile form"},
	} {
		contains(t, loadAWSErr(t, "use(\"aws\")\n"+c.src+"\n"), c.want)
	}
}

func TestRecipeBuiltinErrorPosition(t *testing.T) {
	err := loadAWSErr(t, "use(\"aws\")\ndef f():\n    quota()\nf()\n")
	contains(t, err, "Deployfile:3:10: quota: launch: instance quota exceeded in eu-west-1", "Traceback")
	var qe *quotaError
	if !errors.As(err, &qe) || qe.region != "eu-west-1" {
		t.Errorf("the recipe's error is not reachable: %T", err)
	}
}

func TestRecipeBuiltinDeclarationErrors(t *testing.T) {
	call := func(*tasks.BuiltinCall) (any, error) { return nil, nil }
	b := func(name string, params ...tasks.Param) tasks.Builtin {
		return tasks.Builtin{Name: name, Params: params, Phases: tasks.PhaseAny, Call: call}
	}
	for _, c := range []struct {
		recipes map[string]func() tasks.Recipe
		want    string
	}{
		{map[string]func() tasks.Recipe{"a": recipeOf(b("shared")), "b": recipeOf(b("shared"))}, `recipes "a" and "b" both declare builtin shared()`},
		{map[string]func() tasks.Recipe{"a": recipeOf(b("set"))}, `recipe "a": builtin set() has the name of a core builtin`},
		{map[string]func() tasks.Recipe{"a": recipeOf(b("len"))}, `recipe "a": builtin len() has the name of a core builtin`},
		{map[string]func() tasks.Recipe{"a": recipeOf(b("x", tasks.Param{Name: "p", Kind: "strng"}))}, `recipe "a": builtin x: parameter p: unknown kind "strng" (did you mean string?)`},
		{map[string]func() tasks.Recipe{"a": recipeOf(b("x", tasks.Param{Name: "p", Optional: true}, tasks.Param{Name: "q"}))}, "required parameter q follows an optional one"},
		{map[string]func() tasks.Recipe{"a": recipeOf(b("x"), b("x"))}, "builtin x is declared twice"},
		{map[string]func() tasks.Recipe{"a": recipeOf(b("no-dash"))}, `builtin "no-dash": the name must be an identifier`},
		{map[string]func() tasks.Recipe{"a": recipeOf(tasks.Builtin{Name: "x", Call: call})}, "builtin x: no phase to call it in"},
	} {
		path, _ := writeDeployfile(t, "")
		_, err := Load(context.Background(), path, Options{GoRecipes: c.recipes})
		contains(t, err, c.want)
	}
}

func TestServerKeywordTypos(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{`server("app1", role = ["web"])`, "server: unknown keyword role (did you mean roles?); other keywords become host properties"},
		{`server("app1", prt = 22)`, "unknown keyword prt (did you mean port?)"},
		{`role("web", ["app1"], host = "x")`, "role: unknown keyword host (did you mean hosts?)"},
	} {
		contains(t, loadErr(t, c.src), c.want)
	}
	// Keywords further from every parameter stay properties.
	p, _ := load(t, `server("app1", roles = ["web"], rack = "r1", zone = "a")`)
	if h := p.Hosts()[0]; h.Props["rack"] != "r1" || h.Props["zone"] != "a" {
		t.Errorf("properties %v", h.Props)
	}
}

// Many threads computing overlapping chains of lazy values, two of which
// need each other: every fetch ends (none deadlocks), the cycle is
// reported as a cycle, and the rest get their values. The shared chain map
// this replaced let one fetch's chain overwrite another's, so the two
// halves of the cycle computed on different threads waited for each other
// forever.
func TestLazyCycleAcrossThreads(t *testing.T) {
	r := newAWS()
	var both sync.WaitGroup
	both.Add(2)
	r2 := &rendezvousRecipe{awsRecipe: r, wg: &both}
	made := 0
	p, _ := load(t, `
use("aws")
def a():
    meet()
    return fetch("b")
def b():
    meet()
    return fetch("a")
set("a", a)
set("b", b)
set("c", lambda: fetch("a"))
set("d", lambda: fetch("b"))
set("base", lambda: "x")
set("e", lambda: fetch("base") + fetch("f"))
set("f", lambda: fetch("base") + "f")
`, withRecipes(map[string]func() tasks.Recipe{"aws": func() tasks.Recipe { made++; return r2 }}))
	names := []string{"c", "d", "a", "b", "e", "f"}
	errs := make(chan error, 40)
	for i := range 40 {
		go func() {
			name := names[i%len(names)]
			v, err := p.Vars().Fetch(name)
			switch want := map[string]string{"e": "xxf", "f": "xf"}[name]; {
			case want != "" && (err != nil || v != want):
				errs <- fmt.Errorf("%s = %v, %v; want %s", name, v, err, want)
			case want == "" && (err == nil || !strings.Contains(err.Error(), "variable cycle: ")):
				errs <- fmt.Errorf("%s = %v, %v; want a cycle error", name, v, err)
			default:
				errs <- nil
			}
		}()
	}
	for range 40 {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("deadlock: fetches of a lazy cycle on two threads never returned")
		}
	}
	_, err := p.Vars().Fetch("a")
	contains(t, err, "variable cycle: ")
	if msg := err.Error(); !strings.Contains(msg, "a -> b -> a") && !strings.Contains(msg, "b -> a -> b") {
		t.Errorf("cycle not named: %v", msg)
	}
}

// rendezvousRecipe adds meet(): each of two lazy computations waits there
// for the other, so both halves of a cycle are under way at once.
type rendezvousRecipe struct {
	*awsRecipe
	wg *sync.WaitGroup
}

func (r *rendezvousRecipe) Builtins() []tasks.Builtin {
	return []tasks.Builtin{{Name: "meet", Phases: tasks.PhaseLazy, Call: func(*tasks.BuiltinCall) (any, error) {
		r.wg.Done()
		r.wg.Wait()
		return nil, nil
	}}}
}
