package boot

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/tasks"
	"github.com/davit-deploy/davit/tasks/run"
)

// DefaultHostsFile is the hosts file a boot writes.
const DefaultHostsFile = "/etc/hosts"

// HostSource is the Source of the one host a self-deploy runs on.
const HostSource = "self-deploy"

// The variables a self-deploy reads from the Deployfile.
const (
	// VarUser is the application user the deploy runs as.
	VarUser = "self_deploy_user"
	// VarTasks maps a role to the task or tasks that start it; without
	// it a role's task is start:ROLE.
	VarTasks = "self_deploy_tasks"
	// VarSkip lists tasks that never run at boot (by default assets:sync,
	// which runs once per deploy from the control machine).
	VarSkip = "self_deploy_skip"
	// VarHosts maps host names to addresses for the hosts file.
	VarHosts = "etc_hosts"
)

// DeployTasks run before the role's start tasks: the layout (idempotent,
// as cap deploy:setup was), then the deploy.
var DeployTasks = []string{"deploy:setup", "deploy"}

// DefaultSkip are the tasks replaced by a logged no-op at boot when the
// Deployfile sets no self_deploy_skip.
var DefaultSkip = []string{"assets:sync"}

// healthCheckTask is the deploy recipe's check, skipped at boot: the
// launcher's wait from outside (for the welcome page) is the check.
const healthCheckTask = "deploy:health_check"

// Options configure one self-deploy.
type Options struct {
	// Run is the run's configuration: the Deployfile, recipes, output,
	// log, dry run. Its Overrides are the command line's, which win over
	// the user data.
	Run run.Config
	// Stage is the stage to deploy; "" takes the user data's STAGE.
	Stage string
	// UserData, when not nil, stands in for the instance's user data.
	UserData []byte
	// InstanceType, when set, stands in for the instance's type. With
	// UserData also given, the metadata service is not asked at all.
	InstanceType string
	// HostsFile is the file etc_hosts goes to; "" is /etc/hosts.
	HostsFile string
	// Metadata configures the reading of the instance metadata.
	Metadata MetadataOptions
	// Started, when set, is told the run as soon as the Deployfile is
	// loaded, so an interrupt handler can say which hosts it reached.
	Started func(*run.Run)
}

// UsageError is a self-deploy that cannot start because of what it was
// given (user data, Deployfile variables, role, stage); nothing on the
// machine was changed.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usage(err error) error { return &UsageError{Err: err} }

// plan is everything decided before the machine is touched.
type plan struct {
	run        *run.Run
	host       *deploy.Host
	tasks      []string
	hosts      []HostsEntry
	hostsFile  string
	skip       []string
	instanceID string
}

// SelfDeploy configures and deploys this machine: reads the instance
// metadata and user data, loads the Deployfile with the user data's
// variables, selects the stage without asking its host sources, checks
// everything it can, writes the hosts entries, then deploys on this one
// host as the application user and runs the role's start tasks. Every
// step is reported through opts.Run.Terminal. Nothing on the machine
// changes when anything before the hosts file is wrong.
func SelfDeploy(ctx context.Context, opts Options) (*run.Run, error) {
	sink := opts.Run.Terminal
	if sink == nil {
		sink = output.Multi()
	}
	step := func(format string, args ...any) {
		sink.Emit(output.Event{Time: time.Now(), Kind: output.Message, Level: "info", Line: "self-deploy: " + fmt.Sprintf(format, args...)})
	}
	p, err := prepare(ctx, opts, step)
	if err != nil {
		return nil, err
	}
	if opts.Run.DryRun {
		step("dry run: would write %s to %s", describeEntries(p.hosts), p.hostsFile)
	} else {
		changed, err := WriteHosts(p.hostsFile, p.hosts)
		if err != nil {
			return p.run, fmt.Errorf("self-deploy: %w", err)
		}
		state := "already up to date"
		if changed {
			state = "written"
		}
		step("hosts file %s: %s (%s)", p.hostsFile, describeEntries(p.hosts), state)
	}
	for _, name := range p.skip {
		reason := VarSkip + " lists it"
		if name == healthCheckTask {
			reason = "the launcher checks the instance from outside"
		}
		if err := skipTask(p.run, name, reason); err != nil {
			return p.run, err
		}
	}
	who := p.host.User
	if who == "" {
		who = currentUser()
	}
	step("deploying on this machine as %s: %s", who, strings.Join(p.tasks, ", "))
	p.run.UseHosts([]*deploy.Host{p.host})
	if err := p.run.Execute(ctx, p.tasks...); err != nil {
		return p.run, err
	}
	step("done: %s is deployed and started as role %s", describeInstance(p.instanceID), p.host.Roles[0])
	return p.run, nil
}

