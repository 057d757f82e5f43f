package capdeploy

import (
	"fmt"
	"os"
	"os/user"
	"sync"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/recipes/scm"
	"github.com/davit-deploy/davit/tasks"
)

// Recipe is the deploy recipe. New makes a fresh one per Deployfile load,
// and all per-run state lives in it (never in package variables), so two
// projects loaded in one process never see each other's runs.
type Recipe struct {
	// newStrategy makes the SCM strategy the scm variable names.
	newStrategy func(name string) (scm.Strategy, error)
	// now is the clock release ids and marks are made from; tests pin it
	// to prove that two deploys in the same second get different ids.
	now func() time.Time

	// registry is the run's registry, kept by DefineTasks so that CheckVars
	// can also refuse task mistakes the rolling publish would meet (one of
	// lb:deregister and lb:register without the other) before any command.
	registry *tasks.Registry

	mu  sync.Mutex
	run *runState // the flow in progress (deploy or rollback), or nil
}

// New returns the deploy recipe, for use("deploy").
func New() tasks.Recipe {
	return &Recipe{newStrategy: scm.New, now: time.Now}
}

// Variable defaults. Each is documented in the README (Deploying: Variables).
const (
	defaultKeepReleases       = 5
	defaultHealthExpect       = "welcome"
	defaultHealthTimeoutSecs  = 60
	defaultCleanupTimeout     = 30 * time.Second
	defaultHealthInterval     = 500 * time.Millisecond
	defaultHealthRequestLimit = 10 * time.Second
)

// SetDefaults gives every variable the recipe reads a default, so `davit
// -T` and fetch() work before anything is set, and a Deployfile's set()
// wins whatever the order.
func (r *Recipe) SetDefaults(v *tasks.Vars) {
	pos := tasks.Position{File: "recipes/capdeploy"}
	def := func(name string, value any) { v.SetDefault(name, value, pos) }
	lazy := func(name string, fn func() (any, error)) { v.SetDefault(name, tasks.Lazy(fn), pos) }

	lazy("deploy_to", func() (any, error) {
		app, err := v.FetchString("application")
		if err != nil {
			return nil, fmt.Errorf("no deploy_to and no application to derive it from (Capistrano's /var/www/APPLICATION): %w", err)
		}
		return "/var/www/" + app, nil
	})
	def("scm", "git")
	def("branch", "main")
	def("keep_releases", defaultKeepReleases)
	def("linked_dirs", []any{})
	def("linked_files", []any{})
	def("deploy_roles", []any{"all"})
	def("health_check_url", "")
	def("health_check_expect", defaultHealthExpect)
	def("health_check_timeout", defaultHealthTimeoutSecs)
	def("health_check_roles", []any{"all"})
	def("health_check_rollback", true)
	def("publish_batch", "")
	def("publish_batch_wait", 0)
	def("tmp_dir", "/tmp")
	def("host_shell", true)
	def("rollback_release", "")
	lazy("local_user", func() (any, error) { return localUser(), nil })

	// Capistrano's path helpers, as variables. release_path is the
	// release being deployed once deploy:new_release_path ran (or the
	// rollback target once deploy:revert_release ran); before that it is
	// current_path, as in Capistrano.
	path := func(name string, fn func(deploy.Layout) string) {
		lazy(name, func() (any, error) {
			l, err := layoutFrom(v)
			if err != nil {
				return nil, err
			}
			return fn(l), nil
		})
	}
	path("current_path", deploy.Layout.Current)
	path("releases_path", deploy.Layout.Releases)
	path("shared_path", deploy.Layout.Shared)
	path("repo_path", deploy.Layout.Repo)
	path("release_path", deploy.Layout.Current)
}

// localUser names the person deploying in revisions.log and the lock, as
// Capistrano's local_user does.
func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// layoutFrom reads and validates deploy_to.
func layoutFrom(v *tasks.Vars) (deploy.Layout, error) {
	dt, err := v.FetchString("deploy_to")
	if err != nil {
		return deploy.Layout{}, err
	}
	if err := deploy.ValidateDeployTo(dt); err != nil {
		return deploy.Layout{}, err
	}
	if len(dt) > 1 && dt[len(dt)-1] == '/' {
		dt = dt[:len(dt)-1]
	}
	return deploy.Layout{DeployTo: dt}, nil
}

// taskDef is one task of the recipe: name, description (tasks meant to be
// run by hand have one, as in Capistrano, so -T lists them) and body;
// steps marks a task whose remote work is shell steps, which may share a
// command with the steps around it (stepCombiner).
type taskDef struct {
	name, desc string
	run        func(*tasks.Context) error
	steps      bool
}

