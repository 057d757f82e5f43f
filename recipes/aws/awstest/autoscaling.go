package awstest

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// AutoScalingVersion is the EC2 Auto Scaling API version the SDK sends.
const AutoScalingVersion = "2011-01-01"

const autoScalingNamespace = "http://autoscaling.amazonaws.com/doc/" + AutoScalingVersion + "/"

// GroupTag is the tag EC2 Auto Scaling puts on the instances of a group.
const GroupTag = "aws:autoscaling:groupName"

// Group is one seeded Auto Scaling group.
type Group struct {
	Name                      string
	MinSize, MaxSize, Desired int
	// Tags go on the instances the group launches (PropagateAtLaunch).
	Tags map[string]string
}

// AutoScaling is an EC2 Auto Scaling endpoint for tests (the Query
// protocol, API version 2011-01-01) on 127.0.0.1, for the calls davit
// makes: DescribeAutoScalingGroups and SetDesiredCapacity, with AWS's
// documented semantics. Its groups' instances live in an EC2 test Server:
// when the desired capacity is above the instances in the group, the group
// launches (pending, then running after the EC2 server's boot delay);
// when it is below, the group terminates, choosing by the default
// termination policy's step that applies to one Availability Zone and no
// launch configurations: the instance closest to its next billing hour
// (ties: the lower id). An instance is Pending while EC2 has it pending,
// InService when running, Terminating while shutting down. The SDK's
// autoscaling client reaches it through AWS_ENDPOINT_URL_AUTO_SCALING.
type AutoScaling struct {
	URL string

	ec2      *Server
	mu       sync.Mutex
	groups   map[string]*Group
	requests []url.Values
}

// NewAutoScaling starts an Auto Scaling endpoint whose groups launch and
// terminate instances in ec2; it is closed when the test ends.
func NewAutoScaling(t testing.TB, ec2 *Server) *AutoScaling {
	t.Helper()
	a := &AutoScaling{ec2: ec2, groups: map[string]*Group{}}
	hs := httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(hs.Close)
	a.URL = hs.URL
	return a
}

// AddGroup seeds a group; instance ids already in the EC2 server become
// its members (and get the group's tag).
func (a *AutoScaling) AddGroup(g Group, members ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ec2.mu.Lock()
	defer a.ec2.mu.Unlock()
	for _, id := range members {
		if i := slices.IndexFunc(a.ec2.instances, func(in Instance) bool { return in.ID == id }); i >= 0 {
			if a.ec2.instances[i].Tags == nil {
				a.ec2.instances[i].Tags = map[string]string{}
			}
			a.ec2.instances[i].Tags[GroupTag] = g.Name
		}
	}
	a.groups[g.Name] = &g
}

// Group returns a group as it is now.
func (a *AutoScaling) Group(name string) (Group, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	g, ok := a.groups[name]
	if !ok {
		return Group{}, false
	}
	return *g, true
}

// Actions returns the Action of every call received, in order.
func (a *AutoScaling) Actions() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, r := range a.requests {
		out = append(out, r.Get("Action"))
	}
	return out
}

// Requests returns the form of every call received.
func (a *AutoScaling) Requests() []url.Values {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.requests)
}

func (a *AutoScaling) serve(w http.ResponseWriter, r *http.Request) {
	reqID := fmt.Sprintf("req-%d", time.Now().UnixNano())
	if e := a.handle(w, r, reqID); e != nil {
		kind := "Sender"
		if e.status >= 500 {
			kind = "Receiver"
		}
		writeXML(w, e.status, errorResponseQuery{Xmlns: autoScalingNamespace, Type: kind, Code: e.code, Message: e.message, RequestID: reqID})
	}
}

func (a *AutoScaling) handle(w http.ResponseWriter, r *http.Request, reqID string) *apiError {
	if r.Method != http.MethodPost {
		return &apiError{http.StatusBadRequest, "InvalidAction", "the Auto Scaling Query API takes a form-encoded POST"}
	}
	if err := r.ParseForm(); err != nil {
		return &apiError{http.StatusBadRequest, "MalformedQueryString", err.Error()}
	}
	form := r.PostForm
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests = append(a.requests, form)
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=") {
		return &apiError{http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid."}
	}
	if v := form.Get("Version"); v != AutoScalingVersion {
		return &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("unsupported Version %q", v)}
	}
	switch form.Get("Action") {
	case "DescribeAutoScalingGroups":
		return a.describeGroups(w, form, reqID)
	case "SetDesiredCapacity":
		return a.setDesiredCapacity(w, form, reqID)
	}
	return &apiError{http.StatusBadRequest, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service.", form.Get("Action"))}
}

// members are the group's instances that EC2 still has (terminated ones
// have left the group), with a.ec2.mu held.
func (a *AutoScaling) members(name string) []*Instance {
	var out []*Instance
	for i := range a.ec2.instances {
		in := &a.ec2.instances[i]
		if in.Tags[GroupTag] == name && in.State != "terminated" {
			out = append(out, in)
		}
	}
	return out
}

