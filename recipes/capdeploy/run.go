package capdeploy

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/recipes/scm"
	"github.com/davit-deploy/davit/tasks"
)

// Operations a run performs.
const (
	opDeploy   = "deploy"
	opRollback = "rollback"
	opCheck    = "check"
	opCleanup  = "cleanup"
	opUnlock   = "unlock"
	opLock     = "lock"
)

// Phases of a deploy or rollback, which decide what a failure undoes.
const (
	// phasePrepare: nothing has moved; a failure removes the new release.
	phasePrepare = iota
	// phasePublish: current is moving or has moved; a failure moves the
	// hosts that switched back.
	phasePublish
	// phaseFinish: the fleet is on the new release and healthy; a failure
	// is reported but undoes nothing.
	phaseFinish
)

// runState is one flow's state: the deploy or rollback in progress, or a
// hand-run task (check, cleanup) working on its own. It is made at the
// start of the flow and dropped at its end.
type runState struct {
	op     string
	layout deploy.Layout
	// hosts are the deploy hosts (deploy_roles, narrowed by --roles and
	// --hosts) in inventory order; every fleet-wide rule is about them.
	hosts []*deploy.Host
	// user and control name who deploys from where, in the lock and in
	// revisions.log; token tells this run's lock from anyone else's.
	user, control, token string

	mu        sync.Mutex
	phase     int
	hs        map[string]*hostState
	checking  bool                // inside deploy:check: steps record problems
	problems  map[string][]string // host key -> problems found by deploy:check
	strategy  scm.Strategy
	rev       scm.Revision
	resolved  bool
	releaseID string // the release being deployed, or the rollback target
	// healthFailed is set when the health check failed and
	// health_check_rollback is off: the flow finishes, then fails.
	healthFailed error
	// outOfLB is the batch a rolling publish has taken out of the load
	// balancer and not yet put back, which a failure registers again.
	outOfLB *lbBatch
	// shells are the hosts' shells the flow's steps run in (one session
	// per host for the whole flow, not one per stage), closed at its end;
	// noShell (host_shell off) runs each command in a session of its own,
	// for a server whose MaxSessions is 1, where the flow's shell would
	// keep a hook's command waiting.
	shells  map[string]*tasks.Shell
	noShell bool
}

// hostState is what the run did to one host, for undoing it and for the
// summary. During a step only the goroutine working on that host writes
// it (the runner gives each host one goroutine per step); the flow reads
// and writes it between steps, after the runner's wait.
type hostState struct {
	host *deploy.Host
	// probe is the host's state when the run locked it (or probed it).
	probe *serverState
	// locked: this run holds the host's lock.
	locked bool
	// created: this run may have created the new release directory (set
	// before the command runs, so an unknown outcome is cleaned up too).
	created bool
	// switched: this run may have moved current (set before the command).
	switched bool
	// published: deploy:published ran (or began) for this host, so its
	// restart hooks may have restarted it on the new release.
	published bool
	// outcome is the summary line's text once the run has decided it.
	outcome string
	// lockNote says why the lock could not be released, if so.
	lockNote string
}

// begin starts a flow. A flow cannot start inside another (say, a hook of
// deploy invoking rollback): their undo rules would tangle.
func (r *Recipe) begin(c *tasks.Context, op string) (*runState, error) {
	r.mu.Lock()
	busy := r.run != nil
	r.mu.Unlock()
	if busy {
		return nil, fmt.Errorf("%s: a %s is already running in this davit run", op, r.current().op)
	}
	st, err := r.newRunState(c, op)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.run = st
	r.mu.Unlock()
	return st, nil
}

// end finishes the flow: closes the hosts' shells and the SCM strategy
// and forgets the state.
func (r *Recipe) end(st *runState) error {
	r.mu.Lock()
	if r.run == st {
		r.run = nil
	}
	r.mu.Unlock()
	st.closeShells()
	return st.closeStrategy()
}

// shell is h's shell for this flow, in which its steps commands run (nil:
// each in a session of its own).
func (st *runState) shell(h *deploy.Host) *tasks.Shell {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.noShell {
		return nil
	}
	if st.shells == nil {
		st.shells = map[string]*tasks.Shell{}
	}
	sh := st.shells[h.Key()]
	if sh == nil {
		sh = &tasks.Shell{}
		st.shells[h.Key()] = sh
	}
	return sh
}

func (st *runState) closeShells() {
	st.mu.Lock()
	shells := st.shells
	st.shells = nil
	st.mu.Unlock()
	var wg sync.WaitGroup
	for _, sh := range shells {
		wg.Go(func() { sh.Close() })
	}
	wg.Wait()
}

func (r *Recipe) current() *runState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.run
}