// hookPoint is a task with an empty body: it exists so users can hook
// before/after a moment of the flow.
func hookPoint(*tasks.Context) error { return nil }

func (r *Recipe) taskDefs() []taskDef {
	defs := []taskDef{
		// The flows.
		{"deploy", "Deploy a new release to every host: all hosts switch, or none", r.deployFlow, false},
		{"rollback", "Switch every host back to the previous good release (release=ID picks one)", r.rollbackFlow, false},
		{"deploy:rollback", "Same as rollback", r.rollbackFlow, false},

		// Hand-run tasks.
		{"deploy:setup", "Create the deploy_to layout and linked directories on every host", r.setup, false},
		{"deploy:check", "Report everything that would make a deploy fail, on every host at once", r.check, false},
		{"deploy:unlock", "Remove the deploy lock (a stale one, left by a deploy that died)", r.unlockTask, true},
		{"deploy:cleanup", "Remove old releases beyond keep_releases (never current)", r.cleanupTask, true},
		{"releases", "List the releases on every host: revision, time, who, current and bad marks", r.releases, false},

		// Stages of the deploy flow, in order; hook points.
		{"deploy:starting", "", r.starting, false},
		{"deploy:started", "", hookPoint, false},
		{"deploy:updating", "", r.updating, false},
		{"deploy:updated", "", hookPoint, false},
		{"deploy:reverting", "", r.reverting, false},
		{"deploy:reverted", "", hookPoint, false},
		{"deploy:publishing", "", r.publishing, false},
		{"deploy:published", "", hookPoint, false},
		{"deploy:finishing", "", r.finishing, false},
		{"deploy:finishing_rollback", "", r.finishingRollback, false},
		{"deploy:finished", "", hookPoint, false},
		{"deploy:failed", "", hookPoint, false},

		// Steps.
		{"deploy:check:directories", "", r.checkDirectories, true},
		{"deploy:check:linked_files", "", r.checkLinkedFiles, true},
		{"deploy:resolve_revision", "", r.resolveRevision, false},
		{"deploy:lock", "", r.lockTask, false},
		{"deploy:new_release_path", "", r.newReleasePath, false},
		{"deploy:set_current_revision", "", r.setCurrentRevision, true},
		{"deploy:symlink:shared", "", r.symlinkShared, true},
		{"deploy:symlink:release", "", r.symlinkRelease, false},
		{"deploy:health_check", "", r.healthCheck, false},
		{"deploy:log_revision", "", r.logRevision, true},
		{"deploy:revert_release", "", r.revertRelease, false},
		{"deploy:cleanup_rollback", "", r.cleanupRollback, true},
	}
	// Every built-in SCM strategy gets Capistrano's task names
	// (git:check, git:update, git:create_release), so hooks written for
	// Capistrano's git tasks carry over. A strategy without tasks of its
	// own still works, without those hook points. The tasks of a
	// strategy whose host work is shell steps alone (git, svn) may share
	// commands; the copy strategy's, whose files travel from this
	// machine, run on their own.
	for _, name := range scm.Names() {
		s, _ := r.newStrategy(name)
		_, scripted := s.(scm.Scripted)
		defs = append(defs,
			taskDef{name + ":check", "", r.scmCheck, scripted},
			taskDef{name + ":update", "", r.scmUpdate, scripted},
			taskDef{name + ":create_release", "", r.scmCreateRelease, scripted},
		)
	}
	return defs
}

// DefineTasks adds the recipe's tasks. The flow lives in the task bodies
// (deploy invokes deploy:starting, which invokes deploy:check, ...), as in
// Capistrano, so a Deployfile that redefines a step replaces just that
// step and keeps its hooks. The tasks whose remote work is shell steps
// carry the recipe's Combiner, so a stage's consecutive steps share one
// command per host (steps.go); a redefined step does not.
func (r *Recipe) DefineTasks(reg *tasks.Registry) error {
	r.registry = reg
	pos := tasks.Position{File: "recipes/capdeploy"}
	combine := &stepCombiner{r}
	for _, d := range r.taskDefs() {
		t := &tasks.Task{Name: d.name, Desc: d.desc, Pos: pos, Run: d.run}
		if d.steps {
			t.Combine = combine
		}
		if err := reg.Define(t); err != nil {
			return err
		}
	}
	return nil
}

// RegisterHooks wires nothing: the flow's order is in the task bodies, so
// that every hook point belongs to the user. (Capistrano's framework
// registers no hooks of its own either.)
func (r *Recipe) RegisterHooks(*tasks.Registry) error { return nil }
