package recipes_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/deploy/output/outputtest"
	"github.com/davit-deploy/davit/recipes"
	"github.com/davit-deploy/davit/tasks/run"
)

const appRecipes = `
use("deploy")
load("davit/rails.star", "rails")
load("davit/mongrel.star", "mongrel")
load("davit/puma.star", "puma")
load("davit/systemd.star", "systemd")
load("davit/delayed_job.star", "delayed_job", "delayed_job_workers_for")
set("application", "payroll")
set("deploy_to", "/home/payroll")
set("repo_url", "file:///srv/svn/payroll/trunk")
set("scm", "svn")
server("app1", roles = ["app", "web"], instance_type = "m1.small")
server("db1", roles = ["db"], primary = True)
server("job1", roles = ["job"], instance_type = "m1.large")
server("job2", roles = ["job"], instance_type = "c5.large")
server("job3", roles = ["job"])
`

// runTasks runs tasks of a Deployfile (dry or not) and returns what each
// host reported, as "[host] line".
func runTasks(t *testing.T, src string, dry bool, overrides map[string]string, names ...string) []string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "Deployfile")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := &outputtest.Recorder{}
	ctx := context.Background()
	r, err := run.Load(ctx, run.Config{Deployfile: path, Recipes: recipes.Starlark(), GoRecipes: recipes.Go(),
		Overrides: overrides, DryRun: dry, Terminal: rec, LogPath: filepath.Join(dir, "davit.log")})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check(names...); err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(ctx, names...); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, ev := range rec.Of(output.Message) {
		lines = append(lines, "["+ev.Host+"] "+ev.Line)
	}
	return lines
}

// commands are the dry run's "would run" lines of one host, the shell
// block's braces left out.
func commands(lines []string, host string) []string {
	var out []string
	for _, l := range lines {
		if c, ok := strings.CutPrefix(l, "["+host+"] would run: "); ok {
			out = append(out, strings.TrimSuffix(c, "\n}"))
		}
	}
	return out
}

func TestRailsCommands(t *testing.T) {
	lines := runTasks(t, appRecipes, true, nil, "rails:bundle", "rails:assets", "rails:migrate", "rails:restart")
	want := map[string][]string{
		"app1": {
			"cd /home/payroll/current && export BUNDLE_DEPLOYMENT=1 BUNDLE_PATH=/home/payroll/shared/bundle BUNDLE_WITHOUT=development:test RAILS_ENV=production && { bundle install --jobs 4 --quiet",
			"cd /home/payroll/current && export RAILS_ENV=production && { bundle exec rake assets:precompile",
		},
		"db1": {
			"cd /home/payroll/current && export BUNDLE_DEPLOYMENT=1 BUNDLE_PATH=/home/payroll/shared/bundle BUNDLE_WITHOUT=development:test RAILS_ENV=production && { bundle install --jobs 4 --quiet",
			"cd /home/payroll/current && export RAILS_ENV=production && { bundle exec rake db:migrate",
		},
		"job1": {
			"cd /home/payroll/current && export BUNDLE_DEPLOYMENT=1 BUNDLE_PATH=/home/payroll/shared/bundle BUNDLE_WITHOUT=development:test RAILS_ENV=production && { bundle install --jobs 4 --quiet",
		},
	}
	for host, cmds := range want {
		if got := commands(lines, host); !slices.Equal(got, cmds) {
			t.Errorf("%s ran %q\nwant %q", host, got, cmds)
		}
	}
	// Variables change the commands; a restart command makes rails:restart
	// run it; assets can be turned off.
	lines = runTasks(t, appRecipes, true, map[string]string{
		"bundle": "/opt/ruby/bin/bundle", "rails_env": "staging", "rails_restart_command": "touch tmp/restart.txt",
		"rails_assets": "false", "bundle_flags": "--local",
	}, "rails:bundle", "rails:assets", "rails:restart")
	if got := commands(lines, "app1"); !slices.Equal(got, []string{
		"cd /home/payroll/current && export BUNDLE_DEPLOYMENT=1 BUNDLE_PATH=/home/payroll/shared/bundle BUNDLE_WITHOUT=development:test RAILS_ENV=staging && { /opt/ruby/bin/bundle install --local",
		"cd /home/payroll/current && export RAILS_ENV=staging && { touch tmp/restart.txt",
	}) {
		t.Errorf("app1 ran %q", got)
	}
	if !slices.Contains(lines, "[] rails:assets: off (rails_assets = False)") {
		t.Errorf("rails:assets did not say it is off:\n%s", strings.Join(lines, "\n"))
	}
}

