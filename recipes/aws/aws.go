// Package aws is the use("aws") recipe: Deployfile builtins and tasks
// backed by AWS through aws-sdk-go-v2. ec2_servers records a host source
// that finds the stage's servers among running EC2 instances by their
// tags; it asks AWS only when a task runs. launcher declares how a role's
// instances are made, for the tasks launch, terminate and scale; lb:register
// and lb:deregister put hosts in and out of their role's load balancer.
//
// Files: source.go (discovery), launcher.go (the launcher builtin),
// fleet.go (the fleet a task works on: listing, the contract's Launch,
// Launched and TerminateNewest, the tasks), launch.go (one instance's
// launch and its clean-up), lb.go (classic ELB and ELBv2 registration),
// scale.go (terminate and scale).
package aws

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/davit-deploy/davit/tasks"
)

// Recipe is the aws recipe. New makes one per Deployfile load; what the
// Deployfile declared (sources, launchers) lives in it, never in package
// variables.
type Recipe struct {
	// loadOptions are added to every config.LoadDefaultConfig call after
	// the recipe's own (region=), so tests can give an HTTP client or a
	// retryer.
	loadOptions []func(*config.LoadOptions) error
	// dial opens the connections of the launcher's welcome wait; nil is
	// a plain dialer.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu        sync.Mutex
	sources   map[string][]*Source            // by stage; "" is the top level
	launchers map[string]map[string]*Launcher // by stage, then role
	scalers   autoscalers                     // autoscale() declarations (autoscale.go)
	// saidNoLB: the lb tasks found no load balancer once in this run
	// (a recipe is made anew for each run's Deployfile).
	saidNoLB sync.Once
}

// New returns the recipe as use("aws") installs it: the standard AWS
// credential chain, shared config and environment.
func New() tasks.Recipe { return &Recipe{} }

// WithDialer makes the launcher's welcome wait open its connections with
// dial: tests give one that refuses every address outside loopback.
func (r *Recipe) WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *Recipe {
	r.dial = dial
	return r
}

// NewWithConfig returns the recipe with extra options for the AWS SDK's
// config loading (an HTTP client, a retryer).
func NewWithConfig(opts ...func(*config.LoadOptions) error) *Recipe {
	return &Recipe{loadOptions: opts}
}

// SetDefaults gives the launcher's polling its defaults: the original
// servercontrol script's 5 seconds between tries and 5 seconds per try.
func (*Recipe) SetDefaults(v *tasks.Vars) {
	pos := tasks.Position{File: "recipes/aws"}
	v.SetDefault("launch_poll_interval", 5, pos)
	v.SetDefault("launch_try_timeout", 5, pos)
}

func (*Recipe) RegisterHooks(*tasks.Registry) error { return nil }

// addSource records an ec2_servers source of stage ("" at the top level),
// for the stage's launchers to inherit.
func (r *Recipe) addSource(stage string, s *Source) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sources == nil {
		r.sources = map[string][]*Source{}
	}
	r.sources[stage] = append(r.sources[stage], s)
}

func (r *Recipe) addLauncher(stage string, l *Launcher) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.launchers == nil {
		r.launchers = map[string]map[string]*Launcher{}
	}
	if r.launchers[stage] == nil {
		r.launchers[stage] = map[string]*Launcher{}
	}
	if old := r.launchers[stage][l.Role]; old != nil {
		return fmt.Errorf("launcher(%q): role %s has a launcher already (%s)", l.Role, l.Role, old.Pos)
	}
	r.launchers[stage][l.Role] = l
	return nil
}

// stageSource is the ec2_servers source a stage's launchers inherit: the
// stage's own, else the top level's; exactly one.
func (r *Recipe) stageSource(stage string) (*Source, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	srcs := r.sources[stage]
	if len(srcs) == 0 {
		srcs = r.sources[""]
	}
	switch len(srcs) {
	case 0:
		return nil, fmt.Errorf("stage %s has launchers but no ec2_servers(...): a launcher inherits its tags, so discovery finds what it launches", stage)
	case 1:
		return srcs[0], nil
	}
	return nil, fmt.Errorf("stage %s has %d ec2_servers sources; a launcher inherits the tags of one, so give the stage one ec2_servers", stage, len(srcs))
}

// stageLaunchers returns stage's launchers by role.
func (r *Recipe) stageLaunchers(stage string) map[string]*Launcher {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.launchers[stage]
}

