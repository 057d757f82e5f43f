package aws_test

// The tests here run davit's own code paths against kumo
// (recipes/aws/kumotest), a third-party AWS emulator, for the calls it
// serves as AWS does: RunInstances (image, type, key), DescribeInstances
// by id, TerminateInstances, CreateTags, and ELBv2's DescribeTargetGroups,
// RegisterTargets, DeregisterTargets and DescribeTargetHealth. So the
// request side of those calls is checked by a server nobody here wrote,
// besides recipes/aws/awstest.
//
// kumo's gaps, which no test here relies on: DescribeInstances ignores
// filters and pagination and returns no tags; RunInstances drops UserData
// and TagSpecifications; DryRun is ignored (a dry run would launch);
// instances are running and targets healthy at once, and a deregistered
// target is gone at once (no draining). The addresses kumo gives
// instances (10.x) are never dialled: no welcome page is asked of them,
// and the recipe's dialer refuses them anyway.

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/davit-deploy/davit/recipes/aws"
	"github.com/davit-deploy/davit/recipes/aws/awstest"
	"github.com/davit-deploy/davit/recipes/aws/kumotest"
)

// kumo is a started kumo with SDK clients for the tests' own setup and
// inspection, and the SDK's standard chain pointed at it as awsEnv does.
type kumo struct {
	ec2   *ec2.Client
	elbv2 *elbv2.Client
}

func startKumo(t *testing.T) *kumo {
	t.Helper()
	endpoint := kumotest.Start(t)
	awstest.IsolateSDK(t, kumotest.Region, endpoint)
	cfg, err := config.LoadDefaultConfig(context.Background(), loopbackOnly()...)
	if err != nil {
		t.Fatal(err)
	}
	return &kumo{ec2: ec2.NewFromConfig(cfg), elbv2: elbv2.NewFromConfig(cfg)}
}

// targetGroup creates a target group and returns its ARN.
func (k *kumo) targetGroup(t *testing.T, name string) string {
	t.Helper()
	out, err := k.elbv2.CreateTargetGroup(context.Background(), &elbv2.CreateTargetGroupInput{
		Name: awssdk.String(name), Protocol: elbv2types.ProtocolEnumHttp, Port: awssdk.Int32(80), VpcId: awssdk.String("vpc-0test")})
	if err != nil {
		t.Fatalf("create target group %s: %v", name, err)
	}
	return awssdk.ToString(out.TargetGroups[0].TargetGroupArn)
}

// run launches count instances of instanceType, as a base fleet made by
// hand would be, and returns their ids.
func (k *kumo) run(t *testing.T, instanceType string, count int32) []string {
	t.Helper()
	out, err := k.ec2.RunInstances(context.Background(), &ec2.RunInstancesInput{
		ImageId: awssdk.String("ami-0base"), InstanceType: ec2types.InstanceType(instanceType),
		MinCount: awssdk.Int32(count), MaxCount: awssdk.Int32(count)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range out.Instances {
		ids = append(ids, awssdk.ToString(in.InstanceId))
	}
	return ids
}

// instances is every instance kumo holds, by id.
func (k *kumo) instances(t *testing.T) map[string]ec2types.Instance {
	t.Helper()
	out, err := k.ec2.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]ec2types.Instance{}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			m[awssdk.ToString(in.InstanceId)] = in
		}
	}
	return m
}