func TestAppServerCommands(t *testing.T) {
	lines := runTasks(t, appRecipes, true, nil, "mongrel:start", "mongrel:restart", "mongrel:stop", "systemd:restart", "puma:stop")
	want := []string{
		"cd /home/payroll/current && { mongrel_rails cluster::start -C /home/payroll/current/config/mongrel_cluster.yml",
		"cd /home/payroll/current && { mongrel_rails cluster::restart -C /home/payroll/current/config/mongrel_cluster.yml",
		"cd /home/payroll/current && { mongrel_rails cluster::stop -C /home/payroll/current/config/mongrel_cluster.yml",
		"sudo -n systemctl restart payroll.service",
		`export PUMA_LOG=/home/payroll/shared/log/puma.log PUMA_PID=/home/payroll/shared/tmp/pids/puma.pid PUMA_SIGNAL=USR2 && { test -f "$PUMA_PID" && kill -0 "$(cat "$PUMA_PID")" 2>/dev/null && kill -TERM "$(cat "$PUMA_PID")" || true`,
	}
	if got := commands(lines, "app1"); !slices.Equal(got, want) {
		t.Errorf("app1 ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, h := range []string{"db1", "job1"} {
		if got := commands(lines, h); len(got) > 0 {
			t.Errorf("%s ran %q", h, got)
		}
	}
}

// delayed_job's worker count comes from the instance type (the original's
// 2 per ECU, then 2 per vCPU), or from delayed_job_workers.
func TestDelayedJobWorkers(t *testing.T) {
	lines := runTasks(t, appRecipes, true, nil, "delayed_job:start")
	for host, n := range map[string]string{"job1": "8", "job2": "4", "job3": "2"} {
		want := "cd /home/payroll/current && export RAILS_ENV=production && { script/delayed_job -n " + n + " start"
		if got := commands(lines, host); !slices.Equal(got, []string{want}) {
			t.Errorf("%s ran %q, want %q", host, got, want)
		}
	}
	if !slices.Contains(lines, "[job1] 8 delayed_job workers (m1.large)") {
		t.Errorf("no report of job1's workers:\n%s", strings.Join(lines, "\n"))
	}
	lines = runTasks(t, appRecipes, true, map[string]string{"delayed_job_workers": "3", "delayed_job_command": "bin/delayed_job"}, "delayed_job:restart")
	for _, host := range []string{"job1", "job2", "job3"} {
		want := "cd /home/payroll/current && export RAILS_ENV=production && { bin/delayed_job -n 3 restart"
		if got := commands(lines, host); !slices.Equal(got, []string{want}) {
			t.Errorf("%s ran %q, want %q", host, got, want)
		}
	}

	table := appRecipes + `
def table(ctx):
    for t in ["m1.small", "m1.medium", "m1.large", "m1.xlarge", "c1.xlarge", "m2.4xlarge", "t1.micro",
              "c5.large", "m5.xlarge", "c5.4xlarge", "m5.24xlarge", "m6g.medium", "t3.micro", "t3.large", "t2.micro",
              "t2.medium", "m5.metal", "weird", ""]:
        info("%s=%d" % (t, delayed_job_workers_for(t)))
task("table", table)
`
	got := runTasks(t, table, true, nil, "table")
	want := []string{"m1.small=2", "m1.medium=4", "m1.large=8", "m1.xlarge=16", "c1.xlarge=40", "m2.4xlarge=52", "t1.micro=2",
		"c5.large=4", "m5.xlarge=8", "c5.4xlarge=32", "m5.24xlarge=192", "m6g.medium=2", "t3.micro=4", "t3.large=4", "t2.micro=2",
		"t2.medium=4", "m5.metal=2", "weird=2", "=2"}
	for i := range want {
		want[i] = "[] " + want[i]
	}
	if !slices.Equal(got, want) {
		t.Errorf("table:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Run for real on this machine, puma starts a process in the background
// that outlives the task, finds it running on the next start, restarts it
// with a signal, and stops it; the commands come from variables.
func TestPumaLocal(t *testing.T) {
	dir := t.TempDir()
	current := filepath.Join(dir, "current")
	os.MkdirAll(filepath.Join(current, "config"), 0o755)
	fake := filepath.Join(dir, "fake-puma")
	// A stand-in puma: records its arguments and each USR2, runs until TERM.
	os.WriteFile(fake, []byte("#!/bin/sh\necho \"args: $*\" >> \"$PUMA_LOG.calls\"\ntrap 'echo usr2 >> \"$PUMA_LOG.calls\"' USR2\ntrap 'echo term >> \"$PUMA_LOG.calls\"; exit 0' TERM\necho $$ > \"$PUMA_PID\"\nwhile :; do sleep 0.1; done\n"), 0o755)
	src := `
use("deploy")
load("davit/puma.star", "puma")
set("deploy_to", "` + dir + `")
server("localhost", roles = ["app"])
`
	vars := map[string]string{"puma": fake}
	runTasks(t, src, false, vars, "puma:start")
	calls := filepath.Join(dir, "shared", "log", "puma.log.calls")
	waitFor(t, calls, "args: -C "+current+"/config/puma.rb -e production --pidfile "+dir+"/shared/tmp/pids/puma.pid\n")
	if lines := runTasks(t, src, false, vars, "puma:start"); !slices.Contains(lines, "[localhost] puma is running") {
		t.Errorf("second start:\n%s", strings.Join(lines, "\n"))
	}
	runTasks(t, src, false, vars, "puma:restart")
	waitFor(t, calls, "usr2\n")
	runTasks(t, src, false, vars, "puma:stop")
	// The stand-in exits on TERM (after saying so).
	waitFor(t, calls, "term\n")
}

func waitFor(t *testing.T, path, suffix string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if b, _ := os.ReadFile(path); strings.HasSuffix(string(b), suffix) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("%s: %q does not end with %q", path, b, suffix)
}
