// Package awstest is an AWS endpoint for tests: one HTTP server on
// 127.0.0.1 that speaks the Query protocols of EC2 (DescribeInstances,
// RunInstances, TerminateInstances, CreateTags), the classic Elastic Load
// Balancing API (2012-06-01) and Elastic Load Balancing v2 (2015-12-01)
// for the calls davit makes, with AWS's documented semantics: filters and
// tag filters, MaxResults/NextToken paging, tags from TagSpecifications,
// user data, pending → running after a delay, shutting-down → terminated,
// DryRun answered with DryRunOperation, registration that turns healthy
// after a delay and deregistration that drains, error XML and throttling.
// The real aws-sdk-go-v2 clients are pointed at it with AWS_ENDPOINT_URL;
// the request's Version says which API it is for.
//
// Files: server.go (the server, DescribeInstances), ec2.go (the mutating
// EC2 calls), elb.go (classic load balancers), elbv2.go (target groups).
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

// APIVersion is the EC2 API version the SDK sends and the namespace of
// every answer.
const APIVersion = "2016-11-15"

const namespace = "http://ec2.amazonaws.com/doc/" + APIVersion + "/"

// Instance is one seeded EC2 instance.
type Instance struct {
	ID string
	// State is the instance-state-name: pending, running, shutting-down,
	// terminated, stopping or stopped. "" means running.
	State      string
	Type       string
	AZ         string
	LaunchTime time.Time
	Tags       map[string]string
	PrivateIP  string
	PublicIP   string
	PrivateDNS string
	PublicDNS  string

	// What RunInstances was given, for tests to check (seeded instances
	// may leave them empty). UserData is as sent: base64.
	ImageID        string
	LaunchTemplate string // the template's id or name
	KeyName        string
	SubnetID       string
	SecurityGroups []string // ids and names, in the order sent
	IamProfile     string   // the profile's name or ARN
	UserData       string

	// runningAt and goneAt are when a pending instance becomes running
	// and a shutting-down one terminated.
	runningAt, goneAt time.Time
}

// stateCodes are EC2's documented instance state codes.
var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

// Server is a running test endpoint. Its methods are safe to call while
// requests are served.
type Server struct {
	// URL is the endpoint ("http://127.0.0.1:PORT"), for AWS_ENDPOINT_URL.
	URL string

	mu        sync.Mutex
	instances []Instance
	throttle  int
	requests  []url.Values
	launches  int // instances RunInstances has made, for ids and addresses
	ec2       ec2Settings
	elbs      map[string]*classicLB
	groups    map[string]*targetGroup // by ARN
}

// NewServer starts a server on 127.0.0.1, closed when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{elbs: map[string]*classicLB{}, groups: map[string]*targetGroup{}}
	s.ec2 = defaultEC2Settings()
	hs := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

// AddInstances seeds instances, in the order DescribeInstances returns
// them. A state left empty is running.
func (s *Server) AddInstances(in ...Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, i := range in {
		if i.State == "" {
			i.State = "running"
		}
		s.instances = append(s.instances, i)
	}
}

// Throttle makes the next n API calls fail as AWS does when a caller
// exceeds its request rate: RequestLimitExceeded (HTTP 503) from EC2,
// Throttling (HTTP 400) from the load balancer APIs.
func (s *Server) Throttle(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = n
}

// Requests returns the form of every API call received, throttled ones
// included.
func (s *Server) Requests() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Actions returns the Action of every API call received, in order.
func (s *Server) Actions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.requests))
	for i, r := range s.requests {
		out[i] = r.Get("Action")
	}
	return out
}

// Instances returns every instance as it is now, in launch order.
func (s *Server) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle(time.Now())
	return slices.Clone(s.instances)
}

// settle moves instances whose time has come: pending to running,
// shutting-down to terminated.
func (s *Server) settle(now time.Time) {
	for i := range s.instances {
		in := &s.instances[i]
		switch {
		case in.State == "pending" && !now.Before(in.runningAt):
			in.State = "running"
		case in.State == "shutting-down" && !now.Before(in.goneAt):
			in.State = "terminated"
		}
	}
}

