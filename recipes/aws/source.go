package aws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/recipes/internal/sdklog"
)

// SourceName is the Host.Source of every host an ec2_servers source finds.
const SourceName = "ec2"

// LaunchedByTag is the tag davit's launcher puts on the instances it makes;
// discovery reports it as the launched_by property.
const LaunchedByTag = "davit:launched-by"

// DefaultPageSize is the MaxResults asked per DescribeInstances call: EC2's
// largest, so a fleet costs as few calls as it can.
const DefaultPageSize = 1000

// Source is the host source ec2_servers records: the running instances
// with all of Tags (tag:K=V filters) and matching all of Filters.
type Source struct {
	Tags    map[string]string
	Filters map[string][]string
	// RolesTag names the tag whose comma-separated value lists a host's
	// roles; "" gives hosts no roles.
	RolesTag string
	// Address is which address a host is dialled at: private_ip,
	// public_ip, private_dns, public_dns or tag:NAME.
	Address string
	User    string
	Port    int
	// Region overrides the region of the environment and profile.
	Region string
	// PageSize is MaxResults per call; 0 means DefaultPageSize.
	PageSize int32
	// LoadOptions go to config.LoadDefaultConfig after the region.
	LoadOptions []func(*config.LoadOptions) error
}

// Validate checks what can be checked without asking AWS.
func (s *Source) Validate() error {
	if len(s.Tags) == 0 && len(s.Filters) == 0 {
		return fmt.Errorf("ec2_servers: give tags= or filters=; without them every running instance the credentials can see would become a host")
	}
	if s.Address != "" && !slices.Contains(addressChoices, s.Address) {
		if name, ok := strings.CutPrefix(s.Address, "tag:"); !ok || name == "" {
			return fmt.Errorf("ec2_servers: address=%q: want %s", s.Address, addressWords())
		}
	}
	if s.Port < 0 || s.Port > 65535 {
		return fmt.Errorf("ec2_servers: port=%d is not a TCP port", s.Port)
	}
	if s.Region != "" && !regionPattern.MatchString(s.Region) {
		return fmt.Errorf("ec2_servers: region=%q is not an AWS region name (like eu-west-1)", s.Region)
	}
	return nil
}

// regionPattern is the shape of every AWS region name: us-east-1,
// us-gov-west-1, cn-north-1, eu-isoe-west-1.
var regionPattern = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)

func (s *Source) Name() string { return SourceName }

// Describe says what the source asks for: "running EC2 instances tagged
// App=payroll, Env=production in eu-west-1".
func (s *Source) Describe() string {
	var b strings.Builder
	b.WriteString("running EC2 instances")
	if len(s.Tags) > 0 {
		var tags []string
		for _, k := range sortedKeys(s.Tags) {
			tags = append(tags, k+"="+s.Tags[k])
		}
		b.WriteString(" tagged " + strings.Join(tags, ", "))
	}
	if len(s.Filters) > 0 {
		var fs []string
		for _, k := range sortedKeys(s.Filters) {
			fs = append(fs, k+"="+strings.Join(s.Filters[k], "|"))
		}
		b.WriteString(" with " + strings.Join(fs, ", "))
	}
	if s.Region != "" {
		b.WriteString(" in " + s.Region)
	} else {
		b.WriteString(" in the default region")
	}
	return b.String()
}

// ec2Filters is what is sent: the tags, the filters and
// instance-state-name=running, in a stable order.
func (s *Source) ec2Filters() []types.Filter {
	var out []types.Filter
	for _, k := range sortedKeys(s.Tags) {
		out = append(out, types.Filter{Name: aws.String("tag:" + k), Values: []string{s.Tags[k]}})
	}
	for _, k := range sortedKeys(s.Filters) {
		out = append(out, types.Filter{Name: aws.String(k), Values: slices.Clone(s.Filters[k])})
	}
	return append(out, types.Filter{Name: aws.String("instance-state-name"), Values: []string{"running"}})
}

