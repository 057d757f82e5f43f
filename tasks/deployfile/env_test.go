package deployfile

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/davit-deploy/davit/deploy/output"
)

func fakeEnv(env map[string]string) func(*Options) {
	return func(o *Options) {
		o.Getenv = func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	}
}

func TestEnv(t *testing.T) {
	env := fakeEnv(map[string]string{"DEPLOY_BRANCH": "release", "GITHUB_TOKEN": "ghp-s3cret", "LICENSE_KEY": "lic-1", "EMPTY": ""})
	p, _ := load(t, `
set("branch", env("DEPLOY_BRANCH"))
set("missing", env("NOT_SET", default = None))
set("fallback", env("NOT_SET", "main"))
set("empty", env("EMPTY", "unused"))
set("gh", env("GITHUB_TOKEN"))
set("license", env("LICENSE_KEY", secret = True))
def t(ctx):
    set("in_task", env("DEPLOY_BRANCH"))
task("t", t)
`, env)
	checks := map[string]any{"branch": "release", "missing": nil, "fallback": "main", "empty": ""}
	for name, want := range checks {
		if got, err := p.Vars().Fetch(name); err != nil || got != want {
			t.Errorf("%s = %#v, %v; want %#v", name, got, err, want)
		}
	}
	// The token's variable is not named like a secret: the value is
	// secret because of the environment variable it came from.
	if got := p.Vars().SecretValues(); !reflect.DeepEqual(got, []string{"ghp-s3cret", "lic-1"}) {
		t.Errorf("SecretValues = %q", got)
	}
	ex, rec := executor(t, p)
	redact := output.NewRedactor(rec, p.Vars().SecretValues)
	ex.Sink = redact
	if err := ex.Invoke(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	if s, _ := p.Vars().FetchString("in_task"); s != "release" {
		t.Errorf("in_task = %q", s)
	}
	redact.Emit(output.Event{Kind: output.Message, Level: "info", Line: "token is ghp-s3cret"})
	for _, m := range rec.messages() {
		if strings.Contains(m, "ghp-s3cret") {
			t.Errorf("secret printed: %s", m)
		}
	}
	if m := rec.messages(); len(m) == 0 || !strings.Contains(m[len(m)-1], output.Redacted) {
		t.Errorf("messages %q", m)
	}

	path, _ := writeDeployfile(t, "set(\"a\", 1)\nset(\"key\", env(\"API_KEY\"))\n")
	o := Options{}
	fakeEnv(nil)(&o)
	_, err := Load(context.Background(), path, o)
	contains(t, err, "Deployfile:2:15: env: environment variable API_KEY is not set (give env() a default to make it optional)")
}

func TestEnvDefaultsToProcessEnvironment(t *testing.T) {
	t.Setenv("DAVIT_TEST_ENV", "from-process")
	p, _ := load(t, `set("v", env("DAVIT_TEST_ENV"))`)
	if s, _ := p.Vars().FetchString("v"); s != "from-process" {
		t.Errorf("v = %q", s)
	}
}

func TestCtxDryRun(t *testing.T) {
	src := `
def t(ctx):
    info("dry run: %s" % ctx.dry_run)
task("t", t)
`
	for _, dry := range []bool{false, true} {
		p, _ := load(t, src)
		ex, rec := executor(t, p)
		ex.DryRun = dry
		if err := ex.Invoke(context.Background(), "t"); err != nil {
			t.Fatal(err)
		}
		want := "info:dry run: False"
		if dry {
			want = "info:dry run: True"
		}
		if m := rec.messages(); !reflect.DeepEqual(m, []string{want}) {
			t.Errorf("DryRun %v: messages %q", dry, m)
		}
	}
}
