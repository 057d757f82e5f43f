package aws

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/davit-deploy/davit/tasks"
)

// DefaultLaunchTimeout bounds a launch from RunInstances to healthy in its
// load balancer, and a terminate's wait for draining.
const DefaultLaunchTimeout = 10 * time.Minute

// Launcher is how a role's instances are made: what launcher() in a stage
// declares. It inherits the stage's ec2_servers tags (and region), so
// discovery always finds what it launched.
type Launcher struct {
	Role string
	// AMI or LaunchTemplate (an lt- id or a template's name), one of them.
	AMI, LaunchTemplate string
	InstanceType        string
	KeyName             string
	// SecurityGroups are sg- ids or group names; Subnets are used in
	// turn, one per launched instance.
	SecurityGroups, Subnets []string
	// IamProfile is an instance profile's name or ARN.
	IamProfile string
	// Tags are added to the stage's and davit's own.
	Tags map[string]string
	// UserData are KEY=VALUE pairs, in the order given; ROLE, STAGE and
	// REVISION are added by the launch.
	UserData [][2]string
	// ELB names a classic load balancer, TargetGroup an ELBv2 target
	// group (ARN or name); at most one.
	ELB, TargetGroup string
	// KeepOnFailure leaves an instance whose launch failed running, for
	// a person to look at.
	KeepOnFailure bool
	Timeout       time.Duration
	Pos           tasks.Position
}

// reservedUserData are the user data keys the launch sets itself.
var reservedUserData = []string{"ROLE", "STAGE", "REVISION"}

// HasLB reports whether the role's instances serve behind a load balancer.
func (l *Launcher) HasLB() bool { return l.ELB != "" || l.TargetGroup != "" }

// lbName says which load balancer, for messages.
func (l *Launcher) lbName() string {
	if l.ELB != "" {
		return "load balancer " + l.ELB
	}
	return "target group " + shortGroup(l.TargetGroup)
}

// shortGroup is a target group's name from its ARN (…:targetgroup/NAME/ID).
func shortGroup(s string) string {
	if _, rest, ok := strings.Cut(s, ":targetgroup/"); ok {
		name, _, _ := strings.Cut(rest, "/")
		return name
	}
	return s
}

func launcherBuiltin(r *Recipe) tasks.Builtin {
	return tasks.Builtin{
		Name: "launcher",
		Doc:  "Declares how a role's EC2 instances are launched (for the launch, terminate and scale tasks); inherits the stage's ec2_servers tags.",
		Params: []tasks.Param{
			{Name: "role", Kind: tasks.KindString},
			{Name: "ami", Optional: true, Kind: tasks.KindString},
			{Name: "launch_template", Optional: true, Kind: tasks.KindString},
			{Name: "instance_type", Optional: true, Kind: tasks.KindString},
			{Name: "key_name", Optional: true, Kind: tasks.KindString},
			{Name: "security_groups", Optional: true, Kind: tasks.KindStrings},
			{Name: "subnets", Optional: true, Kind: tasks.KindStrings},
			{Name: "iam_profile", Optional: true, Kind: tasks.KindString},
			{Name: "tags", Optional: true, Kind: tasks.KindDict},
			{Name: "user_data", Optional: true, Kind: tasks.KindAny},
			{Name: "elb", Optional: true, Kind: tasks.KindString},
			{Name: "target_group", Optional: true, Kind: tasks.KindString},
			{Name: "keep_on_failure", Optional: true, Kind: tasks.KindBool},
			{Name: "launch_timeout", Optional: true, Kind: tasks.KindDuration},
		},
		Phases: tasks.PhaseStage,
		Call:   r.launcher,
	}
}

