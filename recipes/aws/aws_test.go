package aws_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/deploy/output/outputtest"
	"github.com/davit-deploy/davit/recipes"
	"github.com/davit-deploy/davit/recipes/aws"
	"github.com/davit-deploy/davit/recipes/aws/awstest"
	"github.com/davit-deploy/davit/tasks"
	"github.com/davit-deploy/davit/tasks/run"
)

// awsEnv points the SDK's standard chain at srv with static test
// credentials, and at no shared file or instance role of this machine.
func awsEnv(t *testing.T, srv *awstest.Server) {
	awstest.IsolateSDK(t, "eu-west-1", srv.URL)
}

// loopbackOnly is the SDK's HTTP client with a dialer that refuses any
// address outside 127.0.0.0/8 and ::1, so no test can reach AWS (or an
// instance metadata service) by accident.
func loopbackOnly() []func(*config.LoadOptions) error {
	client := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		var d net.Dialer
		tr.Proxy = nil
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return nil, fmt.Errorf("test dialer: refusing non-loopback address %s", addr)
			}
			return d.DialContext(ctx, network, addr)
		}
	})
	fastRetries := func() awssdk.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 5 * time.Millisecond, nil })
		})
	}
	return []func(*config.LoadOptions) error{config.WithHTTPClient(client), config.WithRetryer(fastRetries)}
}

func goRecipes() map[string]func() tasks.Recipe {
	rs := recipes.Go()
	rs["aws"] = func() tasks.Recipe { return aws.NewWithConfig(loopbackOnly()...) }
	return rs
}

var launched = time.Date(2024, 3, 1, 9, 30, 0, 0, time.UTC)

