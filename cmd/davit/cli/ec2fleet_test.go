package cli

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy/sshtest"
	"github.com/davit-deploy/davit/recipes/aws/awstest"
)

// ec2Fleet is a production stage whose servers EC2 reports: real sshd
// hosts on 127.0.0.x, each seeded in the EC2 test server as an instance
// whose Address tag is that loopback address (its private IP is a 10.x
// one, as EC2 would report, and is never dialled), plus one static
// server.
type ec2Fleet struct {
	fleet *sshtest.Fleet
	ec2   *awstest.Server
	// byName maps each host's davit name to its sshd server.
	byName    map[string]*sshtest.Server
	sshConfig string
	df        string
	repo      string
}

// The fleet's servers: sshd servers 0-2 are running instances, 3 the
// static server, 4 a stopped instance that must never be deployed to.
var ec2FleetNames = []string{"app-1", "app-2", "db-1", "static-1", "app-old"}

const ec2FleetDeployfile = `
use("deploy")
use("aws")

set("application", "payroll")
set("deploy_to", "/srv/payroll")
%s
def production():
    server("static-1", address = %q, roles = ["app"])
    ec2_servers(tags = {"App": "payroll", "Env": "production"}, roles_tag = "Role", address = "tag:Address")
%s
stage("production", production)
`

// newEC2Fleet starts the fleet and writes its Deployfile, with settings
// at the top and stage lines (indented) in production().
func newEC2Fleet(t *testing.T, settings, stageLines string) *ec2Fleet {
	t.Helper()
	f := &ec2Fleet{
		fleet:  sshtest.Start(t, sshtest.Options{N: len(ec2FleetNames), Isolate: []string{"/srv/payroll"}}),
		ec2:    awstest.NewServer(t),
		byName: map[string]*sshtest.Server{},
	}
	dir := t.TempDir()
	awstest.IsolateSDK(t, "eu-west-1", f.ec2.URL)
	// The SDK talks to the test server only: never through a proxy.
	for k, v := range map[string]string{"HTTP_PROXY": "", "HTTPS_PROXY": "", "NO_PROXY": "127.0.0.1"} {
		t.Setenv(k, v)
	}
	launched := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	prod := map[string]string{"App": "payroll", "Env": "production"}
	instance := func(i int, id, role, state string) awstest.Instance {
		tags := map[string]string{"Name": ec2FleetNames[i], "Role": role, "Address": f.fleet.Servers[i].Host}
		for k, v := range prod {
			tags[k] = v
		}
		return awstest.Instance{ID: id, State: state, Type: "t3.small", AZ: "eu-west-1a", LaunchTime: launched.Add(time.Duration(i) * time.Minute),
			Tags: tags, PrivateIP: fmt.Sprintf("10.0.0.%d", 11+i)}
	}
	f.ec2.AddInstances(
		instance(0, "i-0a1", "app,web", ""),
		instance(1, "i-0a2", "app", ""),
		instance(2, "i-0d1", "db", ""),
		instance(4, "i-0ff", "app", "stopped"),
	)

	// Each host by its davit name; its address comes from the
	// Deployfile (the tag, or address=), as in production.
	var cfg strings.Builder
	for i, s := range f.fleet.Servers {
		f.byName[ec2FleetNames[i]] = s
		fmt.Fprintf(&cfg, "Host %s\n  Port %d\n  User %s\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n\n",
			ec2FleetNames[i], s.Port, f.fleet.User, f.fleet.ClientKeyPath, f.fleet.KnownHostsPath)
	}
	f.sshConfig = filepath.Join(dir, "ssh_config")
	must(t, os.WriteFile(f.sshConfig, []byte(cfg.String()), 0o600))

	project := t.TempDir()
	f.df = filepath.Join(project, "Deployfile")
	must(t, os.WriteFile(f.df, []byte(fmt.Sprintf(ec2FleetDeployfile, settings, f.fleet.Servers[3].Host, stageLines)), 0o644))
	f.repo = gitRepo(t, map[string]string{"public/index.html": "<h1>Welcome to payroll v1</h1>\n"})
	return f
}

// davit runs davit on the production stage and returns its exit code and
// output.
func (f *ec2Fleet) davit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	base := []string{"-f", f.df, "--format", "plain", "--ssh-config", f.sshConfig, "production"}
	return runDavit(t, append(append(base, args...), "repo_url=file://"+f.repo)...)
}

