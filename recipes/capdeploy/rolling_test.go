package capdeploy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/davit-deploy/davit/tasks"
)

// lbFleet is a rolling deploy's test bench: a Deployfile whose
// lb:deregister and lb:register (and hooks after the switch, the restart
// and the health check) append "what:hosts" lines to one file on this
// machine, and a health check page that says "welcome" for every host
// but those in failing.
type lbFleet struct {
	*env
	orderFile string
	failing   sync.Map // host name -> true: its page never says welcome
	extra     string
}

func newLBFleet(t *testing.T, n int) *lbFleet {
	f := &lbFleet{env: newSSHEnv(t, n), orderFile: filepath.Join(t.TempDir(), "order")}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		if _, bad := f.failing.Load(name); bad {
			fmt.Fprintln(w, "<h1>Down for maintenance</h1>")
			return
		}
		fmt.Fprintf(w, "<h1>Welcome</h1> %s\n", name)
	}))
	t.Cleanup(app.Close)
	f.extra = fmt.Sprintf(`set("health_check_url", %q)
set("health_check_timeout", 1)
ORDER = %q
def record(what):
    def run(ctx):
        names = ",".join([h.name for h in roles("app")])
        run_locally(lambda h: h.execute("echo " + what + ":" + names + " >> " + ORDER))
    return run
task("lb:deregister", record("deregister"))
task("lb:register", record("register"))
task("test:switched", record("switched"))
task("test:restarted", record("restarted"))
task("test:healthy", record("healthy"))
after("deploy:symlink:release", "test:switched")
after("deploy:published", "test:restarted")
after("deploy:health_check", "test:healthy")
`, app.URL+"/{name}", f.orderFile)
	return f
}

// order returns the lines recorded since the last call, and forgets them.
func (f *lbFleet) order() []string {
	f.t.Helper()
	b, err := os.ReadFile(f.orderFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.Remove(f.orderFile); err != nil {
		f.t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// Each batch leaves the load balancer before it switches and comes back
// once restarted and healthy, before the next batch starts.
func TestSSHRollingLoadBalancer(t *testing.T) {
	f := newLBFleet(t, 3)
	rec, err := f.run(f.extra, map[string]string{"publish_batch": "1"}, nil, "deploy")
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, rec.text())
	}
	var want []string
	for _, h := range []string{"host1", "host2", "host3"} {
		want = append(want, "deregister:"+h, "switched:"+h, "restarted:"+h, "healthy:"+h, "register:"+h)
	}
	if got := f.order(); !slices.Equal(got, want) {
		t.Errorf("order = %v\nwant    %v", got, want)
	}
	for _, msg := range []string{
		"batch 1 of 3 (host1): leaving the load balancer (lb:deregister)",
		"batch 3 of 3 (host3): healthy, back into the load balancer (lb:register)",
	} {
		if !strings.Contains(rec.text(), msg) {
			t.Errorf("messages lack %q:\n%s", msg, rec.text())
		}
	}
	first := f.newestRelease()
	f.wantCurrent(first)

	// Without publish_batch the fleet is one batch, which never leaves
	// the load balancer.
	f.commit("Welcome to v2")
	if _, err := f.run(f.extra, nil, nil, "deploy"); err != nil {
		t.Fatal(err)
	}
	want = []string{"switched:host1,host2,host3", "restarted:host1,host2,host3", "healthy:host1,host2,host3"}
	if got := f.order(); !slices.Equal(got, want) {
		t.Errorf("one batch: order = %v\nwant %v", got, want)
	}

	// A rollback publishes the same way.
	if _, err := f.run(f.extra, map[string]string{"publish_batch": "2"}, nil, "rollback"); err != nil {
		t.Fatal(err)
	}
	want = []string{
		"deregister:host1,host2", "switched:host1,host2", "restarted:host1,host2", "healthy:host1,host2", "register:host1,host2",
		"deregister:host3", "switched:host3", "restarted:host3", "healthy:host3", "register:host3",
	}
	if got := f.order(); !slices.Equal(got, want) {
		t.Errorf("rollback: order = %v\nwant    %v", got, want)
	}
	f.wantCurrent(first)
}

// A batch failing its health check stops the rollout: every host that
// switched (this batch and the earlier ones, which stayed in the load
// balancer) moves back and restarts, the failing batch goes back into
// the load balancer, and later batches are never touched.
func TestSSHRollingLoadBalancerHealthFailure(t *testing.T) {
	f := newLBFleet(t, 3)
	f.deploy(f.extra, nil)
	first := f.newestRelease()
	f.order()

	f.commit("Welcome to v2")
	f.failing.Store("host2", true)
	rec, err := f.run(f.extra, map[string]string{"publish_batch": "1"}, nil, "deploy")
	var fe *FleetError
	if !errors.As(err, &fe) {
		t.Fatalf("deploy with host2 failing its health check: %v\n%s", err, rec.text())
	}
	t.Log(err)
	for _, s := range []string{
		"batch 2 of 3 (host2)",
		`no answer containing "welcome"`,
		"host1: moved back to " + first,
		"host2: moved back to " + first + " (new release " + fe.Release + " removed); back in the load balancer",
		"host3: still on " + first + " (new release " + fe.Release + " removed)",
	} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q", s)
		}
	}
	want := []string{
		"deregister:host1", "switched:host1", "restarted:host1", "healthy:host1", "register:host1",
		"deregister:host2", "switched:host2", "restarted:host2",
		"restarted:host1,host2", // the move back's restart, on the old release
		"register:host2",
	}
	if got := f.order(); !slices.Equal(got, want) {
		t.Errorf("order = %v\nwant    %v", got, want)
	}
	if !strings.Contains(rec.text(), "batch 2 of 3 (host2): moved back, back into the load balancer (lb:register)") {
		t.Errorf("no message about the re-registration:\n%s", rec.text())
	}
	f.wantCurrent(first)
	f.wantReleases(first)
	f.wantNoLock()
}