func seed(srv *awstest.Server) {
	prod := func(extra map[string]string) map[string]string {
		m := map[string]string{"App": "payroll", "Env": "production"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	srv.AddInstances(
		awstest.Instance{ID: "i-0a1", Type: "t3.small", AZ: "eu-west-1a", LaunchTime: launched,
			Tags:      prod(map[string]string{"Name": "web-1", "Role": "app, web", "davit:launched-by": "alice@laptop"}),
			PrivateIP: "127.0.0.11", PublicIP: "203.0.113.11", PrivateDNS: "ip-10-0-0-11.internal"},
		awstest.Instance{ID: "i-0b2", Type: "m5.large", AZ: "eu-west-1b", LaunchTime: launched.Add(time.Hour),
			Tags: prod(map[string]string{"Role": "db"}), PrivateIP: "127.0.0.12"},
		awstest.Instance{ID: "i-0c3", State: "stopped", Type: "t3.small", AZ: "eu-west-1a", LaunchTime: launched,
			Tags: prod(map[string]string{"Name": "web-old", "Role": "app"}), PrivateIP: "127.0.0.13"},
		awstest.Instance{ID: "i-0d4", Type: "t3.small", AZ: "eu-west-1a", LaunchTime: launched,
			Tags: map[string]string{"App": "payroll", "Env": "staging", "Name": "stage-1", "Role": "app"}, PrivateIP: "127.0.0.14"},
	)
}

func writeDeployfile(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Deployfile")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const deployfile = `
use("aws")
def production():
    server("localhost", roles = ["db"])
    ec2_servers(tags = {"App": "payroll", "Env": "production"}, user = "deploy", port = 2222)
stage("production", production)
stage("nothing", lambda: ec2_servers(tags = {"App": "nothing"}, region = "eu-west-1"))
`

// hostsOf runs the hosts task of stage and returns its HostInfo servers by
// name, and its messages.
func hostsOf(t *testing.T, path, stage string) (map[string]*output.Server, []string, error) {
	t.Helper()
	ctx := context.Background()
	rec := &outputtest.Recorder{}
	r, err := run.Load(ctx, run.Config{Deployfile: path, Terminal: rec, GoRecipes: goRecipes()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.UseStage(ctx, stage); err != nil {
		t.Fatal(err)
	}
	err = r.Execute(ctx, run.HostsTask)
	servers := map[string]*output.Server{}
	for _, ev := range rec.Of(output.HostInfo) {
		servers[ev.Server.Name] = ev.Server
	}
	var lines []string
	for _, ev := range rec.Of(output.Message) {
		lines = append(lines, ev.Line)
	}
	return servers, lines, err
}

func TestDiscoveryMixedWithStaticServers(t *testing.T) {
	srv := awstest.NewServer(t)
	awsEnv(t, srv)
	seed(srv)
	path := writeDeployfile(t, deployfile)

	// What `davit -T production` does: load and select the stage. EC2 is
	// not asked.
	ctx := context.Background()
	r, err := run.Load(ctx, run.Config{Deployfile: path, Terminal: &outputtest.Recorder{}, GoRecipes: goRecipes()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.UseStage(ctx, "production"); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Fatalf("loading the Deployfile made %d EC2 calls", n)
	}

	servers, _, err := hostsOf(t, path, "production")
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 3 || servers["localhost"] == nil || servers["web-1"] == nil || servers["i-0b2"] == nil {
		t.Fatalf("hosts = %v; want localhost, web-1, i-0b2 (not the stopped or the staging one)", keys(servers))
	}
	if s := servers["localhost"]; s.Source != "static" {
		t.Errorf("localhost source %q", s.Source)
	}
	web := servers["web-1"]
	if web.Source != "ec2" || web.Address != "127.0.0.11" || web.User != "deploy" || web.Port != 2222 ||
		strings.Join(web.Roles, ",") != "app,web" {
		t.Errorf("web-1 = %+v", web)
	}
	for k, want := range map[string]any{"instance_id": "i-0a1", "instance_type": "t3.small", "az": "eu-west-1a",
		"launch_time": "2024-03-01T09:30:00Z", "launched_by": "alice@laptop"} {
		if web.Props[k] != want {
			t.Errorf("web-1 %s = %v; want %v", k, web.Props[k], want)
		}
	}
	db := servers["i-0b2"]
	if strings.Join(db.Roles, ",") != "db" || db.Props["launch_time"] != "2024-03-01T10:30:00Z" || db.Props["launched_by"] != nil {
		t.Errorf("i-0b2 = %+v", db)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d EC2 calls; want 1", len(reqs))
	}
	sent := map[string]string{}
	for n := 1; reqs[0].Has(fmt.Sprintf("Filter.%d.Name", n)); n++ {
		sent[reqs[0].Get(fmt.Sprintf("Filter.%d.Name", n))] = reqs[0].Get(fmt.Sprintf("Filter.%d.Value.1", n))
	}
	if len(sent) != 3 || sent["tag:App"] != "payroll" || sent["tag:Env"] != "production" || sent["instance-state-name"] != "running" {
		t.Errorf("filters sent: %v", sent)
	}
}

func keys(m map[string]*output.Server) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestZeroMatchesSayWhatWasAsked(t *testing.T) {
	srv := awstest.NewServer(t)
	awsEnv(t, srv)
	seed(srv)
	servers, lines, err := hostsOf(t, writeDeployfile(t, deployfile), "nothing")
	if err != nil {
		t.Fatal(err)
	}
	want := "no hosts: 0 declared servers; ec2 (running EC2 instances tagged App=nothing in eu-west-1): none"
	if len(servers) != 0 || len(lines) != 1 || lines[0] != want {
		t.Errorf("hosts = %v, said %q; want %q", keys(servers), lines, want)
	}
}

func TestNoCredentialsNamesTheSource(t *testing.T) {
	srv := awstest.NewServer(t)
	awsEnv(t, srv)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	_, _, err := hostsOf(t, writeDeployfile(t, deployfile), "nothing")
	if err == nil {
		t.Fatal("hosts succeeded without credentials")
	}
	for _, want := range []string{"host source ec2 (running EC2 instances tagged App=nothing in eu-west-1)", "no AWS credentials"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\nlacks %q", err, want)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d EC2 calls without credentials", n)
	}
}

func source(tags map[string]string) *aws.Source {
	return &aws.Source{Tags: tags, RolesTag: "Role", Address: "private_ip", LoadOptions: loopbackOnly()}
}

func TestPagingFollowsNextToken(t *testing.T) {
	srv := awstest.NewServer(t)
	awsEnv(t, srv)
	for i := range 15 {
		state := "running"
		if i%5 == 4 {
			state = "stopped"
		}
		srv.AddInstances(awstest.Instance{ID: fmt.Sprintf("i-%03d", i), State: state, Type: "t3.micro", AZ: "eu-west-1c",
			LaunchTime: launched, Tags: map[string]string{"App": "batch", "Role": "worker"}, PrivateIP: fmt.Sprintf("127.0.1.%d", i)})
	}
	src := source(map[string]string{"App": "batch"})
	src.PageSize = 5
	hosts, err := src.Hosts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 12 {
		t.Errorf("%d hosts; want the 12 running", len(hosts))
	}
	reqs := srv.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d calls; want 3 pages of 5", len(reqs))
	}
	if reqs[0].Get("MaxResults") != "5" || reqs[0].Has("NextToken") || !reqs[1].Has("NextToken") || !reqs[2].Has("NextToken") {
		t.Errorf("paging requests: %v", reqs)
	}
}

func TestAddressChoices(t *testing.T) {
	srv := awstest.NewServer(t)
	awsEnv(t, srv)
	srv.AddInstances(awstest.Instance{ID: "i-1", Type: "t3.micro", AZ: "eu-west-1a", LaunchTime: launched,
		Tags:      map[string]string{"App": "a", "ssh": "127.0.0.7"},
		PrivateIP: "10.0.0.1", PublicIP: "203.0.113.1", PrivateDNS: "ip-10-0-0-1.internal", PublicDNS: "ec2-203.example"})
	for addr, want := range map[string]string{"private_ip": "10.0.0.1", "public_ip": "203.0.113.1",
		"private_dns": "ip-10-0-0-1.internal", "public_dns": "ec2-203.example", "tag:ssh": "127.0.0.7"} {
		src := source(map[string]string{"App": "a"})
		src.Address = addr
		hosts, err := src.Hosts(context.Background())
		if err != nil || len(hosts) != 1 || hosts[0].Address != want || hosts[0].Name != "i-1" {
			t.Errorf("address=%s: %v %v; want %s", addr, hosts, err, want)
		}
	}
	src := source(map[string]string{"App": "a"})
	src.Address = "tag:missing"
	if _, err := src.Hosts(context.Background()); err == nil || !strings.Contains(err.Error(), "i-1") {
		t.Errorf("an instance without the address tag: %v", err)
	}
}

func TestThrottlingRetriedThenClearError(t *testing.T) {
	srv := awstest.NewServer(t)
	awsEnv(t, srv)
	seed(srv)
	srv.Throttle(2)
	hosts, err := source(map[string]string{"App": "payroll", "Env": "production"}).Hosts(context.Background())
	if err != nil || len(hosts) != 2 {
		t.Fatalf("after 2 throttled calls: %v, %v", hosts, err)
	}
	if n := len(srv.Requests()); n != 3 {
		t.Errorf("%d calls; want 2 throttled and 1 answered", n)
	}

	srv.Throttle(100)
	_, err = source(map[string]string{"App": "payroll"}).Hosts(context.Background())
	if err == nil || !strings.Contains(err.Error(), "RequestLimitExceeded") || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Errorf("throttled throughout: %v", err)
	}
}

func TestFiltersSentAndRechecked(t *testing.T) {
	srv := awstest.NewServer(t)
	awsEnv(t, srv)
	seed(srv)
	src := source(map[string]string{"App": "payroll"})
	src.Filters = map[string][]string{"instance-type": {"t3.*", "c5.large"}}
	hosts, err := src.Hosts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range hosts {
		names = append(names, h.Name)
	}
	if strings.Join(names, " ") != "web-1 stage-1" {
		t.Errorf("hosts %v; want web-1 stage-1", names)
	}
	if got := src.Describe(); got != "running EC2 instances tagged App=payroll with instance-type=t3.*|c5.large in the default region" {
		t.Errorf("Describe = %q", got)
	}
}

func TestBadArguments(t *testing.T) {
	srv := awstest.NewServer(t)
	awsEnv(t, srv)
	for src, want := range map[string]string{
		`ec2_servers()`: "give tags= or filters=",
		`ec2_servers(tags = {"A": "b"}, address = "ip")`:  `address="ip"`,
		`ec2_servers(tags = {"A": 1})`:                    `tags["A"] must be a string`,
		`ec2_servers(tags = {"A": "b"}, region = "Mars")`: `region="Mars"`,
	} {
		_, err := run.Load(context.Background(), run.Config{Deployfile: writeDeployfile(t, "use(\"aws\")\n"+src+"\n"),
			Terminal: &outputtest.Recorder{}, GoRecipes: goRecipes()})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want %q", src, err, want)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d EC2 calls", n)
	}
}