// prepare does everything that changes nothing: metadata, user data, the
// Deployfile, the stage, the role's tasks, the hosts entries, the user.
func prepare(ctx context.Context, opts Options, step func(string, ...any)) (*plan, error) {
	md, err := metadata(ctx, opts, step)
	if err != nil {
		return nil, err
	}
	vars, err := ParseUserData(md.UserData)
	if err != nil {
		return nil, usage(err)
	}
	if len(vars) == 0 {
		step("user data: none")
	} else {
		step("user data: %s", strings.Join(slices.Sorted(maps.Keys(vars)), ", "))
	}
	// The user data's variables sit below the command line's.
	overrides := vars
	maps.Copy(overrides, opts.Run.Overrides)
	// The stage is chosen here, not passed on as a variable: UseStage
	// sets the variable stage to the one selected.
	stage := opts.Stage
	if stage == "" {
		stage = overrides["stage"]
	}
	delete(overrides, "stage")
	role := overrides["role"]
	if role == "" {
		return nil, usage(errors.New("no role: the user data has no ROLE and the command line no role=ROLE"))
	}
	cfg := opts.Run
	cfg.Overrides = overrides
	r, err := run.Load(ctx, cfg)
	if err != nil {
		return nil, usage(err)
	}
	if opts.Started != nil {
		opts.Started(r)
	}
	p := &plan{run: r, hostsFile: opts.HostsFile, instanceID: md.InstanceID}
	if p.hostsFile == "" {
		p.hostsFile = DefaultHostsFile
	}
	project := r.Project()
	switch {
	case stage != "":
		// Runs the stage's function: its ec2_servers() records a source,
		// which UseHosts keeps from being asked.
		if err := r.UseStage(ctx, stage); err != nil {
			return nil, usage(fmt.Errorf("stage from %s: %w", stageOrigin(opts.Stage), err))
		}
	case len(project.Stages()) > 0:
		return nil, usage(fmt.Errorf("no stage: give one (davit self-deploy STAGE) or STAGE in the user data; stages: %s", strings.Join(project.Stages(), ", ")))
	}
	vs := project.Vars()
	var errs []error
	if p.tasks, err = startTasks(project.Registry(), vs, role); err != nil {
		errs = append(errs, err)
	}
	if p.hosts, err = hostsEntries(vs); err != nil {
		errs = append(errs, err)
	}
	appUser, err := applicationUser(vs)
	if err != nil {
		errs = append(errs, err)
	}
	if p.skip, err = skipList(project.Registry(), vs); err != nil {
		errs = append(errs, err)
	}
	for _, name := range DeployTasks {
		if _, err := project.Registry().Lookup(name); err != nil {
			errs = append(errs, fmt.Errorf("%w: self-deploy deploys with the deploy recipe; add use(\"deploy\") to the Deployfile", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, usage(err)
	}
	p.tasks = append(slices.Clone(DeployTasks), p.tasks...)
	if err := r.Check(p.tasks...); err != nil {
		return nil, usage(err)
	}
	props := md.Props()
	p.host = &deploy.Host{Name: "localhost", Backend: "local", User: appUser, Roles: []string{role},
		Primary: true, Props: props, Source: HostSource}
	step("stage %s, role %s, instance %s", orNone(project.Stage()), role, describeProps(props))
	return p, nil
}

// metadata reads what the instance metadata service knows, or takes the
// stand-ins the options give.
func metadata(ctx context.Context, opts Options, step func(string, ...any)) (*Metadata, error) {
	if opts.UserData != nil && opts.InstanceType != "" {
		step("instance metadata: not asked (user data and instance type given)")
		return &Metadata{InstanceType: opts.InstanceType, UserData: opts.UserData}, nil
	}
	mo := opts.Metadata
	mo.SkipUserData = opts.UserData != nil
	step("reading instance metadata from %s", endpointName(mo.Endpoint))
	md, err := ReadMetadata(ctx, mo)
	if err != nil {
		return nil, err
	}
	if opts.UserData != nil {
		md.UserData = opts.UserData
	}
	if opts.InstanceType != "" {
		md.InstanceType = opts.InstanceType
	}
	return md, nil
}

// startTasks are the tasks that start role: self_deploy_tasks[role] (a
// task name or a list of them), or start:ROLE.
func startTasks(reg *tasks.Registry, vs *tasks.Vars, role string) ([]string, error) {
	raw, err := vs.FetchOr(VarTasks, nil)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		name := "start:" + role
		if _, err := reg.Lookup(name); err != nil {
			return nil, fmt.Errorf("role %q: no task %s to start it; the Deployfile's roles: %s", role, name, listOr(startRoles(reg)))
		}
		return []string{name}, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: want a dict from role to a task name or a list of them, have %T", VarTasks, raw)
	}
	v, ok := m[role]
	if !ok {
		return nil, fmt.Errorf("role %q: %s names no tasks for it; the Deployfile's roles: %s", role, VarTasks, listOr(slices.Sorted(maps.Keys(m))))
	}
	var names []string
	switch x := v.(type) {
	case string:
		names = []string{x}
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%s[%q]: want task names, have %T", VarTasks, role, e)
			}
			names = append(names, s)
		}
	default:
		return nil, fmt.Errorf("%s[%q]: want a task name or a list of them, have %T", VarTasks, role, v)
	}
	var errs []error
	for _, n := range names {
		if _, err := reg.Lookup(n); err != nil {
			errs = append(errs, fmt.Errorf("%s[%q]: %w", VarTasks, role, err))
		}
	}
	return names, errors.Join(errs...)
}