// Ctrl-C while a batch is out of the load balancer undoes the same way,
// under a fresh bounded context: the batch moves back and comes back.
func TestSSHRollingLoadBalancerInterrupted(t *testing.T) {
	f := newLBFleet(t, 2)
	f.deploy(f.extra, nil)
	first := f.newestRelease()
	f.order()

	f.commit("Welcome to v2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once atomic.Bool
	goTasks := map[string]func(*tasks.Context) error{
		// Ctrl-C once host2 has restarted on the new release.
		"test:interrupt": func(c *tasks.Context) error {
			for _, h := range c.Roles("app") {
				if h.Name == "host2" && once.CompareAndSwap(false, true) {
					cancel()
					<-c.Ctx().Done()
					return c.Ctx().Err()
				}
			}
			return nil
		},
	}
	extra := f.extra + `after("deploy:published", "test:interrupt")` + "\n"
	rec, err := f.runCtx(ctx, extra, map[string]string{"publish_batch": "1"}, goTasks, "deploy")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted deploy: %v\n%s", err, rec.text())
	}
	t.Log(err)
	want := []string{
		"deregister:host1", "switched:host1", "restarted:host1", "healthy:host1", "register:host1",
		"deregister:host2", "switched:host2", "restarted:host2",
		"restarted:host1,host2",
		"register:host2",
	}
	if got := f.order(); !slices.Equal(got, want) {
		t.Errorf("order = %v\nwant    %v", got, want)
	}
	if !strings.Contains(err.Error(), "batch 2 of 2 (host2)") {
		t.Errorf("error does not name the batch: %v", err)
	}
	f.wantCurrent(first)
	f.wantReleases(first)
	f.wantNoLock()
}

// lb:register failing after a healthy batch stops the rollout too; the
// move back tries the registration once more, and the summary says what
// stays out of the load balancer and how to put it back.
func TestSSHRollingLoadBalancerRegisterFails(t *testing.T) {
	f := newLBFleet(t, 2)
	f.deploy(f.extra, nil)
	first := f.newestRelease()
	f.order()

	f.commit("Welcome to v2")
	extra := f.extra + `task("lb:register", lambda ctx: run_locally(lambda h: h.execute("echo register-refused >> ` + f.orderFile + ` && exit 3")))` + "\n"
	_, err := f.run(extra, map[string]string{"publish_batch": "1"}, nil, "deploy")
	if err == nil {
		t.Fatal("deploy with lb:register failing succeeded")
	}
	t.Log(err)
	for _, s := range []string{
		"batch 1 of 2 (host1)",
		"host1: moved back to " + first + " (new release",
		"NOT back in the load balancer",
		"register it by hand: davit --hosts host1 STAGE lb:register",
	} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q", s)
		}
	}
	want := []string{"deregister:host1", "switched:host1", "restarted:host1", "healthy:host1", "register-refused", "restarted:host1", "register-refused"}
	if got := f.order(); !slices.Equal(got, want) {
		t.Errorf("order = %v\nwant    %v", got, want)
	}
	f.wantCurrent(first)
}