// apiError is an error answer.
type apiError struct {
	status        int
	code, message string
}

// The API versions served besides EC2's, and their namespaces.
const (
	ELBVersion   = "2012-06-01"
	ELBv2Version = "2015-12-01"
	elbNamespace = "http://elasticloadbalancing.amazonaws.com/doc/"
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	reqID := fmt.Sprintf("req-%d", time.Now().UnixNano())
	if err := s.handle(w, r, reqID); err != nil {
		if v := r.PostForm.Get("Version"); v == ELBVersion || v == ELBv2Version {
			writeQueryError(w, v, reqID, err)
			return
		}
		writeError(w, reqID, err)
	}
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request, reqID string) *apiError {
	if r.Method != http.MethodPost {
		return &apiError{http.StatusBadRequest, "InvalidAction", "the EC2 Query API takes a form-encoded POST"}
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return &apiError{http.StatusBadRequest, "InvalidParameterValue", "unsupported content type " + ct}
	}
	if err := r.ParseForm(); err != nil {
		return &apiError{http.StatusBadRequest, "MalformedQueryString", err.Error()}
	}
	form := r.PostForm
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, form)
	throttled := s.throttle > 0
	if throttled {
		s.throttle--
	}
	s.settle(time.Now())

	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=") {
		return &apiError{http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials"}
	}
	version, action := form.Get("Version"), form.Get("Action")
	if throttled {
		if version == APIVersion {
			return &apiError{http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded."}
		}
		return &apiError{http.StatusBadRequest, "Throttling", "Rate exceeded"}
	}
	var handler func(http.ResponseWriter, url.Values, string) *apiError
	switch version {
	case APIVersion:
		handler = map[string]func(http.ResponseWriter, url.Values, string) *apiError{
			"DescribeInstances":  s.describeInstances,
			"RunInstances":       s.runInstances,
			"TerminateInstances": s.terminateInstances,
			"CreateTags":         s.createTags,
		}[action]
	case ELBVersion:
		handler = map[string]func(http.ResponseWriter, url.Values, string) *apiError{
			"RegisterInstancesWithLoadBalancer":   s.registerInstances,
			"DeregisterInstancesFromLoadBalancer": s.deregisterInstances,
			"DescribeInstanceHealth":              s.describeInstanceHealth,
		}[action]
	case ELBv2Version:
		handler = map[string]func(http.ResponseWriter, url.Values, string) *apiError{
			"DescribeTargetGroups": s.describeTargetGroups,
			"RegisterTargets":      s.registerTargets,
			"DeregisterTargets":    s.deregisterTargets,
			"DescribeTargetHealth": s.describeTargetHealth,
		}[action]
	default:
		return &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("unsupported Version %q", version)}
	}
	if handler == nil {
		return &apiError{http.StatusBadRequest, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service.", action)}
	}
	return handler(w, form, reqID)
}

// filter is one Filter.N: a name and the values any of which may match.
type filter struct {
	name   string
	values []string
}

// parseFilters reads Filter.N.Name and Filter.N.Value.M, in N order.
func parseFilters(form url.Values) ([]filter, *apiError) {
	byN := map[int]*filter{}
	for key, vals := range form {
		rest, ok := strings.CutPrefix(key, "Filter.")
		if !ok {
			continue
		}
		nStr, field, _ := strings.Cut(rest, ".")
		n, err := strconv.Atoi(nStr)
		if err != nil || n < 1 {
			return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", "bad parameter " + key}
		}
		f := byN[n]
		if f == nil {
			f = &filter{}
			byN[n] = f
		}
		switch {
		case field == "Name":
			f.name = vals[0]
		case strings.HasPrefix(field, "Value."):
			f.values = append(f.values, vals[0])
		default:
			return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", "bad parameter " + key}
		}
	}
	ns := make([]int, 0, len(byN))
	for n := range byN {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	out := make([]filter, 0, len(ns))
	for _, n := range ns {
		f := byN[n]
		if f.name == "" {
			return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("Filter.%d has no Name", n)}
		}
		out = append(out, *f)
	}
	return out, nil
}

