package aws_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/davit-deploy/davit/recipes/aws/awstest"
)

// queuePage answers the queue length it is set to, as the application's
// /queue/length does.
type queuePage struct {
	srv    *httptest.Server
	body   atomic.Value // string
	status atomic.Int32
	hits   atomic.Int32
}

func newQueue(t *testing.T, body string) *queuePage {
	q := &queuePage{}
	q.body.Store(body)
	q.status.Store(http.StatusOK)
	q.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q.hits.Add(1)
		w.WriteHeader(int(q.status.Load()))
		fmt.Fprint(w, q.body.Load().(string))
	}))
	t.Cleanup(q.srv.Close)
	return q
}

func jobDeployfile(t *testing.T, q *queuePage, autoscale string) string {
	return writeDeployfile(t, fmt.Sprintf(`
use("aws")
set("launch_poll_interval", 0.02)
set("launch_try_timeout", 1)
set("revision", "abc123")
def production():
    ec2_servers(tags = {"App": "payroll", "Env": "production"})
    launcher("job", launch_template = "payroll-job", launch_timeout = 5)
    autoscale("job", queue_url = "%s/queue/length", %s)
stage("production", production)
`, q.srv.URL, autoscale))
}

func jobTags(extra map[string]string) map[string]string {
	m := map[string]string{"App": "payroll", "Env": "production", "Role": "job"}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// seedJobs adds the base job server and, for each launch time given, a job
// server davit launched (ready a minute later).
func seedJobs(srv *awstest.Server, launchedAt ...time.Time) {
	srv.AddInstances(awstest.Instance{ID: "i-jbase", PrivateIP: "127.0.0.41", LaunchTime: launched, Tags: jobTags(nil)})
	for i, at := range launchedAt {
		srv.AddInstances(awstest.Instance{ID: fmt.Sprintf("i-job%d", i+1), PrivateIP: "127.0.0.42", LaunchTime: at,
			Tags: jobTags(map[string]string{"davit:launched-by": "cron@ops", "davit:launched-at": at.UTC().Format(time.RFC3339),
				"davit:ready-at": at.Add(time.Minute).UTC().Format(time.RFC3339)})})
	}
}

func liveIDs(srv *awstest.Server) []string {
	var out []string
	for _, in := range live(srv) {
		out = append(out, in.ID)
	}
	return out
}

func TestAutoscaleSeedLaunchesWhenHigh(t *testing.T) {
	srv, _ := newFleet(t)
	seedJobs(srv)
	q := newQueue(t, "30\n")
	res := runFleet(t, context.Background(), jobDeployfile(t, q, `policy = "seed"`), false, "autoscale", "role=job")
	if res.err != nil {
		t.Fatalf("autoscale: %v\n%s", res.err, strings.Join(res.lines, "\n"))
	}
	if !res.has("autoscale job (seed, 1 base): queue 30, servers 0 ready + 0 booting, rule: queue above 20, action: launch 1") {
		t.Errorf("no decision line:\n%s", strings.Join(res.lines, "\n"))
	}
	ins := live(srv)
	if len(ins) != 2 || ins[0].ID != "i-jbase" || ins[1].Tags["davit:launched-by"] == "" || ins[1].LaunchTemplate != "payroll-job" {
		t.Fatalf("instances %+v; want the base and one launched", ins)
	}
}

func TestAutoscaleSeedTerminatesNewestWhenLow(t *testing.T) {
	srv, _ := newFleet(t)
	now := time.Now()
	seedJobs(srv, now.Add(-3*time.Hour), now.Add(-50*time.Minute))
	q := newQueue(t, "2")
	path := jobDeployfile(t, q, `policy = "seed"`)
	res := runFleet(t, context.Background(), path, false, "autoscale", "role=job")
	if res.err != nil {
		t.Fatalf("autoscale: %v\n%s", res.err, strings.Join(res.lines, "\n"))
	}
	if !res.has("servers 2 ready + 0 booting, rule: queue below 5, action: terminate i-job2 (newest i-job2 up 50m") || !res.has(", more than 45m)") {
		t.Errorf("no decision line:\n%s", strings.Join(res.lines, "\n"))
	}
	if got := liveIDs(srv); !slices.Equal(got, []string{"i-jbase", "i-job1"}) {
		t.Fatalf("live %v; want the newest gone", got)
	}
	// Again: i-job1 goes too; then only the base fleet is left, never retired.
	if res := runFleet(t, context.Background(), path, false, "autoscale", "role=job"); res.err != nil {
		t.Fatal(res.err)
	}
	res = runFleet(t, context.Background(), path, false, "autoscale", "role=job")
	if res.err != nil || !res.has("rule: queue below 5, action: hold (no extra server runs)") {
		t.Fatalf("with only the base: %v\n%s", res.err, strings.Join(res.lines, "\n"))
	}
	if got := liveIDs(srv); !slices.Equal(got, []string{"i-jbase"}) {
		t.Fatalf("live %v; want the base fleet alone", got)
	}
	if n := strings.Count(strings.Join(srv.Actions(), " "), "TerminateInstances"); n != 2 {
		t.Errorf("%d TerminateInstances calls: %v", n, srv.Actions())
	}
}

func TestAutoscaleCountsBootingLaunches(t *testing.T) {
	srv, _ := newFleet(t)
	now := time.Now()
	seedJobs(srv, now.Add(-2*time.Hour), now.Add(-time.Hour))
	// A launch in progress: pending, no ready-at yet.
	srv.AddInstances(awstest.Instance{ID: "i-jboot", State: "pending", PrivateIP: "127.0.0.43", LaunchTime: now,
		Tags: jobTags(map[string]string{"davit:launched-by": "cron@ops", "davit:launched-at": now.UTC().Format(time.RFC3339)})})
	q := newQueue(t, "100")
	res := runFleet(t, context.Background(), jobDeployfile(t, q, `policy = "seed"`), false, "autoscale", "role=job")
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !res.has("queue 100, servers 2 ready + 1 booting, rule: queue above 20, action: hold (3 extra running, more than 2: no more launches)") {
		t.Errorf("decision:\n%s", strings.Join(res.lines, "\n"))
	}
	if slices.Contains(srv.Actions(), "RunInstances") {
		t.Errorf("launched: %v", srv.Actions())
	}
}

func TestAutoscaleNeverScalesOnBadQueueData(t *testing.T) {
	srv, _ := newFleet(t)
	now := time.Now()
	seedJobs(srv, now.Add(-3*time.Hour))
	q := newQueue(t, "<html>Service Unavailable</html>")
	path := jobDeployfile(t, q, `policy = "seed"`)
	check := func(want string) {
		t.Helper()
		res := runFleet(t, context.Background(), path, false, "autoscale", "role=job")
		if res.err != nil {
			t.Fatal(res.err)
		}
		if !res.has("queue unknown, servers 1 ready + 0 booting, rule: bad queue reading, action: hold") || !res.has(want) {
			t.Errorf("want %q:\n%s", want, strings.Join(res.lines, "\n"))
		}
	}
	check(`the queue answered "<html>Service Unavailable</html>", not a whole number; never scaling on bad data`)
	q.body.Store("3")
	q.status.Store(http.StatusInternalServerError)
	check("/queue/length answered 500 Internal Server Error")
	q.srv.Close()
	check("connection refused")
	for _, a := range srv.Actions() {
		if a == "RunInstances" || a == "TerminateInstances" {
			t.Fatalf("scaled on bad data: %v", srv.Actions())
		}
	}
}

func TestAutoscaleDrainLaunchesForTheBacklog(t *testing.T) {
	srv, _ := newFleet(t)
	seedJobs(srv)
	q := newQueue(t, "150")
	// The base finishes 80 of 150 within 40 minutes; each new server 60.
	res := runFleet(t, context.Background(), jobDeployfile(t, q, `max = 3`), false, "autoscale", "role=job")
	if res.err != nil {
		t.Fatalf("autoscale: %v\n%s", res.err, strings.Join(res.lines, "\n"))
	}
	if !res.has("autoscale job (drain, 1 base): queue 150, servers 0 ready + 0 booting, rule: queue above 5, action: launch 2") {
		t.Errorf("decision:\n%s", strings.Join(res.lines, "\n"))
	}
	if n := len(live(srv)); n != 3 {
		t.Fatalf("%d job servers; want the base and 2 launched", n)
	}
}

func TestAutoscaleWatchDecidesUntilStopped(t *testing.T) {
	srv, _ := newFleet(t)
	seedJobs(srv)
	q := newQueue(t, "0")
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	res := runFleet(t, ctx, jobDeployfile(t, q, `policy = "seed"`), false, "autoscale", "role=job", "watch=1s")
	if res.err != nil {
		t.Fatalf("watch: %v", res.err)
	}
	decisions := 0
	for _, l := range res.lines {
		if strings.Contains(l, "autoscale job (seed, 1 base): queue 0") {
			decisions++
		}
	}
	if decisions != 3 || !res.has("autoscale job: stopped") || q.hits.Load() != 3 {
		t.Fatalf("%d decisions, %d readings:\n%s", decisions, q.hits.Load(), strings.Join(res.lines, "\n"))
	}
}

func TestAutoscaleDryRunLaunchesNothing(t *testing.T) {
	srv, _ := newFleet(t)
	seedJobs(srv)
	q := newQueue(t, "30")
	res := runFleet(t, context.Background(), jobDeployfile(t, q, `policy = "seed"`), true, "autoscale", "role=job")
	if res.err != nil {
		t.Fatalf("dry run: %v\n%s", res.err, strings.Join(res.lines, "\n"))
	}
	if len(live(srv)) != 1 {
		t.Fatalf("a dry run launched: %+v", live(srv))
	}
	for i, a := range srv.Actions() {
		if a == "RunInstances" && srv.Requests()[i].Get("DryRun") != "true" {
			t.Fatalf("RunInstances without DryRun")
		}
	}
}

func TestAutoscaleMistakesBeforeAnythingRuns(t *testing.T) {
	srv, _ := newFleet(t)
	seedJobs(srv)
	q := newQueue(t, "0")
	for setting, want := range map[string]string{
		`policy = "smart"`:            `policy="smart": want "drain" or "seed"`,
		`policy = "seed", target = 1`: `target= is a setting of policy "drain", not "seed"`,
		`max_extra = 3`:               `max_extra= is a setting of policy "seed", not "drain"`,
		`target = "5m"`:               `drain: target 5m0s must be longer than boot 10m0s`,
		`quiet = "soon"`:              `quiet: "soon" is not a duration`,
		`queue_command = "echo 3"`:    `queue_url= and queue_command= both given`,
	} {
		res := runFleet(t, context.Background(), jobDeployfile(t, q, setting), false, "autoscale", "role=job")
		if res.err == nil || !strings.Contains(res.err.Error(), want) || !strings.Contains(res.err.Error(), "Deployfile:9:") {
			t.Errorf("%s: err %v; want %q at the autoscale() line", setting, res.err, want)
		}
	}
	// No launcher for the role and no asg=: found by the check.
	path := writeDeployfile(t, `
use("aws")
def production():
    ec2_servers(tags = {"App": "payroll"})
    autoscale("job", queue_url = "http://127.0.0.1:1/")
stage("production", production)
`)
	res := runFleet(t, context.Background(), path, false, "autoscale", "role=job")
	if res.err == nil || !strings.Contains(res.err.Error(), `autoscale("job") launches through the role's launcher, but stage production has no launcher("job")`) {
		t.Errorf("err %v", res.err)
	}
	res = runFleet(t, context.Background(), jobDeployfile(t, q, `policy = "seed"`), false, "autoscale", "role=job", "watch=often")
	if res.err == nil || !strings.Contains(res.err.Error(), `watch: "often" is not a duration`) {
		t.Errorf("err %v", res.err)
	}
	if len(srv.Actions()) != 0 {
		t.Errorf("AWS was called: %v", srv.Actions())
	}
}

func TestAutoscaleSetsDesiredCapacityOfAGroup(t *testing.T) {
	srv, _ := newFleet(t)
	asg := awstest.NewAutoScaling(t, srv)
	t.Setenv("AWS_ENDPOINT_URL_AUTO_SCALING", asg.URL)
	now := time.Now()
	srv.AddInstances(awstest.Instance{ID: "i-gbase", LaunchTime: now.Add(-5 * time.Hour), PrivateIP: "127.0.0.51"})
	asg.AddGroup(awstest.Group{Name: "payroll-jobs", MinSize: 1, MaxSize: 3, Desired: 1}, "i-gbase")
	q := newQueue(t, "30")
	path := writeDeployfile(t, fmt.Sprintf(`
use("aws")
def production():
    autoscale("job", queue_url = "%s", policy = "seed", asg = "payroll-jobs", max_extra = 5)
stage("production", production)
`, q.srv.URL))
	run := func(dry bool) result {
		t.Helper()
		res := runFleet(t, context.Background(), path, dry, "autoscale", "role=job")
		if res.err != nil {
			t.Fatalf("autoscale: %v\n%s", res.err, strings.Join(res.lines, "\n"))
		}
		return res
	}
	res := run(false)
	if !res.has("group payroll-jobs: min 1, max 3, desired 1): queue 30, servers 0 ready + 0 booting, rule: queue above 20, action: launch 1") ||
		!res.has("desired capacity of payroll-jobs set from 1 to 2") {
		t.Fatalf("decision:\n%s", strings.Join(res.lines, "\n"))
	}
	if g, _ := asg.Group("payroll-jobs"); g.Desired != 2 {
		t.Fatalf("desired %d", g.Desired)
	}
	// The group launched an instance: booting, then it counts.
	res = run(false)
	if !res.has("desired 2): queue 30, servers 0 ready + 1 booting") || !res.has("set from 2 to 3") {
		t.Fatalf("second decision:\n%s", strings.Join(res.lines, "\n"))
	}
	// At the group's maximum the decision's launch changes nothing.
	res = run(false)
	if !res.has("group payroll-jobs is at its maximum (3): desired capacity stays") {
		t.Fatalf("at max:\n%s", strings.Join(res.lines, "\n"))
	}
	// Low queue: the desired capacity drops one at a time, never below the
	// minimum (min_uptime 0: the group's instances are brand new), and a
	// dry run sends nothing.
	q.body.Store("0")
	seedOld := writeDeployfile(t, fmt.Sprintf(`
use("aws")
def production():
    autoscale("job", queue_url = "%s", policy = "seed", asg = "payroll-jobs", min_uptime = 0)
stage("production", production)
`, q.srv.URL))
	res = runFleet(t, context.Background(), seedOld, true, "autoscale", "role=job")
	if res.err != nil || !res.has("dry run: autoscale job: would set the desired capacity of payroll-jobs from 3 to 2") {
		t.Fatalf("dry run: %v\n%s", res.err, strings.Join(res.lines, "\n"))
	}
	if n := strings.Count(strings.Join(asg.Actions(), " "), "SetDesiredCapacity"); n != 2 {
		t.Fatalf("calls %v", asg.Actions())
	}
	for want := 2; want >= 1; want-- {
		res := runFleet(t, context.Background(), seedOld, false, "autoscale", "role=job")
		if res.err != nil || !res.has(fmt.Sprintf("set from %d to %d", want+1, want)) {
			t.Fatalf("scale in to %d: %v\n%s", want, res.err, strings.Join(res.lines, "\n"))
		}
	}
	res = runFleet(t, context.Background(), seedOld, false, "autoscale", "role=job")
	if res.err != nil || !res.has("action: hold (no extra server runs)") {
		t.Fatalf("at min: %v\n%s", res.err, strings.Join(res.lines, "\n"))
	}
	if g, _ := asg.Group("payroll-jobs"); g.Desired != 1 {
		t.Fatalf("desired %d; want the minimum", g.Desired)
	}
	for _, r := range asg.Requests() {
		if r.Get("Action") == "SetDesiredCapacity" && (r.Get("AutoScalingGroupName") != "payroll-jobs" || r.Get("HonorCooldown") != "false") {
			t.Errorf("request %v", r)
		}
	}
}

func TestAutoscaleQueueCommand(t *testing.T) {
	srv, _ := newFleet(t)
	seedJobs(srv)
	deployfile := func(cmd string) string {
		return writeDeployfile(t, fmt.Sprintf(`
use("aws")
set("launch_poll_interval", 0.02)
set("revision", "abc123")
def production():
    ec2_servers(tags = {"App": "payroll", "Env": "production"})
    launcher("job", launch_template = "payroll-job", launch_timeout = 5)
    autoscale("job", queue_command = %q, policy = "seed")
stage("production", production)
`, cmd))
	}
	res := runFleet(t, context.Background(), deployfile("echo 3; exit 1"), false, "autoscale")
	if res.err != nil || !res.has("rule: bad queue reading, action: hold (queue_command:") {
		t.Fatalf("failing command: %v\n%s", res.err, strings.Join(res.lines, "\n"))
	}
	// One autoscaled role: role= may be left out.
	res = runFleet(t, context.Background(), deployfile("echo 25"), false, "autoscale")
	if res.err != nil || !res.has("queue 25, servers 0 ready + 0 booting, rule: queue above 20, action: launch 1") {
		t.Fatalf("command: %v\n%s", res.err, strings.Join(res.lines, "\n"))
	}
	if len(live(srv)) != 2 {
		t.Fatalf("live %v", liveIDs(srv))
	}
}
