package awstest

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ec2Settings are how the mutating EC2 calls behave.
type ec2Settings struct {
	bootDelay, shutdownDelay time.Duration
	address                  func(n int) string
	failCode, failMessage    string
	failStatus               int
}

func defaultEC2Settings() ec2Settings {
	return ec2Settings{
		bootDelay:     50 * time.Millisecond,
		shutdownDelay: 50 * time.Millisecond,
		// Addresses as a VPC hands them out: never dialled by a test,
		// which maps them to loopback with SetAddresses.
		address: func(n int) string { return fmt.Sprintf("10.0.%d.%d", n/250, 10+n%250) },
	}
}

// SetDelays sets how long a launched instance stays pending before it is
// running, and a terminated one shutting-down before it is terminated.
func (s *Server) SetDelays(boot, shutdown time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ec2.bootDelay, s.ec2.shutdownDelay = boot, shutdown
}

// SetAddresses gives the private IP address of the nth instance
// RunInstances makes (from 1): tests map them to 127.0.0.x.
func (s *Server) SetAddresses(fn func(n int) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ec2.address = fn
}

// FailLaunches makes every RunInstances fail with this EC2 error code
// (InsufficientInstanceCapacity, HTTP 500, as EC2 answers when the zone
// has no capacity for the type); "" launches again.
func (s *Server) FailLaunches(code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ec2.failCode, s.ec2.failMessage, s.ec2.failStatus = code, message, http.StatusInternalServerError
	if code != "" && code != "InsufficientInstanceCapacity" {
		s.ec2.failStatus = http.StatusBadRequest
	}
}

// UserDataText is an instance's user data decoded from base64.
func (i Instance) UserDataText() string {
	b, _ := base64.StdEncoding.DecodeString(i.UserData)
	return string(b)
}

var dryRunError = &apiError{http.StatusPreconditionFailed, "DryRunOperation", "Request would have succeeded, but DryRun flag is set."}

func dryRun(form url.Values) bool { return form.Get("DryRun") == "true" }

// tagSpecs reads TagSpecification.N.ResourceType and .Tag.M.Key/Value,
// and returns the tags for instances.
func tagSpecs(form url.Values) (map[string]string, *apiError) {
	tags := map[string]string{}
	for n := 1; ; n++ {
		p := fmt.Sprintf("TagSpecification.%d.", n)
		rt := form.Get(p + "ResourceType")
		if rt == "" {
			if form.Has(p + "Tag.1.Key") {
				return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", "TagSpecification: a resource type is required"}
			}
			return tags, nil
		}
		for m := 1; form.Has(fmt.Sprintf("%sTag.%d.Key", p, m)); m++ {
			k := form.Get(fmt.Sprintf("%sTag.%d.Key", p, m))
			v := form.Get(fmt.Sprintf("%sTag.%d.Value", p, m))
			if rt == "instance" {
				if strings.HasPrefix(k, "aws:") {
					return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use"}
				}
				tags[k] = v
			}
		}
	}
}

func (s *Server) runInstances(w http.ResponseWriter, form url.Values, reqID string) *apiError {
	image := form.Get("ImageId")
	tmpl := form.Get("LaunchTemplate.LaunchTemplateId") + form.Get("LaunchTemplate.LaunchTemplateName")
	if image == "" && tmpl == "" {
		return &apiError{http.StatusBadRequest, "MissingParameter", "The request must contain the parameter ImageId"}
	}
	if image != "" && !strings.HasPrefix(image, "ami-") {
		return &apiError{http.StatusBadRequest, "InvalidAMIID.Malformed", fmt.Sprintf("Invalid id: %q (expecting \"ami-...\")", image)}
	}
	minC, err1 := strconv.Atoi(form.Get("MinCount"))
	maxC, err2 := strconv.Atoi(form.Get("MaxCount"))
	if err1 != nil || err2 != nil || minC < 1 || maxC < minC {
		return &apiError{http.StatusBadRequest, "InvalidParameterValue", "MinCount and MaxCount must be at least 1, MinCount no more than MaxCount"}
	}
	userData := form.Get("UserData")
	if _, err := base64.StdEncoding.DecodeString(userData); err != nil {
		return &apiError{http.StatusBadRequest, "InvalidParameterValue", "Invalid BASE64 encoding of user data."}
	}
	tags, aerr := tagSpecs(form)
	if aerr != nil {
		return aerr
	}
	if dryRun(form) {
		return dryRunError
	}
	if s.ec2.failCode != "" {
		return &apiError{s.ec2.failStatus, s.ec2.failCode, s.ec2.failMessage}
	}
	itype := form.Get("InstanceType")
	if itype == "" {
		itype = "m1.small" // EC2's default
	}
	now := time.Now().UTC()
	resp := runResponse{Xmlns: namespace, RequestID: reqID, OwnerID: "123456789012"}
	for k := 0; k < maxC; k++ {
		s.launches++
		n := s.launches
		in := Instance{
			ID: fmt.Sprintf("i-%017x", 0xda0170000+n), State: "pending", Type: itype, AZ: "eu-west-1a",
			LaunchTime: now, Tags: map[string]string{}, PrivateIP: s.ec2.address(n),
			PrivateDNS: fmt.Sprintf("ip-10-0-0-%d.eu-west-1.compute.internal", n),
			ImageID:    image, LaunchTemplate: tmpl, KeyName: form.Get("KeyName"), SubnetID: form.Get("SubnetId"),
			SecurityGroups: append(listParam(form, "SecurityGroupId"), listParam(form, "SecurityGroup")...),
			IamProfile:     form.Get("IamInstanceProfile.Name") + form.Get("IamInstanceProfile.Arn"),
			UserData:       userData, runningAt: now.Add(s.ec2.bootDelay),
		}
		for k, v := range tags {
			in.Tags[k] = v
		}
		s.instances = append(s.instances, in)
		resp.Instances = append(resp.Instances, toXML(in))
	}
	resp.ReservationID = "r-" + strings.TrimPrefix(resp.Instances[0].ID, "i-")
	writeXML(w, http.StatusOK, resp)
	return nil
}