// fields returns what filter name selects from an instance, and whether the
// name is a filter this server knows.
func fields(name string, i Instance) ([]string, bool) {
	one := func(s string) []string {
		if s == "" {
			return nil
		}
		return []string{s}
	}
	if k, ok := strings.CutPrefix(name, "tag:"); ok {
		if v, has := i.Tags[k]; has {
			return []string{v}, true
		}
		return nil, true
	}
	switch name {
	case "tag-key":
		return mapKeys(i.Tags), true
	case "tag-value":
		var vs []string
		for _, v := range i.Tags {
			vs = append(vs, v)
		}
		return vs, true
	case "instance-state-name":
		return one(i.State), true
	case "instance-state-code":
		return []string{strconv.Itoa(stateCodes[i.State])}, true
	case "instance-id":
		return one(i.ID), true
	case "instance-type":
		return one(i.Type), true
	case "availability-zone":
		return one(i.AZ), true
	case "private-ip-address":
		return one(i.PrivateIP), true
	case "ip-address":
		return one(i.PublicIP), true
	case "private-dns-name":
		return one(i.PrivateDNS), true
	case "dns-name":
		return one(i.PublicDNS), true
	}
	return nil, false
}

func mapKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// matches applies EC2's filter rules: every filter must match; within one,
// any value may, and values may use the * and ? wildcards.
func matches(i Instance, filters []filter) bool {
	for _, f := range filters {
		have, _ := fields(f.name, i)
		if !slices.ContainsFunc(f.values, func(pattern string) bool {
			return slices.ContainsFunc(have, func(h string) bool { return Glob(pattern, h) })
		}) {
			return false
		}
	}
	return true
}

// Glob matches s against an EC2 filter value: * is any run of characters,
// ? any one character, and everything else matches itself.
func Glob(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '*':
		for k := 0; k <= len(s); k++ {
			if Glob(pattern[1:], s[k:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && Glob(pattern[1:], s[1:])
	}
	return s != "" && s[0] == pattern[0] && Glob(pattern[1:], s[1:])
}

func (s *Server) describeInstances(w http.ResponseWriter, form url.Values, reqID string) *apiError {
	all := s.instances
	filters, aerr := parseFilters(form)
	if aerr != nil {
		return aerr
	}
	for _, f := range filters {
		if _, known := fields(f.name, Instance{}); !known {
			return &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("The filter '%s' is invalid", f.name)}
		}
	}
	ids := listParam(form, "InstanceId")
	maxResults := 0
	if v := form.Get("MaxResults"); v != "" {
		if len(ids) > 0 {
			return &apiError{http.StatusBadRequest, "InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults"}
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 || n > 1000 {
			return &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("Value ( %s ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.", v)}
		}
		maxResults = n
	}
	var matched []Instance
	for _, i := range all {
		if len(ids) > 0 && !slices.Contains(ids, i.ID) {
			continue
		}
		if matches(i, filters) {
			matched = append(matched, i)
		}
	}
	for _, id := range ids {
		if !slices.ContainsFunc(all, func(i Instance) bool { return i.ID == id }) {
			return &apiError{http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id)}
		}
	}
	start := 0
	if tok := form.Get("NextToken"); tok != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(tok, "page-"))
		if !strings.HasPrefix(tok, "page-") || err != nil || n < 0 || n > len(matched) {
			return &apiError{http.StatusBadRequest, "InvalidParameterValue", "Invalid value '" + tok + "' for nextToken"}
		}
		start = n
	}
	end := len(matched)
	if maxResults > 0 && start+maxResults < end {
		end = start + maxResults
	}
	resp := describeResponse{Xmlns: namespace, RequestID: reqID}
	for _, i := range matched[start:end] {
		resp.Reservations = append(resp.Reservations, reservationXML{
			ID: "r-" + strings.TrimPrefix(i.ID, "i-"), OwnerID: "123456789012",
			Instances: []instanceXML{toXML(i)},
		})
	}
	if end < len(matched) {
		resp.NextToken = fmt.Sprintf("page-%d", end)
	}
	writeXML(w, http.StatusOK, resp)
	return nil
}