// CheckVars finds, once a stage is selected and before anything runs,
// what would make the fleet tasks fail: launchers without one ec2_servers
// to inherit from, and polling variables that are not positive seconds.
func (r *Recipe) CheckVars(v *tasks.Vars) error {
	var problems []string
	for _, name := range []string{"launch_poll_interval", "launch_try_timeout"} {
		if _, err := secondsVar(v, name); err != nil {
			problems = append(problems, err.Error())
		}
	}
	problems = append(problems, r.autoscaleProblems(v)...)
	stage, _ := v.FetchString("stage")
	if len(r.stageLaunchers(stage)) > 0 {
		src, err := r.stageSource(stage)
		switch {
		case err != nil:
			problems = append(problems, err.Error())
		case src.RolesTag == "":
			problems = append(problems, fmt.Sprintf("stage %s: ec2_servers(roles_tag = \"\") gives hosts no roles, but a launcher tags what it launches with its role", stage))
		}
		if err == nil {
			for _, k := range sortedKeys(src.Tags) {
				if strings.ContainsAny(src.Tags[k], "*?") {
					problems = append(problems, fmt.Sprintf("stage %s: ec2_servers tag %s=%q is a pattern; a launcher writes the stage's tags on what it launches, so they must be exact", stage, k, src.Tags[k]))
				}
			}
		}
	}
	if len(problems) > 0 {
		return &tasks.VarsError{Recipe: "aws", Problems: problems}
	}
	return nil
}

// Builtins contributes ec2_servers and launcher.
func (r *Recipe) Builtins() []tasks.Builtin {
	return []tasks.Builtin{launcherBuiltin(r), autoscaleBuiltin(r), {
		Name: "ec2_servers",
		Doc:  "Adds the running EC2 instances with these tags (and filters) as servers, asked when a task runs.",
		Params: []tasks.Param{
			{Name: "tags", Optional: true, Kind: tasks.KindDict},
			{Name: "filters", Optional: true, Kind: tasks.KindDict},
			{Name: "roles_tag", Optional: true, Kind: tasks.KindString},
			{Name: "address", Optional: true, Kind: tasks.KindString},
			{Name: "user", Optional: true, Kind: tasks.KindString},
			{Name: "port", Optional: true, Kind: tasks.KindInt},
			{Name: "region", Optional: true, Kind: tasks.KindString},
		},
		Phases: tasks.PhaseLoad | tasks.PhaseStage,
		Call:   r.ec2Servers,
	}}
}

func (r *Recipe) ec2Servers(c *tasks.BuiltinCall) (any, error) {
	src := &Source{
		RolesTag:    "Role",
		Address:     "private_ip",
		User:        c.String("user"),
		Port:        c.Int("port"),
		Region:      c.String("region"),
		LoadOptions: r.loadOptions,
	}
	if c.Has("roles_tag") {
		src.RolesTag = c.String("roles_tag")
	}
	if c.Has("address") {
		src.Address = c.String("address")
	}
	var err error
	if src.Tags, err = tagsArg(c.Dict("tags")); err != nil {
		return nil, err
	}
	if src.Filters, err = filtersArg(c.Dict("filters")); err != nil {
		return nil, err
	}
	if err := src.Validate(); err != nil {
		return nil, err
	}
	c.AddHostSource(src)
	r.addSource(c.Stage, src)
	return nil, nil
}

// tagsArg reads tags={"App": "payroll"}: every value a string.
func tagsArg(d map[string]any) (map[string]string, error) {
	out := map[string]string{}
	for _, k := range sortedKeys(d) {
		v, ok := d[k].(string)
		if !ok {
			return nil, fmt.Errorf("ec2_servers: tags[%q] must be a string, not %T", k, d[k])
		}
		out[k] = v
	}
	return out, nil
}

// filtersArg reads filters={"instance-type": ["t3.micro", "t3.small"]}:
// each value a string or a list of strings, any of which may match.
func filtersArg(d map[string]any) (map[string][]string, error) {
	out := map[string][]string{}
	for _, k := range sortedKeys(d) {
		switch v := d[k].(type) {
		case string:
			out[k] = []string{v}
		case []any:
			if len(v) == 0 {
				return nil, fmt.Errorf("ec2_servers: filters[%q] is an empty list", k)
			}
			for _, x := range v {
				s, ok := x.(string)
				if !ok {
					return nil, fmt.Errorf("ec2_servers: filters[%q] must hold strings, not %T", k, x)
				}
				out[k] = append(out[k], s)
			}
		default:
			return nil, fmt.Errorf("ec2_servers: filters[%q] must be a string or a list of strings, not %T", k, d[k])
		}
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// addressChoices lists address= values besides "tag:NAME".
var addressChoices = []string{"private_ip", "public_ip", "private_dns", "public_dns"}

func addressWords() string {
	return strings.Join(addressChoices, ", ") + " or tag:NAME"
}