// reconcile launches or terminates until the group's instances (not on
// their way out) match its desired capacity, with both locks held.
func (a *AutoScaling) reconcile(g *Group, now time.Time) {
	var live []*Instance
	for _, in := range a.members(g.Name) {
		if in.State == "pending" || in.State == "running" {
			live = append(live, in)
		}
	}
	for n := len(live); n < g.Desired; n++ {
		s := a.ec2
		s.launches++
		k := s.launches
		in := Instance{
			ID: fmt.Sprintf("i-%017x", 0xa5a170000+k), State: "pending", Type: "t3.small", AZ: "eu-west-1a",
			LaunchTime: now.UTC(), Tags: map[string]string{GroupTag: g.Name}, PrivateIP: s.ec2.address(k),
			PrivateDNS: fmt.Sprintf("ip-10-0-1-%d.eu-west-1.compute.internal", k), runningAt: now.Add(s.ec2.bootDelay),
		}
		for tk, tv := range g.Tags {
			in.Tags[tk] = tv
		}
		s.instances = append(s.instances, in)
	}
	if len(live) <= g.Desired {
		return
	}
	// Closest to the next billing hour first, then the lower id.
	toHour := func(in *Instance) time.Duration { return time.Hour - now.Sub(in.LaunchTime)%time.Hour }
	sort.SliceStable(live, func(i, j int) bool {
		if ti, tj := toHour(live[i]), toHour(live[j]); ti != tj {
			return ti < tj
		}
		return live[i].ID < live[j].ID
	})
	for _, in := range live[:len(live)-g.Desired] {
		in.State = "shutting-down"
		in.goneAt = now.Add(a.ec2.ec2.shutdownDelay)
	}
}

type asgInstanceXML struct {
	InstanceID           string `xml:"InstanceId"`
	InstanceType         string `xml:"InstanceType"`
	AvailabilityZone     string `xml:"AvailabilityZone"`
	LifecycleState       string `xml:"LifecycleState"`
	HealthStatus         string `xml:"HealthStatus"`
	ProtectedFromScaleIn bool   `xml:"ProtectedFromScaleIn"`
}

type asgXML struct {
	Name              string           `xml:"AutoScalingGroupName"`
	ARN               string           `xml:"AutoScalingGroupARN"`
	MinSize           int              `xml:"MinSize"`
	MaxSize           int              `xml:"MaxSize"`
	DesiredCapacity   int              `xml:"DesiredCapacity"`
	DefaultCooldown   int              `xml:"DefaultCooldown"`
	AvailabilityZones []string         `xml:"AvailabilityZones>member"`
	HealthCheckType   string           `xml:"HealthCheckType"`
	CreatedTime       string           `xml:"CreatedTime"`
	Instances         []asgInstanceXML `xml:"Instances>member"`
}

func (a *AutoScaling) describeGroups(w http.ResponseWriter, form url.Values, reqID string) *apiError {
	names := memberList(form, "AutoScalingGroupNames")
	a.ec2.mu.Lock()
	defer a.ec2.mu.Unlock()
	now := time.Now()
	a.ec2.settle(now)
	var out []asgXML
	all := make([]string, 0, len(a.groups))
	for n := range a.groups {
		all = append(all, n)
	}
	sort.Strings(all)
	for _, name := range all {
		if len(names) > 0 && !slices.Contains(names, name) {
			continue // unknown names are left out, not an error
		}
		g := a.groups[name]
		a.reconcile(g, now)
		x := asgXML{Name: g.Name, ARN: "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:" + g.Name,
			MinSize: g.MinSize, MaxSize: g.MaxSize, DesiredCapacity: g.Desired, DefaultCooldown: 300,
			AvailabilityZones: []string{"eu-west-1a"}, HealthCheckType: "EC2", CreatedTime: "2024-01-01T00:00:00Z"}
		for _, in := range a.members(name) {
			state := map[string]string{"pending": "Pending", "running": "InService", "shutting-down": "Terminating"}[in.State]
			if state == "" {
				continue
			}
			x.Instances = append(x.Instances, asgInstanceXML{InstanceID: in.ID, InstanceType: in.Type, AvailabilityZone: "eu-west-1a",
				LifecycleState: state, HealthStatus: "Healthy"})
		}
		out = append(out, x)
	}
	writeXML(w, http.StatusOK, struct {
		XMLName  xml.Name `xml:"DescribeAutoScalingGroupsResponse"`
		Xmlns    string   `xml:"xmlns,attr"`
		Groups   []asgXML `xml:"DescribeAutoScalingGroupsResult>AutoScalingGroups>member"`
		Metadata metadata `xml:"ResponseMetadata"`
	}{Xmlns: autoScalingNamespace, Groups: out, Metadata: metadata{reqID}})
	return nil
}

func (a *AutoScaling) setDesiredCapacity(w http.ResponseWriter, form url.Values, reqID string) *apiError {
	name := form.Get("AutoScalingGroupName")
	g := a.groups[name]
	if g == nil {
		return &apiError{http.StatusBadRequest, "ValidationError", "AutoScalingGroup name not found - " + name}
	}
	n, err := strconv.Atoi(form.Get("DesiredCapacity"))
	if err != nil {
		return &apiError{http.StatusBadRequest, "ValidationError", "DesiredCapacity must be an integer"}
	}
	switch {
	case n > g.MaxSize:
		return &apiError{http.StatusBadRequest, "ValidationError",
			fmt.Sprintf("New SetDesiredCapacity value %d is above max value %d for the AutoScalingGroup.", n, g.MaxSize)}
	case n < g.MinSize:
		return &apiError{http.StatusBadRequest, "ValidationError",
			fmt.Sprintf("New SetDesiredCapacity value %d is below min value %d for the AutoScalingGroup.", n, g.MinSize)}
	}
	g.Desired = n
	writeXML(w, http.StatusOK, struct {
		XMLName  xml.Name `xml:"SetDesiredCapacityResponse"`
		Xmlns    string   `xml:"xmlns,attr"`
		Metadata metadata `xml:"ResponseMetadata"`
	}{Xmlns: autoScalingNamespace, Metadata: metadata{reqID}})
	return nil
}

// memberList reads a Query list NAME.member.1, NAME.member.2, ….
func memberList(form url.Values, name string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := form[fmt.Sprintf("%s.member.%d", name, i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}