// filtersFor is what the launcher's listings send: the source's tags and
// filters, with the instance states asked for instead of running alone,
// and extra filters after.
func (s *Source) filtersFor(states []string, extra ...types.Filter) []types.Filter {
	all := s.ec2Filters()
	out := slices.Clone(all[:len(all)-1])
	out = append(out, extra...)
	return append(out, types.Filter{Name: aws.String("instance-state-name"), Values: states})
}

// Hosts asks EC2 for the instances, following every page, and makes each
// one a host.
func (s *Source) Hosts(ctx context.Context) (_ []*deploy.Host, err error) {
	// A source has no output of its own: what the SDK says goes into the
	// error, if there is one.
	said := &sdklog.Collector{}
	defer func() { err = said.Explain(err) }()
	cfg, err := loadConfig(ctx, s.Region, said, s.LoadOptions)
	if err != nil {
		return nil, err
	}
	client := ec2.NewFromConfig(cfg)
	limit := s.PageSize
	if limit == 0 {
		limit = DefaultPageSize
	}
	pages := ec2.NewDescribeInstancesPaginator(client, &ec2.DescribeInstancesInput{Filters: s.ec2Filters()},
		func(o *ec2.DescribeInstancesPaginatorOptions) { o.Limit = limit })
	var hosts []*deploy.Host
	var noAddress []string
	for page := 1; pages.HasMorePages(); page++ {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return nil, apiError(cfg.Region, page, err)
		}
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				if !s.wanted(in) {
					continue
				}
				h := s.host(in)
				if h.Address == "" {
					noAddress = append(noAddress, h.Name)
					continue
				}
				hosts = append(hosts, h)
			}
		}
	}
	if len(noAddress) > 0 {
		return nil, fmt.Errorf("address=%q: instances without one: %s", s.Address, strings.Join(noAddress, ", "))
	}
	return hosts, nil
}

// loadConfig loads the SDK's configuration the standard way (environment,
// profiles, AWS_ENDPOINT_URL), with region (if any) and then extra, and
// checks that it has a plausible region and credentials. The SDK's
// messages go to logger (see package sdklog).
func loadConfig(ctx context.Context, region string, logger logging.Logger, extra []func(*config.LoadOptions) error) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{config.WithLogger(logger)}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	opts = append(opts, extra...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return cfg, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg.Region == "" {
		return cfg, fmt.Errorf("no AWS region: give ec2_servers(region=...), or set AWS_REGION or a region in the AWS profile")
	}
	if !regionPattern.MatchString(cfg.Region) {
		return cfg, fmt.Errorf("unknown AWS region %q (from the environment or profile)", cfg.Region)
	}
	if cfg.Credentials == nil {
		return cfg, errNoCredentials(nil)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return cfg, errNoCredentials(err)
	}
	return cfg, nil
}