// lb:deregister failing stops the rollout before the batch switches; the
// batch, which may have left the load balancer in part, is registered
// again, and the earlier batch moves back.
func TestSSHRollingLoadBalancerDeregisterFails(t *testing.T) {
	f := newLBFleet(t, 3)
	f.deploy(f.extra, nil)
	first := f.newestRelease()
	f.order()

	f.commit("Welcome to v2")
	extra := f.extra + `def deregister(ctx):
    names = ",".join([h.name for h in roles("app")])
    run_locally(lambda h: h.execute("echo deregister:" + names + " >> " + ORDER + " && test " + names + " != host2"))
task("lb:deregister", deregister)
`
	_, err := f.run(extra, map[string]string{"publish_batch": "1"}, nil, "deploy")
	if err == nil || !strings.Contains(err.Error(), "batch 2 of 3 (host2): task lb:deregister failed") {
		t.Fatalf("deploy with lb:deregister failing on host2: %v", err)
	}
	t.Log(err)
	want := []string{
		"deregister:host1", "switched:host1", "restarted:host1", "healthy:host1", "register:host1",
		"deregister:host2",
		"restarted:host1", // host1 moved back
		"register:host2",
	}
	if got := f.order(); !slices.Equal(got, want) {
		t.Errorf("order = %v\nwant    %v", got, want)
	}
	if !strings.Contains(err.Error(), "host2: still on "+first) || !strings.Contains(err.Error(), "back in the load balancer") {
		t.Errorf("summary does not say host2 is unchanged and back in the load balancer")
	}
	f.wantCurrent(first)
	f.wantReleases(first)
	f.wantNoLock()
}

// A dry run says what it would deregister and register, and records
// nothing (run_locally runs nothing).
func TestSSHRollingLoadBalancerDryRun(t *testing.T) {
	f := newLBFleet(t, 2)
	reports, _ := dryRunEnv(f.env)
	rec, err := f.run(f.extra, map[string]string{"publish_batch": "1"}, nil, "deploy")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, rec.text())
	}
	for _, msg := range []string{
		"dry run: batch 1 of 2 (host1) would leave the load balancer (lb:deregister)",
		"dry run: batch 1 of 2 (host1) would go back into the load balancer (lb:register)",
		"dry run: batch 2 of 2 (host2) would leave the load balancer (lb:deregister)",
		"dry run: batch 2 of 2 (host2) would go back into the load balancer (lb:register)",
	} {
		if !strings.Contains(rec.text(), msg) {
			t.Errorf("dry run messages lack %q:\n%s", msg, rec.text())
		}
	}
	if got := f.order(); got != nil {
		t.Errorf("a dry run wrote the order file: %v", got)
	}
	if !slices.ContainsFunc(reports(), func(r string) bool { return strings.Contains(r, "echo deregister:host1 >> ") }) {
		t.Errorf("the dry run does not report lb:deregister's command: %v", localReports(reports()))
	}
}

// One of the two tasks alone, or a hook on them when neither exists, is
// refused before any host is touched.
func TestLoadBalancerTasksChecked(t *testing.T) {
	cases := []struct{ extra, want string }{
		{`task("lb:deregister", lambda ctx: None)`, "task lb:deregister is defined but lb:register is not"},
		{`task("lb:register", lambda ctx: None)`, "task lb:register is defined but lb:deregister is not"},
		{`task("drain", lambda ctx: None)
after("lb:deregister", "drain")`, `after("lb:deregister", "drain") (`},
	}
	for _, tc := range cases {
		e := newLocalEnv(t)
		_, err := e.run(tc.extra, map[string]string{"publish_batch": "1"}, nil, "deploy")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\nerr = %v\nwant %q", tc.extra, err, tc.want)
			continue
		}
		if _, serr := os.Stat(filepath.Join(e.deployTo, "releases")); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("%s: the refused deploy touched the host (releases/: %v)", tc.extra, serr)
		}
	}
	// The run's Check finds them first, as the CLI runs it before any
	// command (exit 2), with the variables' problems.
	for _, tc := range cases {
		err := checkRun(t, varsBase+tc.extra+"\n", "production", nil, "deploy")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check with %s:\nerr = %v\nwant %q", tc.extra, err, tc.want)
		}
	}
	if err := checkRun(t, varsBase+`set("keep_releases", 0)`+"\n"+cases[0].extra+"\n", "production", nil, "deploy"); err == nil ||
		!strings.Contains(err.Error(), "keep_releases") || !strings.Contains(err.Error(), cases[0].want) {
		t.Errorf("Check does not report a variable and the lb tasks together: %v", err)
	}
	e := newLocalEnv(t)
	if _, err := e.run(`task("drain", lambda ctx: None)
after("lb:register", "drain")`, nil, nil, "rollback"); err == nil || !strings.Contains(err.Error(), `after("lb:register", "drain")`) {
		t.Errorf("rollback with a hook on an undefined lb:register: %v", err)
	}
}