// deployDir is the deploy_to of the named host, as this machine sees it.
func (f *ec2Fleet) deployDir(name string) string {
	return f.byName[name].IsolatedDir("/srv/payroll")
}

// A deploy to a fleet discovered in EC2 (by tags, roles from the Role
// tag, addresses from the Address tag) and one static server: hosts shows
// where each host came from, the deploy lays out every running instance
// and the static server, and the stopped instance is left alone.
func TestEC2DiscoveredFleetDeploy(t *testing.T) {
	f := newEC2Fleet(t, "", "")

	code, out := f.davit(t, "hosts")
	if code != 0 {
		t.Fatalf("hosts: exit %d\n%s", code, out)
	}
	t.Log(out)
	for _, name := range []string{"app-1", "app-2", "db-1", "static-1"} {
		line := lineContaining(out, name)
		if line == "" {
			t.Errorf("hosts does not list %s:\n%s", name, out)
			continue
		}
		wantSource := "ec2"
		if name == "static-1" {
			wantSource = "static"
		}
		// HOST ADDRESS USER ROLES SOURCE PROPERTIES: the address davit
		// dials is the Address tag's, never the private IP EC2 reports
		// (a property only).
		cols := strings.Fields(line)
		if len(cols) < 5 || cols[1] != f.byName[name].Host || cols[4] != wantSource {
			t.Errorf("hosts line for %s: %q; want address %s, source %s", name, line, f.byName[name].Host, wantSource)
		}
	}
	if strings.Contains(out, "app-old") || strings.Contains(out, "i-0ff") {
		t.Errorf("hosts lists the stopped instance:\n%s", out)
	}

	code, out = f.davit(t, "deploy")
	if code != 0 {
		t.Fatalf("deploy: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "to 4 hosts") {
		t.Errorf("the deploy did not report 4 hosts:\n%s", out)
	}
	var release string
	for _, name := range []string{"app-1", "app-2", "db-1", "static-1"} {
		dir := f.deployDir(name)
		id := currentRelease(t, dir)
		if release == "" {
			release = id
		} else if id != release {
			t.Errorf("%s: current is %s; app-1 is on %s", name, id, release)
		}
		body, err := os.ReadFile(filepath.Join(dir, "releases", id, "public", "index.html"))
		if err != nil || !strings.Contains(string(body), "payroll v1") {
			t.Errorf("%s: the release's index.html: %q (%v)", name, body, err)
		}
		for _, p := range []string{"repo", "shared", "revisions.log", filepath.Join("releases", id, "REVISION")} {
			if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
				t.Errorf("%s: %s: %v", name, p, err)
			}
		}
	}
	if ents, err := os.ReadDir(f.deployDir("app-old")); err != nil || len(ents) != 0 {
		t.Errorf("the stopped instance's deploy_to has %d entries (%v); want none", len(ents), err)
	}
	// The stopped instance was filtered out by EC2 (instance-state-name)
	// and not reached at all.
	if log := f.byName["app-old"].Log(); strings.Contains(log, "Accepted publickey") {
		t.Errorf("the stopped instance's sshd accepted a login:\n%s", log)
	}
}