func (r *Recipe) launcher(c *tasks.BuiltinCall) (any, error) {
	l := &Launcher{
		Role: strings.TrimSpace(c.String("role")), AMI: c.String("ami"), LaunchTemplate: c.String("launch_template"),
		InstanceType: c.String("instance_type"), KeyName: c.String("key_name"),
		SecurityGroups: c.Strings("security_groups"), Subnets: c.Strings("subnets"), IamProfile: c.String("iam_profile"),
		ELB: c.String("elb"), TargetGroup: c.String("target_group"), KeepOnFailure: c.Bool("keep_on_failure"),
		Timeout: DefaultLaunchTimeout, Pos: c.Pos,
	}
	if c.Has("launch_timeout") {
		l.Timeout = c.Duration("launch_timeout")
	}
	var err error
	if l.Tags, err = tagsArg(c.Dict("tags")); err != nil {
		return nil, fmt.Errorf("launcher: %w", err)
	}
	if l.UserData, err = userDataArg(c.Args["user_data"]); err != nil {
		return nil, err
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if err := r.addLauncher(c.Stage, l); err != nil {
		return nil, err
	}
	return nil, nil
}

// Validate checks everything that can be checked without AWS, all at once.
func (l *Launcher) Validate() error {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if l.Role == "" || strings.ContainsAny(l.Role, ", ") {
		bad("role=%q: give one role name", l.Role)
	}
	switch {
	case l.AMI == "" && l.LaunchTemplate == "":
		bad("give ami= or launch_template=")
	case l.AMI != "" && l.LaunchTemplate != "":
		bad("ami= and launch_template= both given; give one (the template can name the AMI)")
	case l.AMI != "" && !strings.HasPrefix(l.AMI, "ami-"):
		bad("ami=%q is not an AMI id (ami-...)", l.AMI)
	}
	if l.LaunchTemplate == "" && l.InstanceType == "" {
		bad("give instance_type= (or a launch_template= that sets it)")
	}
	if l.ELB != "" && l.TargetGroup != "" {
		bad("elb= and target_group= both given; a role is behind one load balancer")
	}
	if l.Timeout <= 0 {
		bad("launch_timeout=%s: it must be more than 0 seconds", l.Timeout)
	}
	for _, s := range l.Subnets {
		if !strings.HasPrefix(s, "subnet-") {
			bad("subnets: %q is not a subnet id (subnet-...)", s)
		}
	}
	for _, k := range sortedKeys(l.Tags) {
		if strings.HasPrefix(k, "aws:") || strings.HasPrefix(k, "davit:") || k == "Name" {
			bad("tags: %q is set by AWS or by davit itself", k)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("launcher(%q): %s", l.Role, strings.Join(problems, "; "))
	}
	return nil
}

// userDataArg reads user_data= as a dict {"DB": "10.0.0.5"} (sorted by
// key) or a string "DB=10.0.0.5;MODE=web" (in its order).
func userDataArg(v any) ([][2]string, error) {
	var out [][2]string
	add := func(k, val string) error {
		k = strings.TrimSpace(k)
		switch {
		case k == "" || strings.ContainsAny(k, "=; \n"):
			return fmt.Errorf("launcher: user_data key %q: want a name without =, ; or spaces", k)
		case strings.ContainsAny(val, ";\n"):
			return fmt.Errorf("launcher: user_data %s: the value may not contain ; or a newline (the pairs are KEY=VALUE;KEY=VALUE)", k)
		case slices.Contains(reservedUserData, k):
			return fmt.Errorf("launcher: user_data %s is set by the launch itself (ROLE, STAGE, REVISION)", k)
		case slices.ContainsFunc(out, func(p [2]string) bool { return p[0] == k }):
			return fmt.Errorf("launcher: user_data %s given twice", k)
		}
		out = append(out, [2]string{k, val})
		return nil
	}
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		for _, pair := range strings.Split(x, ";") {
			if strings.TrimSpace(pair) == "" {
				continue
			}
			k, val, ok := strings.Cut(pair, "=")
			if !ok {
				return nil, fmt.Errorf("launcher: user_data %q: want KEY=VALUE pairs separated by ;", pair)
			}
			if err := add(k, val); err != nil {
				return nil, err
			}
		}
	case map[string]any:
		for _, k := range sortedKeys(x) {
			val, ok := x[k].(string)
			if !ok {
				if n, isInt := x[k].(int); isInt {
					val, ok = fmt.Sprint(n), true
				}
			}
			if !ok {
				return nil, fmt.Errorf("launcher: user_data[%q] must be a string, not %T", k, x[k])
			}
			if err := add(k, val); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("launcher: user_data must be a dict or a KEY=VALUE;KEY=VALUE string, not %T", v)
	}
	return out, nil
}

// userDataText is what RunInstances sends (before base64): the
// launcher's pairs, then ROLE, STAGE and REVISION (when known).
func (l *Launcher) userDataText(stage, revision string) string {
	pairs := slices.Clone(l.UserData)
	pairs = append(pairs, [2]string{"ROLE", l.Role}, [2]string{"STAGE", stage})
	if revision != "" {
		pairs = append(pairs, [2]string{"REVISION", revision})
	}
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		parts[i] = p[0] + "=" + p[1]
	}
	return strings.Join(parts, ";")
}
