package capdeploy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/httpwait"
	"github.com/davit-deploy/davit/tasks"
)

// healthTarget is one URL to check on one host.
type healthTarget struct {
	host *deploy.Host
	url  string
}

// healthSettings are the health check's variables, read once per check.
type healthSettings struct {
	expect   string
	timeout  time.Duration
	rollback bool
}

// healthTargets lists what deploy:health_check will fetch for the hosts
// the executor sees: health_check_url is one template for the hosts with
// health_check_roles, or a dict from role to template. Nil when the check
// is off. Bad templates fail here, before a deploy touches any host.
func (r *Recipe) healthTargets(c *tasks.Context, st *runState) ([]healthTarget, error) {
	v := c.Executor.Vars
	deployHosts := c.Executor.Filter.Apply(st.hosts)
	var out []healthTarget
	add := func(tmpl string, hosts []*deploy.Host) error {
		for _, h := range hosts {
			if !slices.ContainsFunc(deployHosts, func(d *deploy.Host) bool { return d.Key() == h.Key() }) {
				continue
			}
			u, err := httpwait.ExpandURL(tmpl, h)
			if err != nil {
				return err
			}
			out = append(out, healthTarget{host: h, url: u})
		}
		return nil
	}
	urls, err := HealthURLs(v)
	if err != nil {
		return nil, err
	}
	for _, u := range urls {
		if err := add(u.Template, deploy.WithRoles(st.hosts, u.Roles...)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// RoleURL is one health check URL template and the roles whose hosts it
// is for ("all": every host).
type RoleURL struct {
	Roles    []string
	Template string
}

// HealthURLs reads health_check_url as the deploy recipe does: one
// template for the hosts with health_check_roles (default all), or a dict
// from role to template, in role order; nil when the check is off. The
// launcher of the aws recipe waits for a new instance's page with the
// same setting.
func HealthURLs(v *tasks.Vars) ([]RoleURL, error) {
	raw, err := v.Fetch("health_check_url")
	if err != nil {
		return nil, err
	}
	switch x := raw.(type) {
	case nil:
		return nil, nil
	case string:
		if strings.TrimSpace(x) == "" {
			return nil, nil
		}
		// Unset (a Deployfile that sets health_check_url for the
		// launcher without use("deploy")) means every role.
		var roles []string
		if v.Has("health_check_roles") {
			if roles, err = v.FetchStrings("health_check_roles"); err != nil {
				return nil, err
			}
		}
		if len(roles) == 0 {
			roles = []string{"all"}
		}
		return []RoleURL{{Roles: roles, Template: x}}, nil
	case map[string]any:
		var out []RoleURL
		for _, role := range sortedKeys(x) {
			tmpl, ok := x[role].(string)
			if !ok {
				return nil, fmt.Errorf("health_check_url[%q]: want a URL template string, have %T", role, x[role])
			}
			out = append(out, RoleURL{Roles: []string{role}, Template: tmpl})
		}
		return out, nil
	}
	return nil, fmt.Errorf("health_check_url: want a URL template or a dict from role to template, have %T", raw)
}

func healthConfig(v *tasks.Vars) (healthSettings, error) {
	var s healthSettings
	var err error
	if s.expect, err = v.FetchString("health_check_expect"); err != nil {
		return s, err
	}
	if s.timeout, err = v.FetchDuration("health_check_timeout"); err != nil {
		return s, err
	}
	if s.timeout <= 0 {
		return s, fmt.Errorf("health_check_timeout is %s; it must be more than 0 seconds", s.timeout)
	}
	if s.rollback, err = v.FetchBool("health_check_rollback"); err != nil {
		return s, err
	}
	return s, nil
}

// healthCheck is deploy:health_check: after deploy:published and its
// hooks (the restarts), an HTTP GET of each host's URL from this machine
// until the body contains health_check_expect (any case) or
// health_check_timeout passes. A failure fails the publish, which moves
// the fleet back, unless health_check_rollback is off: then the deploy
// finishes and reports the failure at the end.
func (r *Recipe) healthCheck(c *tasks.Context) error {
	st := r.current()
	if st == nil {
		var done func()
		var err error
		if st, done, err = r.state(c, opCheck); err != nil {
			return err
		}
		defer done()
	}
	targets, err := r.healthTargets(c, st)
	if err != nil || len(targets) == 0 {
		return err
	}
	cfg, err := healthConfig(c.Executor.Vars)
	if err != nil {
		return err
	}
	if c.DryRun() {
		// A dry run sends no request: the servers run nothing new.
		for _, t := range targets {
			c.Info(fmt.Sprintf("dry run: %s: would GET %s until the page contains %q (at most %s)", t.host, t.url, cfg.expect, cfg.timeout))
		}
		return nil
	}
	byHost := map[string][]string{}
	var hosts []*deploy.Host
	for _, t := range targets {
		if _, ok := byHost[t.host.Key()]; !ok {
			hosts = append(hosts, t.host)
		}
		byHost[t.host.Key()] = append(byHost[t.host.Key()], t.url)
	}
	wait := httpwait.Options{
		Expect:     cfg.expect,
		Interval:   defaultHealthInterval,
		TryTimeout: defaultHealthRequestLimit,
		Timeout:    cfg.timeout,
	}
	client := httpwait.Client(wait)
	defer client.CloseIdleConnections()
	err = c.On(hosts, nil, func(hc *tasks.HostContext) error {
		for _, u := range byHost[hc.Host.Key()] {
			start := time.Now()
			if _, err := httpwait.WaitWith(hc.Ctx(), client, u, wait); err != nil {
				return fmt.Errorf("health check GET %s: %w", u, err)
			}
			hc.Info(fmt.Sprintf("healthy: %s answered %q after %s", u, cfg.expect, time.Since(start).Round(time.Millisecond)))
		}
		return nil
	})
	if err != nil && !cfg.rollback && st.op != opCheck {
		st.mu.Lock()
		if st.healthFailed == nil {
			st.healthFailed = err
		}
		st.mu.Unlock()
		c.Warn("health check failed; health_check_rollback is off, so the deploy goes on: " + err.Error())
		return nil
	}
	return err
}
