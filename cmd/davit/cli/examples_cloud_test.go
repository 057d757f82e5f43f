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
// password.
func exampleCloud(t *testing.T) {
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
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           "AKIDTEST",
		"AWS_SECRET_ACCESS_KEY":       "test-secret",
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  "us-east-1",
		"AWS_DEFAULT_REGION":          "",
		"AWS_PROFILE":                 "",
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_EC2":        ec2.URL,
		"AWS_ENDPOINT_URL_S3":         s3.URL,
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
		"PAYROLL_SVN_PASSWORD":        "example-svn-secret",
	} {
		t.Setenv(k, v)
	}
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
