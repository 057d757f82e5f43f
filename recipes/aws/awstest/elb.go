package awstest

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"time"
)

// Balancing says how a load balancer treats what is registered with it:
// a new instance or target is unhealthy (OutOfService, initial) until
// HealthyAfter has passed, and a deregistered one drains for DrainFor
// (connection draining, the deregistration delay) before it is gone.
type Balancing struct {
	HealthyAfter time.Duration
	DrainFor     time.Duration
}

// member is one registered instance or target.
type member struct {
	healthyAt  time.Time
	drainUntil time.Time // zero unless draining
}

// draining reports whether m is draining at now; once the drain is over the
// caller removes it.
func (m member) draining(now time.Time) bool {
	return !m.drainUntil.IsZero() && now.Before(m.drainUntil)
}

func (m member) gone(now time.Time) bool { return !m.drainUntil.IsZero() && !now.Before(m.drainUntil) }

type classicLB struct {
	b       Balancing
	members map[string]member
}

// AddLoadBalancer adds a classic load balancer named name.
func (s *Server) AddLoadBalancer(name string, b Balancing) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.elbs[name] = &classicLB{b: b, members: map[string]member{}}
}

// Registered lists the instances registered with a classic load
// balancer (draining ones included), sorted.
func (s *Server) Registered(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lb := s.elbs[name]
	if lb == nil {
		return nil
	}
	return lb.ids(time.Now())
}

