// Package aws is the use("aws") recipe: Deployfile builtins backed by AWS
// through aws-sdk-go-v2. ec2_servers records a host source that finds the
// stage's servers among running EC2 instances by their tags; it asks AWS
// only when a task runs.
package aws

import (
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/davit-deploy/davit/tasks"
)

// Recipe is the aws recipe. It defines no tasks of its own yet; its
// builtins are what use("aws") adds.
type Recipe struct {
	// loadOptions are added to every config.LoadDefaultConfig call after
	// the recipe's own (region=), so tests can give an HTTP client or a
	// retryer.
	loadOptions []func(*config.LoadOptions) error
}

// New returns the recipe as use("aws") installs it: the standard AWS
// credential chain, shared config and environment.
func New() tasks.Recipe { return &Recipe{} }

// NewWithConfig returns the recipe with extra options for the AWS SDK's
// config loading (an HTTP client, a retryer).
func NewWithConfig(opts ...func(*config.LoadOptions) error) *Recipe {
	return &Recipe{loadOptions: opts}
}

func (*Recipe) SetDefaults(*tasks.Vars)             {}
func (*Recipe) DefineTasks(*tasks.Registry) error   { return nil }
func (*Recipe) RegisterHooks(*tasks.Registry) error { return nil }

// Builtins contributes ec2_servers.
func (r *Recipe) Builtins() []tasks.Builtin {
	return []tasks.Builtin{{
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
