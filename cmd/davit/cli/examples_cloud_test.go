package cli

import (
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/davit-deploy/davit/recipes/aws/awstest"
)

// exampleCloud is the cloud the examples' stages reach, on 127.0.0.1: an
// EC2 endpoint (awstest) with the payroll fleet's instances, their
// addresses loopback ones, and an S3 endpoint (gofakes3) with the payroll
// assets bucket; static test credentials and no shared file or instance
// role of this machine. It also gives the payroll example its repository
// password. It returns the EC2 endpoint, which also serves the load
// balancers' protocols.
func exampleCloud(t *testing.T) *awstest.Server {
	t.Helper()
	ec2 := awstest.NewServer(t)
	payroll := map[string]string{"App": "payroll", "Env": "production"}
	tags := func(name, role string) map[string]string {
		m := map[string]string{"Name": name, "Role": role}
		for k, v := range payroll {
			m[k] = v
		}
		return m
	}
	ec2.AddInstances(
		awstest.Instance{ID: "i-0a1", Type: "m1.small", AZ: "us-east-1a", PrivateIP: "127.0.0.1", Tags: tags("payroll-app-1", "app")},
		awstest.Instance{ID: "i-0b2", Type: "m1.large", AZ: "us-east-1b", PrivateIP: "127.0.0.2", Tags: tags("payroll-job-1", "job")},
	)
	backend := s3mem.New()
	if err := backend.CreateBucket("smallpayroll-assets"); err != nil {
		t.Fatal(err)
	}
	s3 := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(s3.Close)
	awstest.IsolateSDK(t, "us-east-1", "")
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_EC2":                       ec2.URL,
		"AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING":    ec2.URL,
		"AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2": ec2.URL,
		"AWS_ENDPOINT_URL_S3":                        s3.URL,
		"PAYROLL_SVN_PASSWORD":                       "example-svn-secret",
	} {
		t.Setenv(k, v)
	}
	return ec2
}

// From the control machine, a dry run of the payroll deploy reaches both
// instances found in EC2 by their tags, restarts each role's server, syncs
// the assets once, and never shows the repository password.
func TestPayrollDryRunDeploy(t *testing.T) {
	exampleCloud(t)
	code, out := runDavit(t, "-f", "../../../examples/payroll/Deployfile", "--dry-run", "--format", "plain",
		"--log", filepath.Join(t.TempDir(), "davit.log"), "production", "deploy")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for _, want := range []string{
		"[payroll@payroll-app-1] info: would run: cd /home/payroll/current && { mongrel_rails cluster::restart -C /home/payroll/current/config/mongrel_cluster.yml",
		"[payroll@payroll-job-1] info: 8 delayed_job workers (m1.large)",
		"script/delayed_job -n 8 restart",
		"assets:sync: dry run: s3://smallpayroll-assets/: would upload 2 (",
		"--username deploy --password-from-stdin",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the dry run lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "example-svn-secret") {
		t.Errorf("the password was shown:\n%s", out)
	}
	if strings.Contains(out, "[payroll@payroll-job-1] info: would run: cd /home/payroll/current && { mongrel_rails") {
		t.Errorf("the job server restarted mongrel:\n%s", out)
	}
}

// The payroll fleet's own commands from the control machine: a dry run of
// launching an app server and of scaling the app role sends its EC2 calls
// with DryRun=true and no load balancer call, and crontab prints the
// weekday capacity schedule.
func TestPayrollFleetCommands(t *testing.T) {
	ec2 := exampleCloud(t)
	deployfile := "../../../examples/payroll/Deployfile"
	logFile := filepath.Join(t.TempDir(), "davit.log")
	for _, words := range [][]string{
		{"production", "launch", "role=app"},
		{"production", "scale", "role=app", "count=3"},
	} {
		args := append([]string{"-f", deployfile, "--dry-run", "--format", "plain", "--log", logFile}, words...)
		if code, out := runDavit(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", words, code, out)
		}
	}
	launches := 0
	for _, r := range ec2.Requests() {
		switch r.Get("Action") {
		case "RunInstances":
			launches++
			if r.Get("DryRun") != "true" {
				t.Errorf("RunInstances without DryRun: %v", r)
			}
			if r.Get("ImageId") != "ami-0payroll0image01" || r.Get("InstanceType") != "m1.small" {
				t.Errorf("RunInstances is not the app launcher's: %v", r)
			}
		case "TerminateInstances", "CreateTags":
			if r.Get("DryRun") != "true" {
				t.Errorf("%s without DryRun: %v", r.Get("Action"), r)
			}
		case "RegisterInstancesWithLoadBalancer", "DeregisterInstancesFromLoadBalancer":
			t.Errorf("a dry run called the load balancer: %v", r)
		}
	}
	// launch sends one; scale from the 1 app instance to 3 sends two.
	if launches != 3 {
		t.Errorf("%d RunInstances calls, want 3 (launch 1, scale 1 -> 3)", launches)
	}
	if n := len(ec2.Instances()); n != 2 {
		t.Errorf("the dry runs changed the fleet: %d instances", n)
	}

	code, out := runDavit(t, "-f", deployfile, "--log", logFile, "production", "crontab")
	if code != 0 {
		t.Fatalf("crontab: exit %d\n%s", code, out)
	}
	for _, want := range []string{
		"CRON_TZ=America/New_York",
		"0 8 * * 1-5 ",
		"production scale count=3 role=app",
		"0 21 * * 1-5 ",
		"production scale count=2 role=app",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("crontab lacks %q:\n%s", want, out)
		}
	}
}

// A mistake in a fleet command's arguments (a misspelt role, a count that
// is no number, a role without a launcher) is found before anything runs:
// exit 2, every problem at once with a suggestion, and not one request to
// AWS (the inventory is not even asked for).
func TestPayrollFleetCommandMistakes(t *testing.T) {
	ec2 := exampleCloud(t)
	deployfile := "../../../examples/payroll/Deployfile"
	logFile := filepath.Join(t.TempDir(), "davit.log")
	for _, c := range []struct {
		words []string
		want  []string
	}{
		{[]string{"production", "launch", "role=ap", "count=two"}, []string{
			"launch: role ap has no launcher in stage production (launchers: app, job) (did you mean app?)",
			`launch: variable count: want an integer, have "two"`,
		}},
		{[]string{"production", "scale", "role=app"}, []string{"scale: give the count: scale role=ROLE count=N"}},
		{[]string{"production", "terminate"}, []string{"terminate: give the role: terminate role=ROLE"}},
		{[]string{"production", "scale", "role=app", "count=-1"}, []string{"scale: count=-1: it must be at least 0"}},
		{[]string{"production", "autoscale", "role=jbo", "watch=1ms"}, []string{
			"autoscale: role jbo is not autoscaled in stage production (autoscaled: job) (did you mean job?)",
			"watch=1ms: decide at most once a second",
		}},
	} {
		args := append([]string{"-f", deployfile, "--format", "plain", "--log", logFile}, c.words...)
		code, out := runDavit(t, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", c.words, code, out)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: no %q in\n%s", c.words, w, out)
			}
		}
	}
	if reqs := ec2.Requests(); len(reqs) != 0 {
		t.Errorf("the refused commands sent %d requests to AWS, first %v", len(reqs), reqs[0])
	}
}