// targets is the ids registered in the target group, sorted.
func (k *kumo) targets(t *testing.T, arn string) []string {
	t.Helper()
	out, err := k.elbv2.DescribeTargetHealth(context.Background(), &elbv2.DescribeTargetHealthInput{TargetGroupArn: awssdk.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range out.TargetHealthDescriptions {
		ids = append(ids, awssdk.ToString(d.Target.Id))
	}
	slices.Sort(ids)
	return ids
}

// tags is an instance's tags as DescribeTags reports them (kumo's
// DescribeInstances carries none).
func (k *kumo) tags(t *testing.T, id string) map[string]string {
	t.Helper()
	out, err := k.ec2.DescribeTags(context.Background(), &ec2.DescribeTagsInput{
		Filters: []ec2types.Filter{{Name: awssdk.String("resource-id"), Values: []string{id}}}})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, d := range out.Tags {
		m[awssdk.ToString(d.Key)] = awssdk.ToString(d.Value)
	}
	return m
}

const kumoFleet = `
use("aws")
set("launch_poll_interval", 0.02)
set("launch_try_timeout", 1)
set("revision", "abc123")
def production():
    ec2_servers(tags = {"App": "payroll", "Env": "production"})
    launcher("worker", ami = "ami-0abc", instance_type = "t3.small", key_name = "deploy",
             target_group = "payroll-workers", launch_timeout = 10)
stage("production", production)
`

// A launch into a target group with no welcome page to wait for:
// RunInstances, the running waiter on DescribeInstances by id, the target
// group found by name, RegisterTargets, the healthy waiter, the ready tag.
func TestKumoLaunchRegistersInATargetGroup(t *testing.T) {
	k := startKumo(t)
	arn := k.targetGroup(t, "payroll-workers")
	k.targetGroup(t, "payroll-other") // the name must pick the right one
	res := runFleet(t, context.Background(), writeDeployfile(t, kumoFleet), false, "launch", "role=worker", "count=2")
	if res.err != nil {
		t.Fatalf("launch: %v\n%s", res.err, strings.Join(res.lines, "\n"))
	}
	all := k.instances(t)
	if len(all) != 2 {
		t.Fatalf("kumo holds %d instances; want the 2 launched", len(all))
	}
	var ids []string
	for id, in := range all {
		ids = append(ids, id)
		// The tags and user data of the RunInstances call are not
		// checked: kumo drops TagSpecifications and UserData.
		if in.State == nil || in.State.Name != ec2types.InstanceStateNameRunning ||
			awssdk.ToString(in.ImageId) != "ami-0abc" || in.InstanceType != "t3.small" || awssdk.ToString(in.KeyName) != "deploy" {
			t.Errorf("%s launched as %+v", id, in)
		}
		readyAt, err := time.Parse(time.RFC3339, k.tags(t, id)[aws.ReadyAtTag])
		if err != nil || time.Since(readyAt) > time.Minute {
			t.Errorf("%s: %s tag %q: %v", id, aws.ReadyAtTag, k.tags(t, id)[aws.ReadyAtTag], err)
		}
		// kumo's address for it is reported, and never dialled.
		if !res.has(id + " is running at " + awssdk.ToString(in.PrivateIpAddress)) {
			t.Errorf("no word of %s running at %s in:\n%s", id, awssdk.ToString(in.PrivateIpAddress), strings.Join(res.lines, "\n"))
		}
	}
	slices.Sort(ids)
	if got := k.targets(t, arn); !slices.Equal(got, ids) {
		t.Errorf("payroll-workers targets %v; want %v", got, ids)
	}
	if !res.has("not waiting for a welcome page") || !res.has("is healthy in target group payroll-workers") {
		t.Errorf("progress:\n%s", strings.Join(res.lines, "\n"))
	}
}

// A welcome page (on loopback, not at the instance's address) that never
// says welcome: the launch fails within launch_timeout, the instance is
// terminated through kumo and never registered.
func TestKumoLaunchWithoutWelcomeTerminates(t *testing.T) {
	k := startKumo(t)
	arn := k.targetGroup(t, "payroll-workers")
	page := newWelcome(t, 0)
	src := strings.Replace(kumoFleet, "launch_timeout = 10", "launch_timeout = 0.5", 1)
	src = strings.Replace(src, `set("revision"`, `set("health_check_url", {"worker": "http://127.0.0.1:`+page.port()+`/"})
set("revision"`, 1)
	res := runFleet(t, context.Background(), writeDeployfile(t, src), false, "launch", "role=worker")
	if res.err == nil || !strings.Contains(res.err.Error(), "Booting") || !strings.Contains(res.err.Error(), "terminated") {
		t.Fatalf("err = %v; want the welcome wait's last answer and that the instance was terminated", res.err)
	}
	all := k.instances(t)
	if len(all) != 1 {
		t.Fatalf("kumo holds %d instances; want the 1 launched", len(all))
	}
	for id, in := range all {
		if in.State == nil || in.State.Name != ec2types.InstanceStateNameTerminated {
			t.Errorf("%s is %v; want terminated", id, in.State)
		}
		if _, ok := k.tags(t, id)[aws.ReadyAtTag]; ok {
			t.Errorf("%s was tagged ready", id)
		}
	}
	if got := k.targets(t, arn); len(got) != 0 {
		t.Errorf("registered: %v", got)
	}
	if page.hits.Load() < 2 {
		t.Errorf("welcome page asked %d times", page.hits.Load())
	}
}

// lb:deregister and lb:register on a role's hosts: DeregisterTargets and
// the deregistered waiter, RegisterTargets and the healthy waiter. The
// hosts are declared with their instance_id, because kumo's
// DescribeInstances returns no tags and so discovery could give them no
// role; ec2_servers still asks kumo, and must add none of its untagged
// instances.
func TestKumoLBTasks(t *testing.T) {
	k := startKumo(t)
	arn := k.targetGroup(t, "payroll-workers")
	ids := k.run(t, "t3.small", 2)
	slices.Sort(ids)
	if _, err := k.elbv2.RegisterTargets(context.Background(), &elbv2.RegisterTargetsInput{TargetGroupArn: awssdk.String(arn),
		Targets: []elbv2types.TargetDescription{{Id: awssdk.String(ids[0])}, {Id: awssdk.String(ids[1])}}}); err != nil {
		t.Fatal(err)
	}
	other := k.run(t, "t3.small", 1) // in the role's group, but not one of these hosts
	if _, err := k.elbv2.RegisterTargets(context.Background(), &elbv2.RegisterTargetsInput{TargetGroupArn: awssdk.String(arn),
		Targets: []elbv2types.TargetDescription{{Id: awssdk.String(other[0])}}}); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(kumoFleet, "    ec2_servers(", `    server("w1", roles = ["worker"], address = "127.0.0.1", instance_id = "`+ids[0]+`")
    server("w2", roles = ["worker"], address = "127.0.0.1", instance_id = "`+ids[1]+`")
    server("db", roles = ["db"], address = "127.0.0.1")
    ec2_servers(`, 1)
	path := writeDeployfile(t, src)

	res := runFleet(t, context.Background(), path, false, "lb:deregister")
	if res.err != nil {
		t.Fatalf("lb:deregister: %v\n%s", res.err, strings.Join(res.lines, "\n"))
	}
	if got := k.targets(t, arn); !slices.Equal(got, other) {
		t.Errorf("after lb:deregister, targets %v; want %v alone", got, other)
	}
	if !res.has(ids[0] + ", " + ids[1] + " drained from target group payroll-workers") {
		t.Errorf("progress:\n%s", strings.Join(res.lines, "\n"))
	}

	res = runFleet(t, context.Background(), path, false, "lb:register")
	if res.err != nil {
		t.Fatalf("lb:register: %v\n%s", res.err, strings.Join(res.lines, "\n"))
	}
	want := slices.Sorted(slices.Values(append(slices.Clone(ids), other...)))
	if got := k.targets(t, arn); !slices.Equal(got, want) {
		t.Errorf("after lb:register, targets %v; want %v", got, want)
	}
	if !res.has(ids[0] + ", " + ids[1] + " healthy in target group payroll-workers") {
		t.Errorf("progress:\n%s", strings.Join(res.lines, "\n"))
	}
}

// Discovery re-checks what it asked for on the answer: kumo ignores the
// filters and sends every instance it holds, terminated ones and other
// types included, and no tags.
func TestKumoDiscoveryRechecksTheUnfilteredAnswer(t *testing.T) {
	k := startKumo(t)
	small := k.run(t, "t3.small", 2)
	k.run(t, "m5.large", 1)
	if _, err := k.ec2.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: small[1:]}); err != nil {
		t.Fatal(err)
	}
	all := k.instances(t)

	src := &aws.Source{Filters: map[string][]string{"instance-type": {"t3.*"}}, Address: "private_ip", LoadOptions: loopbackOnly()}
	hosts, err := src.Hosts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 1 || hosts[0].Name != small[0] {
		var names []string
		for _, h := range hosts {
			names = append(names, h.Name)
		}
		t.Fatalf("hosts %v; want %s alone (the running t3.small; not the terminated one, not the m5.large)", names, small[0])
	}
	h := hosts[0]
	// The address is only read, never dialled.
	if want := awssdk.ToString(all[small[0]].PrivateIpAddress); want == "" || h.Address != want || h.Props["private_ip"] != want {
		t.Errorf("address %q, private_ip %v; want kumo's %q", h.Address, h.Props["private_ip"], want)
	}
	if h.Props["instance_type"] != "t3.small" || h.Props["instance_id"] != small[0] || h.Props["launch_time"] == nil {
		t.Errorf("properties %v", h.Props)
	}

	// Tags are asked for too: kumo's answer carries none, so no instance
	// may become a host.
	src = &aws.Source{Tags: map[string]string{"App": "payroll"}, RolesTag: "Role", Address: "private_ip", LoadOptions: loopbackOnly()}
	if hosts, err = src.Hosts(context.Background()); err != nil || len(hosts) != 0 {
		t.Errorf("tagged discovery: %d hosts, %v; want none of kumo's %d untagged instances", len(hosts), err, len(all))
	}
}