// state returns the flow in progress. A task run by hand (davit
// production deploy:check) starts a flow of its own for as long as it
// runs, so the steps it invokes share its state; done ends it, and the
// caller defers it.
func (r *Recipe) state(c *tasks.Context, op string) (st *runState, done func(), err error) {
	if st := r.current(); st != nil {
		return st, func() {}, nil
	}
	st, err = r.newRunState(c, op)
	if err != nil {
		return nil, nil, err
	}
	r.mu.Lock()
	if r.run != nil { // another goroutine's hand-run task won the race
		cur := r.run
		r.mu.Unlock()
		return cur, func() {}, nil
	}
	r.run = st
	r.mu.Unlock()
	return st, func() {
		if err := r.end(st); err != nil {
			c.Warn(err.Error())
		}
	}, nil
}

func (r *Recipe) newRunState(c *tasks.Context, op string) (*runState, error) {
	v := c.Executor.Vars
	l, err := layoutFrom(v)
	if err != nil {
		return nil, err
	}
	roles, err := v.FetchStrings("deploy_roles")
	if err != nil {
		return nil, err
	}
	if len(roles) == 0 {
		roles = []string{"all"}
	}
	hosts := c.Roles(roles...)
	if len(hosts) == 0 {
		where := ""
		if d := c.Executor.Inventory.Describe(); d != "" {
			where = "; the stage's hosts come from " + d
		}
		if len(c.Executor.Hosts) == 0 {
			return nil, fmt.Errorf("no hosts to %s: the stage has none%s", op, where)
		}
		return nil, fmt.Errorf("no hosts to %s: none of the stage's %d hosts has a role in deploy_roles %v (after --roles/--hosts)%s",
			op, len(c.Executor.Hosts), roles, where)
	}
	user, err := v.FetchString("local_user")
	if err != nil {
		return nil, err
	}
	shell, err := v.FetchBool("host_shell")
	if err != nil {
		return nil, err
	}
	control, _ := os.Hostname()
	tok := make([]byte, 8)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	st := &runState{
		op:       op,
		layout:   l,
		hosts:    hosts,
		user:     user,
		control:  control,
		token:    hex.EncodeToString(tok),
		hs:       map[string]*hostState{},
		problems: map[string][]string{},
		noShell:  !shell,
	}
	for _, h := range hosts {
		st.hs[h.Key()] = &hostState{host: h}
	}
	return st, nil
}

// host returns the state of h, which must be a deploy host. Hosts a hook
// adds outside deploy_roles get a state of their own on the fly.
func (st *runState) host(h *deploy.Host) *hostState {
	st.mu.Lock()
	defer st.mu.Unlock()
	hs := st.hs[h.Key()]
	if hs == nil {
		hs = &hostState{host: h}
		st.hs[h.Key()] = hs
	}
	return hs
}

func (st *runState) setPhase(p int) {
	st.mu.Lock()
	st.phase = p
	st.mu.Unlock()
}

func (st *runState) getPhase() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.phase
}

func (st *runState) release() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.releaseID
}

// problem records something deploy:check found wrong on a host.
func (st *runState) problem(h *deploy.Host, msg string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, p := range st.problems[h.Key()] {
		if p == msg {
			return
		}
	}
	st.problems[h.Key()] = append(st.problems[h.Key()], msg)
}

// strategyFor returns the run's SCM strategy, made on first use from the
// scm variable.
func (r *Recipe) strategyFor(c *tasks.Context, st *runState) (scm.Strategy, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.strategy != nil {
		return st.strategy, nil
	}
	name, err := c.Executor.Vars.FetchString("scm")
	if err != nil {
		return nil, err
	}
	s, err := r.newStrategy(name)
	if err != nil {
		return nil, fmt.Errorf("scm: %w", err)
	}
	st.strategy = s
	return s, nil
}

func (st *runState) closeStrategy() error {
	st.mu.Lock()
	s := st.strategy
	st.strategy = nil
	st.mu.Unlock()
	if s == nil {
		return nil
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("scm %s: close: %w", s.Name(), err)
	}
	return nil
}

// revision returns the revision resolved for this run.
func (st *runState) revision() (scm.Revision, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.rev, st.resolved
}

// on runs fn on the run's deploy hosts in parallel (narrowed again by the
// executor's filter, which a rolling publish uses to pick a batch).
func (st *runState) on(c *tasks.Context, fn func(*tasks.HostContext, *hostState) error) error {
	return c.On(st.hosts, nil, func(hc *tasks.HostContext) error {
		return fn(hc, st.host(hc.Host))
	})
}

// stepError names the host and step of a failure, so one line of the
// summary says where it went wrong.
func stepError(step string, err error) error {
	return fmt.Errorf("%s: %w", step, err)
}

// joinLines indents every line but the first of a multi-line message.
func joinLines(lines []string) string {
	return strings.Join(lines, "\n  ")
}

// pid is this process's id, recorded in the lock so an operator can tell
// whether the deploy holding it still runs.
func pid() int { return os.Getpid() }