func errNoCredentials(err error) error {
	const what = "no AWS credentials: the SDK's chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared config and credentials files, SSO, container and instance roles) found none"
	if err == nil {
		return errors.New(what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// apiError says why DescribeInstances failed, after the SDK's own retries.
func apiError(region string, page int, err error) error {
	call := fmt.Sprintf("DescribeInstances in %s (page %d)", region, page)
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return fmt.Errorf("%s: cannot resolve the EC2 endpoint %s; is the region right?: %w", call, dns.Name, err)
	}
	gaveUp := ""
	var maxErr *retry.MaxAttemptsError
	if errors.As(err, &maxErr) {
		gaveUp = fmt.Sprintf(" (gave up after %d attempts)", maxErr.Attempt)
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		return fmt.Errorf("%s: %s: %s%s", call, api.ErrorCode(), api.ErrorMessage(), gaveUp)
	}
	return fmt.Errorf("%s%s: %w", call, gaveUp, err)
}

// wanted re-checks what was sent on what came back, so a filter EC2 got
// wrong (or an endpoint that ignores filters) cannot add a host: the
// instance must be running and carry every tag; filters this side knows
// how to read are checked too, the rest are EC2's alone.
func (s *Source) wanted(in types.Instance) bool {
	if in.State == nil || in.State.Name != types.InstanceStateNameRunning {
		return false
	}
	tags := tagMap(in.Tags)
	for k, v := range s.Tags {
		if got, ok := tags[k]; !ok || !glob(v, got) {
			return false
		}
	}
	for name, values := range s.Filters {
		have, known := instanceField(name, in, tags)
		if !known {
			continue
		}
		if !slices.ContainsFunc(values, func(p string) bool {
			return slices.ContainsFunc(have, func(h string) bool { return glob(p, h) })
		}) {
			return false
		}
	}
	return true
}

// instanceField returns the values filter name selects, and whether this
// side knows the filter.
func instanceField(name string, in types.Instance, tags map[string]string) ([]string, bool) {
	one := func(p *string) []string {
		if p == nil || *p == "" {
			return nil
		}
		return []string{*p}
	}
	if k, ok := strings.CutPrefix(name, "tag:"); ok {
		if v, has := tags[k]; has {
			return []string{v}, true
		}
		return nil, true
	}
	switch name {
	case "tag-key":
		return sortedKeys(tags), true
	case "instance-state-name":
		if in.State == nil {
			return nil, true
		}
		return []string{string(in.State.Name)}, true
	case "instance-id":
		return one(in.InstanceId), true
	case "instance-type":
		return []string{string(in.InstanceType)}, true
	case "availability-zone":
		if in.Placement == nil {
			return nil, true
		}
		return one(in.Placement.AvailabilityZone), true
	case "private-ip-address":
		return one(in.PrivateIpAddress), true
	case "ip-address":
		return one(in.PublicIpAddress), true
	case "private-dns-name":
		return one(in.PrivateDnsName), true
	case "dns-name":
		return one(in.PublicDnsName), true
	}
	return nil, false
}

// glob matches an EC2 filter value: * any run of characters, ? any one.
func glob(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '*':
		for k := 0; k <= len(s); k++ {
			if glob(pattern[1:], s[k:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && glob(pattern[1:], s[1:])
	}
	return s != "" && s[0] == pattern[0] && glob(pattern[1:], s[1:])
}

func tagMap(ts []types.Tag) map[string]string {
	m := make(map[string]string, len(ts))
	for _, t := range ts {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// host makes an instance a host: named by its Name tag or its id.
func (s *Source) host(in types.Instance) *deploy.Host {
	tags := tagMap(in.Tags)
	id := aws.ToString(in.InstanceId)
	h := &deploy.Host{Name: id, User: s.User, Port: s.Port, Source: SourceName, Props: map[string]any{
		"instance_id":   id,
		"instance_type": string(in.InstanceType),
	}}
	if n := strings.TrimSpace(tags["Name"]); n != "" {
		h.Name = n
	}
	if in.Placement != nil {
		h.Props["az"] = aws.ToString(in.Placement.AvailabilityZone)
	}
	if in.LaunchTime != nil {
		h.Props["launch_time"] = in.LaunchTime.UTC().Format(time.RFC3339)
	}
	if v, ok := tags[LaunchedByTag]; ok {
		h.Props["launched_by"] = v
	}
	for prop, p := range map[string]*string{
		"private_ip": in.PrivateIpAddress, "public_ip": in.PublicIpAddress,
		"private_dns": in.PrivateDnsName, "public_dns": in.PublicDnsName,
	} {
		if v := aws.ToString(p); v != "" {
			h.Props[prop] = v
		}
	}
	switch addr := s.Address; {
	case addr == "" || slices.Contains(addressChoices, addr):
		if addr == "" {
			addr = "private_ip"
		}
		h.Address, _ = h.Props[addr].(string)
	default:
		h.Address = tags[strings.TrimPrefix(addr, "tag:")]
	}
	if s.RolesTag != "" {
		for _, r := range strings.Split(tags[s.RolesTag], ",") {
			if r = strings.TrimSpace(r); r != "" && !slices.Contains(h.Roles, r) {
				h.Roles = append(h.Roles, r)
			}
		}
	}
	return h
}