// startRoles are the roles that have a start:ROLE task.
func startRoles(reg *tasks.Registry) []string {
	var roles []string
	for _, t := range reg.List() {
		if r, ok := strings.CutPrefix(t.Name, "start:"); ok && r != "" && !strings.Contains(r, ":") {
			roles = append(roles, r)
		}
	}
	return roles
}

func listOr(names []string) string {
	if len(names) == 0 {
		return "none (define a task start:ROLE, or set " + VarTasks + ")"
	}
	return strings.Join(names, ", ")
}

// hostsEntries reads etc_hosts: a dict from host name to address.
func hostsEntries(vs *tasks.Vars) ([]HostsEntry, error) {
	raw, err := vs.FetchOr(VarHosts, nil)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: want a dict from host name to address, have %T", VarHosts, raw)
	}
	addrs := map[string]string{}
	var errs []error
	for name, v := range m {
		s, ok := v.(string)
		if !ok {
			errs = append(errs, fmt.Errorf("%s[%q]: want an address string, have %T", VarHosts, name, v))
			continue
		}
		addrs[name] = strings.TrimSpace(s)
	}
	entries := SortedEntries(addrs)
	if err := ValidateHosts(entries); err != nil {
		errs = append(errs, err)
	}
	return entries, errors.Join(errs...)
}

// applicationUser is self_deploy_user, which must exist; unset, the deploy
// runs as the user running davit, which must not be root.
func applicationUser(vs *tasks.Vars) (string, error) {
	raw, err := vs.FetchOr(VarUser, "")
	if err != nil {
		return "", err
	}
	name, ok := raw.(string)
	if !ok {
		return "", fmt.Errorf("%s: want a user name, have %T", VarUser, raw)
	}
	if name == "" {
		if os.Geteuid() == 0 {
			return "", fmt.Errorf("%s is not set: the deploy would run as root; set it to the application user (as root, davit runs the deploy through sudo -n -u USER)", VarUser)
		}
		return "", nil
	}
	if _, err := user.Lookup(name); err != nil {
		return "", fmt.Errorf("%s %q: %w", VarUser, name, err)
	}
	return name, nil
}

// skipList is self_deploy_skip (default DefaultSkip) plus the health
// check: the tasks defined in the Deployfile that a boot replaces.
func skipList(reg *tasks.Registry, vs *tasks.Vars) ([]string, error) {
	raw, err := vs.FetchOr(VarSkip, nil)
	if err != nil {
		return nil, err
	}
	names := slices.Clone(DefaultSkip)
	if raw != nil {
		if names, err = vs.FetchStrings(VarSkip); err != nil {
			return nil, err
		}
	}
	names = append(names, healthCheckTask)
	var out []string
	for _, n := range names {
		if _, err := reg.Lookup(n); err == nil && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// skipTask replaces a task by one that says it was skipped: its hooks stay
// attached, its work is not done.
func skipTask(r *run.Run, name, reason string) error {
	old, err := r.Project().Registry().Lookup(name)
	if err != nil {
		return err
	}
	return r.Project().Registry().Define(&tasks.Task{
		Name: name, Desc: old.Desc, Pos: old.Pos,
		Run: func(c *tasks.Context) error {
			c.Info(fmt.Sprintf("self-deploy: skipped %s at boot: %s", name, reason))
			return nil
		},
	})
}

func describeEntries(entries []HostsEntry) string {
	if len(entries) == 0 {
		return "no entries"
	}
	var parts []string
	for _, e := range entries {
		parts = append(parts, e.Name+" → "+e.Address)
	}
	return strings.Join(parts, ", ")
}

func describeProps(props map[string]any) string {
	var parts []string
	for _, k := range []string{"instance_id", "instance_type", "az", "private_ip"} {
		if v, ok := props[k]; ok {
			parts = append(parts, fmt.Sprint(v))
		}
	}
	if len(parts) == 0 {
		return "(no metadata)"
	}
	return strings.Join(parts, " ")
}

func describeInstance(id string) string {
	if id == "" {
		return "this machine"
	}
	return id
}

func stageOrigin(flag string) string {
	if flag != "" {
		return "the command line"
	}
	return "the user data"
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "the current user"
}
