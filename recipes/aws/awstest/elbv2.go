package awstest

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"time"
)

type targetGroup struct {
	name, arn string
	b         Balancing
	members   map[string]member
}

// AddTargetGroup adds an ELBv2 target group of instances named name and
// returns its ARN.
func (s *Server) AddTargetGroup(name string, b Balancing) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	arn := fmt.Sprintf("arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/%s/%016x", name, len(s.groups)+0x73e2d6bc24d8a067)
	s.groups[arn] = &targetGroup{name: name, arn: arn, b: b, members: map[string]member{}}
	return arn
}

// Targets lists the targets registered in a target group (draining ones
// included), sorted.
func (s *Server) Targets(arn string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[arn]
	if g == nil {
		return nil
	}
	return g.ids(time.Now())
}

func (g *targetGroup) ids(now time.Time) []string {
	var out []string
	for id, m := range g.members {
		if m.gone(now) {
			delete(g.members, id)
			continue
		}
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

var errGroupNotFound = &apiError{http.StatusBadRequest, "TargetGroupNotFound", "One or more target groups not found"}

func (s *Server) group(form url.Values) (*targetGroup, *apiError) {
	g := s.groups[form.Get("TargetGroupArn")]
	if g == nil {
		return nil, errGroupNotFound
	}
	return g, nil
}

type targetGroupXML struct {
	ARN        string `xml:"TargetGroupArn"`
	Name       string `xml:"TargetGroupName"`
	Protocol   string `xml:"Protocol"`
	Port       int    `xml:"Port"`
	TargetType string `xml:"TargetType"`
}

func (s *Server) describeTargetGroups(w http.ResponseWriter, form url.Values, reqID string) *apiError {
	names := memberIDs(form, "Names", "")
	arns := memberIDs(form, "TargetGroupArns", "")
	var out []targetGroupXML
	var all []*targetGroup
	for _, g := range s.groups {
		all = append(all, g)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].arn < all[j].arn })
	for _, g := range all {
		if (len(names) == 0 || slices.Contains(names, g.name)) && (len(arns) == 0 || slices.Contains(arns, g.arn)) {
			out = append(out, targetGroupXML{ARN: g.arn, Name: g.name, Protocol: "HTTP", Port: 80, TargetType: "instance"})
		}
	}
	if len(out) < len(names)+len(arns) {
		return errGroupNotFound
	}
	writeXML(w, http.StatusOK, struct {
		XMLName  xml.Name         `xml:"DescribeTargetGroupsResponse"`
		Xmlns    string           `xml:"xmlns,attr"`
		Groups   []targetGroupXML `xml:"DescribeTargetGroupsResult>TargetGroups>member"`
		Metadata metadata         `xml:"ResponseMetadata"`
	}{Xmlns: elbNamespace + ELBv2Version + "/", Groups: out, Metadata: metadata{reqID}})
	return nil
}

func (s *Server) targetIDs(form url.Values) ([]string, *apiError) {
	ids := memberIDs(form, "Targets", "Id")
	if len(ids) == 0 {
		return nil, &apiError{http.StatusBadRequest, "ValidationError", "Targets is required"}
	}
	return ids, nil
}

func (s *Server) registerTargets(w http.ResponseWriter, form url.Values, reqID string) *apiError {
	g, aerr := s.group(form)
	if aerr != nil {
		return aerr
	}
	ids, aerr := s.targetIDs(form)
	if aerr != nil {
		return aerr
	}
	for _, id := range ids {
		if i, _ := s.find(id); i < 0 || s.instances[i].State != "running" {
			return &apiError{http.StatusBadRequest, "InvalidTarget", fmt.Sprintf("The following targets are not in a running state and cannot be registered: '%s'", id)}
		}
	}
	now := time.Now()
	for _, id := range ids {
		if m, ok := g.members[id]; ok && m.drainUntil.IsZero() {
			continue
		}
		g.members[id] = member{healthyAt: now.Add(g.b.HealthyAfter)}
	}
	writeEmpty(w, "RegisterTargets", reqID)
	return nil
}

func (s *Server) deregisterTargets(w http.ResponseWriter, form url.Values, reqID string) *apiError {
	g, aerr := s.group(form)
	if aerr != nil {
		return aerr
	}
	ids, aerr := s.targetIDs(form)
	if aerr != nil {
		return aerr
	}
	now := time.Now()
	for _, id := range ids {
		if i, _ := s.find(id); i < 0 {
			return &apiError{http.StatusBadRequest, "InvalidTarget", fmt.Sprintf("The following targets are not valid: '%s'", id)}
		}
	}
	for _, id := range ids {
		if m, ok := g.members[id]; ok && m.drainUntil.IsZero() {
			m.drainUntil = now.Add(g.b.DrainFor)
			g.members[id] = m
		}
	}
	writeEmpty(w, "DeregisterTargets", reqID)
	return nil
}

func writeEmpty(w http.ResponseWriter, action, reqID string) {
	type result struct{ XMLName xml.Name }
	writeXML(w, http.StatusOK, struct {
		XMLName  xml.Name
		Xmlns    string `xml:"xmlns,attr"`
		Result   result
		Metadata metadata `xml:"ResponseMetadata"`
	}{XMLName: xml.Name{Local: action + "Response"}, Xmlns: elbNamespace + ELBv2Version + "/",
		Result: result{xml.Name{Local: action + "Result"}}, Metadata: metadata{reqID}})
}

type targetHealthXML struct {
	ID          string `xml:"Target>Id"`
	State       string `xml:"TargetHealth>State"`
	Reason      string `xml:"TargetHealth>Reason,omitempty"`
	Description string `xml:"TargetHealth>Description,omitempty"`
}

func (s *Server) describeTargetHealth(w http.ResponseWriter, form url.Values, reqID string) *apiError {
	g, aerr := s.group(form)
	if aerr != nil {
		return aerr
	}
	now := time.Now()
	ids := memberIDs(form, "Targets", "Id")
	if len(ids) == 0 {
		ids = g.ids(now)
	}
	var out []targetHealthXML
	for _, id := range ids {
		i, _ := s.find(id)
		if i < 0 {
			return &apiError{http.StatusBadRequest, "InvalidTarget", fmt.Sprintf("The following targets are not valid: '%s'", id)}
		}
		m, ok := g.members[id]
		th := targetHealthXML{ID: id, State: "healthy"}
		switch {
		case !ok || m.gone(now):
			th.State, th.Reason, th.Description = "unused", "Target.NotRegistered", "Target is not registered to the target group"
		case m.draining(now):
			th.State, th.Reason, th.Description = "draining", "Target.DeregistrationInProgress", "Target deregistration is in progress"
		case s.instances[i].State != "running":
			th.State, th.Reason, th.Description = "unused", "Target.InvalidState", "Target is in the stopped state"
		case now.Before(m.healthyAt):
			th.State, th.Reason, th.Description = "initial", "Elb.RegistrationInProgress", "Target registration is in progress"
		}
		out = append(out, th)
	}
	writeXML(w, http.StatusOK, struct {
		XMLName  xml.Name          `xml:"DescribeTargetHealthResponse"`
		Xmlns    string            `xml:"xmlns,attr"`
		Health   []targetHealthXML `xml:"DescribeTargetHealthResult>TargetHealthDescriptions>member"`
		Metadata metadata          `xml:"ResponseMetadata"`
	}{Xmlns: elbNamespace + ELBv2Version + "/", Health: out, Metadata: metadata{reqID}})
	return nil
}
