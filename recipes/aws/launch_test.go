package aws_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/deploy/output/outputtest"
	"github.com/davit-deploy/davit/recipes"
	"github.com/davit-deploy/davit/recipes/aws"
	"github.com/davit-deploy/davit/recipes/aws/awstest"
	"github.com/davit-deploy/davit/tasks"
	"github.com/davit-deploy/davit/tasks/run"
)

// refuseOutsideLoopback is the welcome wait's dialer in tests: an address
// EC2 reports (10.x) is never dialled.
func refuseOutsideLoopback(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("test dialer: refusing non-loopback address %s", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func fleetRecipes() map[string]func() tasks.Recipe {
	rs := recipes.Go()
	rs["aws"] = func() tasks.Recipe { return aws.NewWithConfig(loopbackOnly()...).WithDialer(refuseOutsideLoopback) }
	return rs
}

// welcomePage says "Welcome" from the nth request on (never when n is 0),
// and calls onHit with each request's number.
type welcomePage struct {
	srv   *httptest.Server
	hits  atomic.Int32
	from  int32
	onHit func(n int32)
}

func newWelcome(t *testing.T, from int32) *welcomePage {
	p := &welcomePage{from: from}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := p.hits.Add(1)
		if p.onHit != nil {
			p.onHit(n)
		}
		if p.from > 0 && n >= p.from {
			fmt.Fprint(w, "<h1>Welcome to payroll</h1>")
			return
		}
		fmt.Fprint(w, "<h1>Booting…</h1>")
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *welcomePage) port() string { return p.srv.URL[strings.LastIndex(p.srv.URL, ":")+1:] }

// fleetDeployfile: app behind a classic ELB with its welcome page,
// worker in an ELBv2 target group with no page to wait for.
func fleetDeployfile(t *testing.T, page *welcomePage, appTimeout float64, extra string) string {
	return writeDeployfile(t, fmt.Sprintf(`
use("aws")
set("health_check_url", {"app": "http://{host}:%s/"})
set("launch_poll_interval", 0.02)
set("launch_try_timeout", 1)
set("revision", "abc123")
%s
def production():
    ec2_servers(tags = {"App": "payroll", "Env": "production"})
    launcher("app", ami = "ami-0abc", instance_type = "t3.small", key_name = "deploy",
             security_groups = ["sg-0aa", "web"], subnets = ["subnet-a", "subnet-b"],
             iam_profile = "payroll-app", tags = {"Team": "pay"}, user_data = {"DB": "10.0.0.5"},
             elb = "payroll-web", launch_timeout = %v)
    launcher("worker", launch_template = "payroll-worker", target_group = "payroll-workers", launch_timeout = 5)
stage("production", production)
`, page.port(), extra, appTimeout))
}

// newFleet starts the AWS test server with the load balancers, instances
// answering on 127.0.0.1.
func newFleet(t *testing.T) (*awstest.Server, string) {
	srv := awstest.NewServer(t)
	awsEnv(t, srv)
	srv.SetAddresses(func(int) string { return "127.0.0.1" })
	srv.SetDelays(60*time.Millisecond, 60*time.Millisecond)
	srv.AddLoadBalancer("payroll-web", awstest.Balancing{HealthyAfter: 60 * time.Millisecond, DrainFor: 150 * time.Millisecond})
	arn := srv.AddTargetGroup("payroll-workers", awstest.Balancing{HealthyAfter: 60 * time.Millisecond, DrainFor: 150 * time.Millisecond})
	return srv, arn
}

type result struct {
	err   error
	lines []string // messages, "level: line"
}

func (r result) has(sub string) bool {
	return slices.ContainsFunc(r.lines, func(l string) bool { return strings.Contains(l, sub) })
}

func runFleet(t *testing.T, ctx context.Context, path string, dry bool, task string, args ...string) result {
	t.Helper()
	over := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		over[k] = v
	}
	rec := &outputtest.Recorder{}
	r, err := run.Load(ctx, run.Config{Deployfile: path, Terminal: rec, GoRecipes: fleetRecipes(), Overrides: over, DryRun: dry})
	if err != nil {
		return result{err: err}
	}
	if err := r.UseStage(ctx, "production"); err != nil {
		return result{err: err}
	}
	if err := r.Check(task); err != nil {
		return result{err: err}
	}
	err = r.Execute(ctx, task)
	var lines []string
	for _, ev := range rec.Of(output.Message) {
		lines = append(lines, ev.Level+": "+ev.Line)
	}
	return result{err: err, lines: lines}
}

// live is the instances not shutting down or gone.
func live(srv *awstest.Server) []awstest.Instance {
	var out []awstest.Instance
	for _, in := range srv.Instances() {
		if in.State == "pending" || in.State == "running" {
			out = append(out, in)
		}
	}
	return out
}

func index(actions []string, a string) int { return slices.Index(actions, a) }

func TestLaunchWaitsForWelcomeThenRegisters(t *testing.T) {
	srv, _ := newFleet(t)
	page := newWelcome(t, 3)
	res := runFleet(t, context.Background(), fleetDeployfile(t, page, 5, ""), false, "launch", "role=app")
	if res.err != nil {
		t.Fatalf("launch: %v\n%s", res.err, strings.Join(res.lines, "\n"))
	}
	ins := live(srv)
	if len(ins) != 1 || ins[0].State != "running" {
		t.Fatalf("instances: %+v", srv.Instances())
	}
	in := ins[0]
	if got := page.hits.Load(); got != 3 {
		t.Errorf("welcome page asked %d times; want 3 (welcome on the 3rd)", got)
	}
	for k, want := range map[string]string{"App": "payroll", "Env": "production", "Role": "app", "Team": "pay"} {
		if in.Tags[k] != want {
			t.Errorf("tag %s = %q; want %q", k, in.Tags[k], want)
		}
	}
	if !strings.Contains(in.Tags["davit:launched-by"], "@") || !strings.HasPrefix(in.Tags["Name"], "production-app-") {
		t.Errorf("davit's tags: %v", in.Tags)
	}
	launchedAt, err1 := time.Parse(time.RFC3339, in.Tags["davit:launched-at"])
	readyAt, err2 := time.Parse(time.RFC3339, in.Tags["davit:ready-at"])
	if err1 != nil || err2 != nil || readyAt.Before(launchedAt) {
		t.Errorf("launched-at %q, ready-at %q", in.Tags["davit:launched-at"], in.Tags["davit:ready-at"])
	}
	if got := in.UserDataText(); got != "DB=10.0.0.5;ROLE=app;STAGE=production;REVISION=abc123" {
		t.Errorf("user data %q", got)
	}
	if in.ImageID != "ami-0abc" || in.Type != "t3.small" || in.KeyName != "deploy" || in.SubnetID != "subnet-a" ||
		in.IamProfile != "payroll-app" || strings.Join(in.SecurityGroups, ",") != "sg-0aa,web" {
		t.Errorf("launched with %+v", in)
	}
	if reg := srv.Registered("payroll-web"); len(reg) != 1 || reg[0] != in.ID {
		t.Errorf("registered with payroll-web: %v", reg)
	}
	acts := srv.Actions()
	run, reg, health, tag := index(acts, "RunInstances"), index(acts, "RegisterInstancesWithLoadBalancer"), index(acts, "DescribeInstanceHealth"), index(acts, "CreateTags")
	if run < 0 || reg < run || health < reg || tag < health || slices.Contains(acts, "TerminateInstances") {
		t.Errorf("calls in order %v", acts)
	}
	// The tags travelled in the RunInstances call itself.
	form := srv.Requests()[run]
	if form.Get("TagSpecification.1.ResourceType") != "instance" {
		t.Errorf("RunInstances form %v", form)
	}
	for _, want := range []string{"launched i-", "is running at 127.0.0.1", "says \"welcome\" (try 3)", "is healthy in load balancer payroll-web", "is ready"} {
		if !res.has(want) {
			t.Errorf("no progress line with %q in:\n%s", want, strings.Join(res.lines, "\n"))
		}
	}
}

func TestLaunchWithoutWelcomeTerminatesAndNeverRegisters(t *testing.T) {
	srv, _ := newFleet(t)
	page := newWelcome(t, 0)
	res := runFleet(t, context.Background(), fleetDeployfile(t, page, 0.5, ""), false, "launch", "role=app")
	if res.err == nil || !strings.Contains(res.err.Error(), "Booting") || !strings.Contains(res.err.Error(), "terminated") {
		t.Fatalf("err = %v; want the welcome wait's last answer and that the instance was terminated", res.err)
	}
	if n := len(live(srv)); n != 0 {
		t.Errorf("%d instances left running", n)
	}
	acts := srv.Actions()
	if slices.Contains(acts, "RegisterInstancesWithLoadBalancer") || !slices.Contains(acts, "TerminateInstances") {
		t.Errorf("calls %v", acts)
	}
	if page.hits.Load() < 2 {
		t.Errorf("welcome page asked %d times", page.hits.Load())
	}
	if !res.has("so it was terminated") {
		t.Errorf("no word of the clean-up in:\n%s", strings.Join(res.lines, "\n"))
	}
}

func TestKeepOnFailureLeavesTheInstance(t *testing.T) {
	srv, _ := newFleet(t)
	page := newWelcome(t, 0)
	path := writeDeployfile(t, fmt.Sprintf(`
use("aws")
set("health_check_url", "http://{host}:%s/")
set("launch_poll_interval", 0.02)
stage("production", lambda: [ec2_servers(tags = {"App": "payroll"}),
    launcher("app", ami = "ami-0abc", instance_type = "t3.small", keep_on_failure = True, launch_timeout = 0.3)])
`, page.port()))
	res := runFleet(t, context.Background(), path, false, "launch", "role=app")
	if res.err == nil || !strings.Contains(res.err.Error(), "kept") {
		t.Fatalf("err = %v", res.err)
	}
	if n := len(live(srv)); n != 1 || slices.Contains(srv.Actions(), "TerminateInstances") {
		t.Errorf("%d live instances, calls %v; want the failed one kept", n, srv.Actions())
	}
}

func TestInterruptDuringWelcomeTerminates(t *testing.T) {
	srv, _ := newFleet(t)
	page := newWelcome(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	page.onHit = func(n int32) {
		if n == 2 {
			cancel() // Ctrl-C while the page still boots
		}
	}
	res := runFleet(t, ctx, fleetDeployfile(t, page, 30, ""), false, "launch", "role=app")
	if !errors.Is(res.err, context.Canceled) {
		t.Fatalf("err = %v; want an interrupted launch", res.err)
	}
	if n := len(live(srv)); n != 0 {
		t.Errorf("%d instances left running after Ctrl-C", n)
	}
	if acts := srv.Actions(); !slices.Contains(acts, "TerminateInstances") || slices.Contains(acts, "RegisterInstancesWithLoadBalancer") {
		t.Errorf("calls %v", acts)
	}
}

func TestFailedRunInstancesLeavesNothing(t *testing.T) {
	srv, _ := newFleet(t)
	srv.FailLaunches("InsufficientInstanceCapacity", "We currently do not have sufficient t3.small capacity in the Availability Zone you requested.")
	page := newWelcome(t, 1)
	res := runFleet(t, context.Background(), fleetDeployfile(t, page, 5, ""), false, "launch", "role=app")
	if res.err == nil || !strings.Contains(res.err.Error(), "InsufficientInstanceCapacity") {
		t.Fatalf("err = %v", res.err)
	}
	if n := len(srv.Instances()); n != 0 {
		t.Errorf("%d instances", n)
	}
}

// seedApp adds a base-fleet app server and two davit-launched ones, all
// registered with payroll-web.
func seedApp(srv *awstest.Server) {
	tags := func(extra map[string]string) map[string]string {
		m := map[string]string{"App": "payroll", "Env": "production", "Role": "app"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	srv.AddInstances(
		awstest.Instance{ID: "i-base", Type: "t3.small", LaunchTime: launched, PrivateIP: "127.0.0.21", Tags: tags(map[string]string{"Name": "web-base"})},
		awstest.Instance{ID: "i-older", Type: "t3.small", LaunchTime: launched, PrivateIP: "127.0.0.22",
			Tags: tags(map[string]string{"davit:launched-by": "alice@laptop", "davit:launched-at": "2024-03-01T09:00:00Z"})},
		awstest.Instance{ID: "i-newer", Type: "t3.small", LaunchTime: launched, PrivateIP: "127.0.0.23",
			Tags: tags(map[string]string{"davit:launched-by": "bob@cron", "davit:launched-at": "2024-03-02T09:00:00Z"})},
		// The newest of all, but not davit's: never a candidate.
		awstest.Instance{ID: "i-hand", Type: "t3.small", LaunchTime: launched.Add(48 * time.Hour), PrivateIP: "127.0.0.24",
			Tags: tags(map[string]string{"davit:launched-at": "2024-03-09T09:00:00Z"})},
	)
	srv.Register("payroll-web", "i-base", "i-older", "i-newer", "i-hand")
}

func TestTerminateDrainsTheNewestLaunchedFirst(t *testing.T) {
	srv, _ := newFleet(t)
	seedApp(srv)
	page := newWelcome(t, 1)
	res := runFleet(t, context.Background(), fleetDeployfile(t, page, 5, ""), false, "terminate", "role=app")
	if res.err != nil {
		t.Fatalf("terminate: %v", res.err)
	}
	states := map[string]string{}
	for _, in := range srv.Instances() {
		states[in.ID] = in.State
	}
	if states["i-newer"] == "running" || states["i-older"] != "running" || states["i-base"] != "running" || states["i-hand"] != "running" {
		t.Errorf("states %v; want only i-newer gone", states)
	}
	acts := srv.Actions()
	dereg, term := index(acts, "DeregisterInstancesFromLoadBalancer"), index(acts, "TerminateInstances")
	// The deregistered waiter succeeds only once the ELB no longer knows
	// the instance: the drain is over before TerminateInstances.
	if dereg < 0 || term < dereg || !slices.Contains(acts[dereg:term], "DescribeInstanceHealth") {
		t.Errorf("calls %v; want deregister, wait for draining, then terminate", acts)
	}
	if got := srv.Requests()[term].Get("InstanceId.1"); got != "i-newer" {
		t.Errorf("terminated %s", got)
	}
	if slices.Contains(srv.Registered("payroll-web"), "i-newer") {
		t.Errorf("i-newer still registered")
	}
}

func TestTerminateRefusesWithoutLaunchedInstances(t *testing.T) {
	srv, _ := newFleet(t)
	srv.AddInstances(awstest.Instance{ID: "i-base", PrivateIP: "127.0.0.21",
		Tags: map[string]string{"App": "payroll", "Env": "production", "Role": "app"}})
	page := newWelcome(t, 1)
	res := runFleet(t, context.Background(), fleetDeployfile(t, page, 5, ""), false, "terminate", "role=app")
	if res.err == nil || !strings.Contains(res.err.Error(), "no running instance that davit launched for role app") {
		t.Fatalf("err = %v", res.err)
	}
	if slices.Contains(srv.Actions(), "TerminateInstances") {
		t.Errorf("calls %v", srv.Actions())
	}
}

func TestScaleUpAndDownBehindATargetGroup(t *testing.T) {
	srv, arn := newFleet(t)
	srv.AddInstances(awstest.Instance{ID: "i-wbase", PrivateIP: "127.0.0.31",
		Tags: map[string]string{"App": "payroll", "Env": "production", "Role": "worker"}})
	srv.Throttle(2) // retried with the SDK's backoff
	page := newWelcome(t, 1)
	path := fleetDeployfile(t, page, 5, "")
	if res := runFleet(t, context.Background(), path, false, "scale", "role=worker", "count=3"); res.err != nil {
		t.Fatalf("scale up: %v\n%s", res.err, strings.Join(res.lines, "\n"))
	}
	ins := live(srv)
	if len(ins) != 3 {
		t.Fatalf("%d workers; want 3 (1 base, 2 launched)", len(ins))
	}
	if got := srv.Targets(arn); len(got) != 2 {
		t.Errorf("targets %v; want the 2 launched", got)
	}
	for _, in := range ins[1:] {
		if in.LaunchTemplate != "payroll-worker" || in.ImageID != "" || in.Tags["davit:ready-at"] == "" {
			t.Errorf("launched %+v", in)
		}
	}
	// Again: nothing to do.
	res := runFleet(t, context.Background(), path, false, "scale", "role=worker", "count=3")
	if res.err != nil || !res.has("nothing to do") {
		t.Fatalf("scale again: %v %q", res.err, res.lines)
	}
	newest := ins[2].ID
	if res := runFleet(t, context.Background(), path, false, "scale", "role=worker", "count=2"); res.err != nil {
		t.Fatalf("scale down: %v", res.err)
	}
	if got := srv.Targets(arn); len(got) != 1 || got[0] != ins[1].ID {
		t.Errorf("targets %v; want %s (the newest, %s, drained and gone)", got, ins[1].ID, newest)
	}
	res = runFleet(t, context.Background(), path, false, "scale", "role=worker", "count=0")
	if res.err != nil || !res.has("below the base fleet of 1") {
		t.Fatalf("scale to 0: %v %q", res.err, res.lines)
	}
	if ins := live(srv); len(ins) != 1 || ins[0].ID != "i-wbase" {
		t.Errorf("left %+v; want the base fleet alone", ins)
	}
	acts := srv.Actions()
	if index(acts, "DeregisterTargets") > index(acts, "TerminateInstances") {
		t.Errorf("terminated before deregistering: %v", acts)
	}
}

func TestDryRunSendsDryRunAndChangesNothing(t *testing.T) {
	srv, _ := newFleet(t)
	seedApp(srv)
	page := newWelcome(t, 1)
	path := fleetDeployfile(t, page, 5, "")
	for _, args := range [][]string{{"launch", "role=app", "count=2"}, {"terminate", "role=app"}, {"scale", "role=app", "count=5"}, {"scale", "role=app", "count=1"}} {
		res := runFleet(t, context.Background(), path, true, args[0], args[1:]...)
		if res.err != nil {
			t.Fatalf("%v: %v", args, res.err)
		}
		if !res.has("dry run:") {
			t.Errorf("%v said nothing of what it would do: %q", args, res.lines)
		}
	}
	for _, f := range srv.Requests() {
		switch a := f.Get("Action"); a {
		case "DescribeInstances":
		case "RunInstances", "TerminateInstances", "CreateTags":
			if f.Get("DryRun") != "true" {
				t.Errorf("%s sent without DryRun", a)
			}
		default:
			t.Errorf("dry run sent %s", a)
		}
	}
	if len(srv.Instances()) != 4 || len(live(srv)) != 4 || len(srv.Registered("payroll-web")) != 4 || page.hits.Load() != 0 {
		t.Errorf("the dry run changed the fleet: %+v", srv.Instances())
	}
}

func TestLBTasksOnDiscoveredHosts(t *testing.T) {
	srv, _ := newFleet(t)
	seedApp(srv)
	page := newWelcome(t, 1)
	path := fleetDeployfile(t, page, 5, "")
	res := runFleet(t, context.Background(), path, false, "lb:deregister")
	if res.err != nil {
		t.Fatalf("lb:deregister: %v", res.err)
	}
	if got := srv.Registered("payroll-web"); len(got) != 0 {
		t.Errorf("still registered: %v", got)
	}
	res = runFleet(t, context.Background(), path, false, "lb:register")
	if res.err != nil {
		t.Fatalf("lb:register: %v", res.err)
	}
	if got := srv.Registered("payroll-web"); len(got) != 4 {
		t.Errorf("registered: %v", got)
	}
	// Hosts in no role with a load balancer: said once, nothing sent.
	before := len(srv.Requests())
	none := writeDeployfile(t, `
use("aws")
stage("production", lambda: [server("localhost", roles = ["db"]), ec2_servers(tags = {"App": "nothing"}),
    launcher("app", ami = "ami-0abc", instance_type = "t3.small", elb = "payroll-web")])

def batches(ctx):
    for _ in range(3):
        reinvoke("lb:deregister")
        reinvoke("lb:register")
task("batches", batches)
`)
	res = runFleet(t, context.Background(), none, false, "lb:register")
	if res.err != nil || !res.has("nothing to do") {
		t.Fatalf("%v %q", res.err, res.lines)
	}
	// As a rolling deploy calls them, batch after batch: said once.
	res = runFleet(t, context.Background(), none, false, "batches")
	if n := strings.Count(strings.Join(res.lines, "\n"), "nothing to do"); res.err != nil || n != 1 {
		t.Fatalf("%d times: %v %q", n, res.err, res.lines)
	}
	for _, f := range srv.Requests()[before:] {
		if f.Get("Action") != "DescribeInstances" {
			t.Errorf("sent %s", f.Get("Action"))
		}
	}
}

func TestLauncherMistakesAreFoundBeforeAnythingRuns(t *testing.T) {
	srv, _ := newFleet(t)
	for _, c := range []struct{ stage, want string }{
		{`launcher("app", instance_type = "t3.small")`, "give ami= or launch_template="},
		{`launcher("app", ami = "0abc", instance_type = "t3.small", elb = "a", target_group = "b")`, "not an AMI id"},
		{`launcher("app", ami = "ami-1", instance_type = "t3.small", user_data = {"ROLE": "x"})`, "set by the launch itself"},
		{`launcher("app", ami = "ami-1", instance_type = "t3.small", launch_timeout = 0)`, "launch_timeout"},
	} {
		path := writeDeployfile(t, "use(\"aws\")\nstage(\"production\", lambda: [ec2_servers(tags = {\"App\": \"x\"}), "+c.stage+"])\n")
		res := runFleet(t, context.Background(), path, false, "launch", "role=app")
		if res.err == nil || !strings.Contains(res.err.Error(), c.want) || !strings.Contains(res.err.Error(), "Deployfile:2") {
			t.Errorf("%s: err = %v; want %q at the line", c.stage, res.err, c.want)
		}
	}
	path := writeDeployfile(t, `
use("aws")
stage("production", lambda: launcher("app", ami = "ami-1", instance_type = "t3.small"))
`)
	if res := runFleet(t, context.Background(), path, false, "launch", "role=app"); res.err == nil || !strings.Contains(res.err.Error(), "no ec2_servers") {
		t.Errorf("launcher without ec2_servers: %v", res.err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d AWS calls for Deployfiles with mistakes", n)
	}
}

func TestRevisionIsWhatTheFleetRuns(t *testing.T) {
	srv, _ := newFleet(t)
	// A role server deployed by the deploy recipe: current/REVISION.
	deployTo := t.TempDir()
	release := deployTo + "/releases/20240301093000"
	if err := os.MkdirAll(release, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(release+"/REVISION", []byte("f00dcafe\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(release, deployTo+"/current"); err != nil {
		t.Fatal(err)
	}
	path := writeDeployfile(t, fmt.Sprintf(`
use("deploy")
use("aws")
set("deploy_to", %q)
set("launch_poll_interval", 0.02)
def production():
    server("localhost", roles = ["worker"])
    ec2_servers(tags = {"App": "payroll", "Env": "production"})
    launcher("worker", ami = "ami-0abc", instance_type = "t3.small", user_data = "MODE=jobs")
stage("production", production)
`, deployTo))
	res := runFleet(t, context.Background(), path, false, "launch", "role=worker")
	if res.err != nil {
		t.Fatalf("launch: %v\n%s", res.err, strings.Join(res.lines, "\n"))
	}
	ins := live(srv)
	if len(ins) != 1 || ins[0].UserDataText() != "MODE=jobs;ROLE=worker;STAGE=production;REVISION=f00dcafe" {
		t.Fatalf("launched %+v", ins)
	}
	if !res.has("REVISION=f00dcafe (from localhost:" + deployTo + "/current/REVISION)") {
		t.Errorf("where REVISION came from is not said: %q", res.lines)
	}
}

func TestUnknownLoadBalancerFailsTheLaunchAndCleansUp(t *testing.T) {
	srv := awstest.NewServer(t)
	awsEnv(t, srv)
	srv.SetAddresses(func(int) string { return "127.0.0.1" })
	srv.SetDelays(20*time.Millisecond, 20*time.Millisecond)
	page := newWelcome(t, 1) // healthy at once; there is no payroll-web
	res := runFleet(t, context.Background(), fleetDeployfile(t, page, 5, ""), false, "launch", "role=app")
	if res.err == nil || !strings.Contains(res.err.Error(), "LoadBalancerNotFound") || !strings.Contains(res.err.Error(), "terminated") {
		t.Fatalf("err = %v", res.err)
	}
	if n := len(live(srv)); n != 0 {
		t.Errorf("%d instances left running", n)
	}
}