type runResponse struct {
	XMLName       xml.Name      `xml:"RunInstancesResponse"`
	Xmlns         string        `xml:"xmlns,attr"`
	RequestID     string        `xml:"requestId"`
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Instances     []instanceXML `xml:"instancesSet>item"`
}

// find returns the index of instance id, or an InvalidInstanceID.NotFound.
func (s *Server) find(id string) (int, *apiError) {
	i := slices.IndexFunc(s.instances, func(in Instance) bool { return in.ID == id })
	if i < 0 {
		return -1, &apiError{http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id)}
	}
	return i, nil
}

// findAll finds every instance the list parameter param names: EC2
// refuses the whole request for a missing list or one unknown id.
func (s *Server) findAll(form url.Values, param string) ([]int, *apiError) {
	ids := listParam(form, param)
	if len(ids) == 0 {
		return nil, &apiError{http.StatusBadRequest, "MissingParameter", "The request must contain the parameter " + param}
	}
	var idx []int
	for _, id := range ids {
		i, aerr := s.find(id)
		if aerr != nil {
			return nil, aerr
		}
		idx = append(idx, i)
	}
	return idx, nil
}

func (s *Server) terminateInstances(w http.ResponseWriter, form url.Values, reqID string) *apiError {
	idx, aerr := s.findAll(form, "InstanceId")
	if aerr != nil {
		return aerr
	}
	if dryRun(form) {
		return dryRunError
	}
	resp := terminateResponse{Xmlns: namespace, RequestID: reqID}
	for _, i := range idx {
		in := &s.instances[i]
		prev := in.State
		if prev != "shutting-down" && prev != "terminated" {
			in.State = "shutting-down"
			in.goneAt = time.Now().Add(s.ec2.shutdownDelay)
		}
		resp.Changes = append(resp.Changes, stateChangeXML{ID: in.ID,
			Current: stateXML{stateCodes[in.State], in.State}, Previous: stateXML{stateCodes[prev], prev}})
	}
	writeXML(w, http.StatusOK, resp)
	return nil
}

type terminateResponse struct {
	XMLName   xml.Name         `xml:"TerminateInstancesResponse"`
	Xmlns     string           `xml:"xmlns,attr"`
	RequestID string           `xml:"requestId"`
	Changes   []stateChangeXML `xml:"instancesSet>item"`
}

type stateChangeXML struct {
	ID       string   `xml:"instanceId"`
	Current  stateXML `xml:"currentState"`
	Previous stateXML `xml:"previousState"`
}

func (s *Server) createTags(w http.ResponseWriter, form url.Values, reqID string) *apiError {
	idx, aerr := s.findAll(form, "ResourceId")
	if aerr != nil {
		return aerr
	}
	tags := map[string]string{}
	for n := 1; form.Has(fmt.Sprintf("Tag.%d.Key", n)); n++ {
		tags[form.Get(fmt.Sprintf("Tag.%d.Key", n))] = form.Get(fmt.Sprintf("Tag.%d.Value", n))
	}
	if dryRun(form) {
		return dryRunError
	}
	for _, i := range idx {
		if s.instances[i].Tags == nil {
			s.instances[i].Tags = map[string]string{}
		}
		for k, v := range tags {
			s.instances[i].Tags[k] = v
		}
	}
	writeXML(w, http.StatusOK, struct {
		XMLName   xml.Name `xml:"CreateTagsResponse"`
		Xmlns     string   `xml:"xmlns,attr"`
		RequestID string   `xml:"requestId"`
		Return    bool     `xml:"return"`
	}{Xmlns: namespace, RequestID: reqID, Return: true})
	return nil
}