type describeResponse struct {
	XMLName      xml.Name         `xml:"DescribeInstancesResponse"`
	Xmlns        string           `xml:"xmlns,attr"`
	RequestID    string           `xml:"requestId"`
	Reservations []reservationXML `xml:"reservationSet>item"`
	NextToken    string           `xml:"nextToken,omitempty"`
}

type reservationXML struct {
	ID        string        `xml:"reservationId"`
	OwnerID   string        `xml:"ownerId"`
	Instances []instanceXML `xml:"instancesSet>item"`
}

type instanceXML struct {
	ID         string   `xml:"instanceId"`
	ImageID    string   `xml:"imageId,omitempty"`
	State      stateXML `xml:"instanceState"`
	PrivateDNS string   `xml:"privateDnsName"`
	PublicDNS  string   `xml:"dnsName"`
	KeyName    string   `xml:"keyName,omitempty"`
	Type       string   `xml:"instanceType"`
	LaunchTime string   `xml:"launchTime"`
	AZ         string   `xml:"placement>availabilityZone"`
	PrivateIP  string   `xml:"privateIpAddress,omitempty"`
	PublicIP   string   `xml:"ipAddress,omitempty"`
	SubnetID   string   `xml:"subnetId,omitempty"`
	Tags       []tagXML `xml:"tagSet>item"`
}

type stateXML struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type tagXML struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func toXML(i Instance) instanceXML {
	x := instanceXML{
		ID: i.ID, ImageID: i.ImageID, KeyName: i.KeyName, SubnetID: i.SubnetID, State: stateXML{stateCodes[i.State], i.State},
		PrivateDNS: i.PrivateDNS, PublicDNS: i.PublicDNS, Type: i.Type,
		LaunchTime: i.LaunchTime.UTC().Format("2006-01-02T15:04:05.000Z"),
		AZ:         i.AZ, PrivateIP: i.PrivateIP, PublicIP: i.PublicIP,
	}
	for _, k := range mapKeys(i.Tags) {
		x.Tags = append(x.Tags, tagXML{k, i.Tags[k]})
	}
	return x
}

type errorResponse struct {
	XMLName   xml.Name `xml:"Response"`
	Errors    []errXML `xml:"Errors>Error"`
	RequestID string   `xml:"RequestID"`
}

type errXML struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func writeError(w http.ResponseWriter, reqID string, e *apiError) {
	writeXML(w, e.status, errorResponse{Errors: []errXML{{e.code, e.message}}, RequestID: reqID})
}

func writeXML(w http.ResponseWriter, status int, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	w.Write([]byte(xml.Header))
	w.Write(body)
}

// listParam reads a flat Query list, NAME.1, NAME.2, ... in order.
func listParam(form url.Values, name string) []string {
	var out []string
	for n := 1; form.Has(name + "." + strconv.Itoa(n)); n++ {
		out = append(out, form.Get(name+"."+strconv.Itoa(n)))
	}
	return out
}

// errorResponseQuery is the error answer of the load balancer APIs.
type errorResponseQuery struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

func writeQueryError(w http.ResponseWriter, version, reqID string, e *apiError) {
	kind := "Sender"
	if e.status >= 500 {
		kind = "Receiver"
	}
	writeXML(w, e.status, errorResponseQuery{Xmlns: elbNamespace + version + "/", Type: kind, Code: e.code, Message: e.message, RequestID: reqID})
}

// metadata is the ResponseMetadata of a load balancer API answer.
type metadata struct {
	RequestID string `xml:"RequestId"`
}