func (lb *classicLB) ids(now time.Time) []string {
	var out []string
	for id, m := range lb.members {
		if m.gone(now) {
			delete(lb.members, id)
			continue
		}
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func (s *Server) classic(form url.Values) (*classicLB, *apiError) {
	name := form.Get("LoadBalancerName")
	lb := s.elbs[name]
	if lb == nil {
		return nil, &apiError{http.StatusBadRequest, "LoadBalancerNotFound", fmt.Sprintf("There is no ACTIVE Load Balancer named '%s'", name)}
	}
	return lb, nil
}

// memberIDs reads Instances.member.N.InstanceId.
// A field of "" reads a list of plain values (Names.member.N).
func memberIDs(form url.Values, list, field string) []string {
	var out []string
	for n := 1; ; n++ {
		k := fmt.Sprintf("%s.member.%d", list, n)
		if field != "" {
			k += "." + field
		}
		if !form.Has(k) {
			return out
		}
		out = append(out, form.Get(k))
	}
}

func (s *Server) registerInstances(w http.ResponseWriter, form url.Values, reqID string) *apiError {
	lb, aerr := s.classic(form)
	if aerr != nil {
		return aerr
	}
	ids := memberIDs(form, "Instances", "InstanceId")
	if len(ids) == 0 {
		return &apiError{http.StatusBadRequest, "ValidationError", "Instances is required"}
	}
	now := time.Now()
	for _, id := range ids {
		i, _ := s.find(id)
		if i < 0 || s.instances[i].State != "running" {
			return &apiError{http.StatusBadRequest, "InvalidInstance", fmt.Sprintf("EC2 instance %s is not in running state.", id)}
		}
	}
	for _, id := range ids {
		if m, ok := lb.members[id]; ok && !m.draining(now) && !m.gone(now) {
			continue // registering twice changes nothing
		}
		lb.members[id] = member{healthyAt: now.Add(lb.b.HealthyAfter)}
	}
	s.writeInstances(w, "RegisterInstancesWithLoadBalancer", lb.ids(now), reqID)
	return nil
}

func (s *Server) deregisterInstances(w http.ResponseWriter, form url.Values, reqID string) *apiError {
	lb, aerr := s.classic(form)
	if aerr != nil {
		return aerr
	}
	ids := memberIDs(form, "Instances", "InstanceId")
	now := time.Now()
	for _, id := range ids {
		m, ok := lb.members[id]
		if !ok || m.gone(now) {
			return &apiError{http.StatusBadRequest, "InvalidInstance", fmt.Sprintf("The requested instance %s is not registered with load balancer %s", id, form.Get("LoadBalancerName"))}
		}
	}
	for _, id := range ids {
		m := lb.members[id]
		if m.drainUntil.IsZero() {
			m.drainUntil = now.Add(lb.b.DrainFor)
			lb.members[id] = m
		}
	}
	// The answer lists what stays registered: draining instances are on
	// their way out.
	var left []string
	for _, id := range lb.ids(now) {
		if lb.members[id].drainUntil.IsZero() {
			left = append(left, id)
		}
	}
	s.writeInstances(w, "DeregisterInstancesFromLoadBalancer", left, reqID)
	return nil
}

type instanceIDXML struct {
	ID string `xml:"InstanceId"`
}

func (s *Server) writeInstances(w http.ResponseWriter, action string, ids []string, reqID string) {
	type result struct {
		XMLName   xml.Name
		Instances []instanceIDXML `xml:"Instances>member"`
	}
	resp := struct {
		XMLName  xml.Name
		Xmlns    string `xml:"xmlns,attr"`
		Result   result
		Metadata metadata `xml:"ResponseMetadata"`
	}{XMLName: xml.Name{Local: action + "Response"}, Xmlns: elbNamespace + ELBVersion + "/",
		Result: result{XMLName: xml.Name{Local: action + "Result"}}, Metadata: metadata{reqID}}
	for _, id := range ids {
		resp.Result.Instances = append(resp.Result.Instances, instanceIDXML{id})
	}
	writeXML(w, http.StatusOK, resp)
}

type instanceStateXML struct {
	Description string `xml:"Description"`
	InstanceID  string `xml:"InstanceId"`
	State       string `xml:"State"`
	ReasonCode  string `xml:"ReasonCode"`
}

func (s *Server) describeInstanceHealth(w http.ResponseWriter, form url.Values, reqID string) *apiError {
	lb, aerr := s.classic(form)
	if aerr != nil {
		return aerr
	}
	now := time.Now()
	ids := memberIDs(form, "Instances", "InstanceId")
	if len(ids) == 0 {
		ids = lb.ids(now)
	}
	var states []instanceStateXML
	for _, id := range ids {
		m, ok := lb.members[id]
		if !ok || m.gone(now) {
			return &apiError{http.StatusBadRequest, "InvalidInstance", fmt.Sprintf("Could not find EC2 instance %s registered with load balancer %s.", id, form.Get("LoadBalancerName"))}
		}
		st := instanceStateXML{InstanceID: id, State: "InService", ReasonCode: "N/A", Description: "N/A"}
		switch i, _ := s.find(id); {
		case m.draining(now):
			// What AWS reports while connection draining runs.
			st.Description = "Instance deregistration currently in progress."
		case i < 0 || s.instances[i].State != "running":
			st.State, st.ReasonCode, st.Description = "OutOfService", "Instance", "Instance is not running."
		case now.Before(m.healthyAt):
			st.State, st.ReasonCode = "OutOfService", "ELB"
			st.Description = "Instance has not passed the configured HealthyThreshold number of health checks consecutively."
		}
		states = append(states, st)
	}
	writeXML(w, http.StatusOK, struct {
		XMLName  xml.Name           `xml:"DescribeInstanceHealthResponse"`
		Xmlns    string             `xml:"xmlns,attr"`
		States   []instanceStateXML `xml:"DescribeInstanceHealthResult>InstanceStates>member"`
		Metadata metadata           `xml:"ResponseMetadata"`
	}{Xmlns: elbNamespace + ELBVersion + "/", States: states, Metadata: metadata{reqID}})
	return nil
}

// Register seeds registrations: the instances are registered with the
// classic load balancer name, or the target group whose ARN is name, and
// healthy at once.
func (s *Server) Register(name string, ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	members := map[string]member{}
	if lb := s.elbs[name]; lb != nil {
		members = lb.members
	} else if g := s.groups[name]; g != nil {
		members = g.members
	}
	for _, id := range ids {
		members[id] = member{}
	}
}