func lineContaining(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// lbCalls lists the register and deregister calls the load balancer
// received, in order: "Deregister i-0a1", "Register i-0a1".
func lbCalls(srv *awstest.Server) []string {
	var out []string
	for _, r := range srv.Requests() {
		verb := ""
		switch r.Get("Action") {
		case "DeregisterInstancesFromLoadBalancer":
			verb = "Deregister"
		case "RegisterInstancesWithLoadBalancer":
			verb = "Register"
		default:
			continue
		}
		var ids []string
		for n := 1; r.Has(fmt.Sprintf("Instances.member.%d.InstanceId", n)); n++ {
			ids = append(ids, r.Get(fmt.Sprintf("Instances.member.%d.InstanceId", n)))
		}
		out = append(out, verb+" "+strings.Join(ids, ","))
	}
	return out
}

// A rolling deploy (publish_batch = 1) to the discovered fleet behind a
// classic ELB: each app instance leaves the load balancer (drained)
// before its batch switches and comes back once its page says welcome;
// the static server and the db instance, in no role with a load
// balancer, are published without it. Then a release whose page fails on
// app-2 stops the rollout there: app-2 goes back into the load balancer
// on the old release, and the fleet ends where it was.
func TestEC2RollingDeployBehindELB(t *testing.T) {
	var failing atomic.Value // host name whose page never says welcome
	failing.Store("")
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.TrimPrefix(r.URL.Path, "/") == failing.Load().(string) {
			fmt.Fprintln(w, "<h1>Something went wrong</h1>")
			return
		}
		fmt.Fprintln(w, "<h1>Welcome to payroll</h1>")
	}))
	defer page.Close()
	f := newEC2Fleet(t, fmt.Sprintf(`set("health_check_url", {"app": %q})
set("health_check_timeout", 1)
set("publish_batch", 1)
set("launch_poll_interval", 0.02)
`, page.URL+"/{name}"), `    launcher("app", ami = "ami-0abc", instance_type = "t3.small", elb = "payroll-web", launch_timeout = 5)`)
	f.ec2.AddLoadBalancer("payroll-web", awstest.Balancing{HealthyAfter: 50 * time.Millisecond, DrainFor: 100 * time.Millisecond})
	f.ec2.Register("payroll-web", "i-0a1", "i-0a2")

	code, out := f.davit(t, "deploy")
	if code != 0 {
		t.Fatalf("deploy: exit %d\n%s", code, out)
	}
	t.Log(out)
	want := []string{"Deregister i-0a1", "Register i-0a1", "Deregister i-0a2", "Register i-0a2"}
	if got := lbCalls(f.ec2); !slices.Equal(got, want) {
		t.Errorf("load balancer calls = %v\nwant %v", got, want)
	}
	for _, s := range []string{
		"publishing batch 4 of 4: db-1",
		"static-1 has no instance_id",
		"i-0a2 drained from",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q", s)
		}
	}
	if got := f.ec2.Registered("payroll-web"); !slices.Equal(got, []string{"i-0a1", "i-0a2"}) {
		t.Errorf("registered after the deploy: %v", got)
	}
	first := currentRelease(t, f.deployDir("app-1"))
	for _, name := range []string{"app-2", "db-1", "static-1"} {
		if got := currentRelease(t, f.deployDir(name)); got != first {
			t.Errorf("%s: current is %s, want %s", name, got, first)
		}
	}

	// A dry run calls no load balancer API and says what it would do.
	dry := len(lbCalls(f.ec2))
	code, out = runDavit(t, "-f", f.df, "--format", "plain", "--ssh-config", f.sshConfig, "--dry-run", "production", "deploy", "repo_url=file://"+f.repo)
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	if got := lbCalls(f.ec2)[dry:]; len(got) != 0 {
		t.Errorf("the dry run called the load balancer: %v", got)
	}
	for _, s := range []string{"dry run: batch 2 of 4 (app-1) would leave the load balancer (lb:deregister)", "would deregister i-0a1"} {
		if !strings.Contains(out, s) {
			t.Errorf("dry run output lacks %q:\n%s", s, out)
		}
	}

	// The next release fails its health check on app-2.
	commitFile(t, f.repo, "public/index.html", "<h1>payroll v2</h1>\n")
	failing.Store("app-2")
	before := len(lbCalls(f.ec2))
	code, out = f.davit(t, "deploy")
	if code == 0 {
		t.Fatalf("deploy with app-2 failing its health check succeeded:\n%s", out)
	}
	t.Log(out)
	want = []string{"Deregister i-0a1", "Register i-0a1", "Deregister i-0a2", "Register i-0a2"}
	if got := lbCalls(f.ec2)[before:]; !slices.Equal(got, want) {
		t.Errorf("load balancer calls = %v\nwant %v", got, want)
	}
	for _, s := range []string{"batch 3 of 4 (app-2)", "app-2: moved back to " + first, "back in the load balancer"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q", s)
		}
	}
	if got := f.ec2.Registered("payroll-web"); !slices.Equal(got, []string{"i-0a1", "i-0a2"}) {
		t.Errorf("registered after the failed deploy: %v", got)
	}
	for _, name := range []string{"app-1", "app-2", "db-1", "static-1"} {
		if got := currentRelease(t, f.deployDir(name)); got != first {
			t.Errorf("%s: current is %s after the failed deploy, want %s", name, got, first)
		}
	}
	if ents, _ := os.ReadDir(f.deployDir("app-old")); len(ents) != 0 {
		t.Errorf("the stopped instance was deployed to")
	}
}
