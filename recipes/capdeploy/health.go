package capdeploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/davit-deploy/davit/deploy"
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

var placeholder = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandURL fills a URL template for host h: {host} is the address davit
// connects to (address=, else the name), {name} the host's name, {user}
// its login user, and any other {key} the host property key (server(...,
// http_port = 8080) gives {http_port}).
func expandURL(tmpl string, h *deploy.Host) (string, error) {
	var missing []string
	out := placeholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		key := m[1 : len(m)-1]
		switch key {
		case "host":
			return h.DialAddress()
		case "name":
			return h.Name
		case "user":
			return h.User
		}
		if v, ok := h.Props[key]; ok {
			return fmt.Sprint(v)
		}
		missing = append(missing, m)
		return m
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("health_check_url %q: %s has no %s (placeholders are {host}, {name}, {user} and the host's properties)", tmpl, h, strings.Join(missing, ", "))
	}
	return out, nil
}

// healthTargets lists what deploy:health_check will fetch for the hosts
// the executor sees: health_check_url is one template for the hosts with
// health_check_roles, or a dict from role to template. Nil when the check
// is off. Bad templates fail here, before a deploy touches any host.
func (r *Recipe) healthTargets(c *tasks.Context, st *runState) ([]healthTarget, error) {
	v := c.Executor.Vars
	raw, err := v.Fetch("health_check_url")
	if err != nil {
		return nil, err
	}
	deployHosts := c.Executor.Filter.Apply(st.hosts)
	var out []healthTarget
	add := func(tmpl string, hosts []*deploy.Host) error {
		for _, h := range hosts {
			if !slices.ContainsFunc(deployHosts, func(d *deploy.Host) bool { return d.Key() == h.Key() }) {
				continue
			}
			u, err := expandURL(tmpl, h)
			if err != nil {
				return err
			}
			out = append(out, healthTarget{host: h, url: u})
		}
		return nil
	}
	switch x := raw.(type) {
	case nil:
		return nil, nil
	case string:
		if strings.TrimSpace(x) == "" {
			return nil, nil
		}
		roles, err := v.FetchStrings("health_check_roles")
		if err != nil {
			return nil, err
		}
		if len(roles) == 0 {
			roles = []string{"all"}
		}
		if err := add(x, deploy.WithRoles(st.hosts, roles...)); err != nil {
			return nil, err
		}
	case map[string]any:
		for _, role := range sortedKeys(x) {
			tmpl, ok := x[role].(string)
			if !ok {
				return nil, fmt.Errorf("health_check_url[%q]: want a URL template string, have %T", role, x[role])
			}
			if err := add(tmpl, deploy.WithRoles(st.hosts, role)); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("health_check_url: want a URL template or a dict from role to template, have %T", raw)
	}
	return out, nil
}

func healthConfig(v *tasks.Vars) (healthSettings, error) {
	var s healthSettings
	var err error
	if s.expect, err = v.FetchString("health_check_expect"); err != nil {
		return s, err
	}
	if s.timeout, err = seconds(v, "health_check_timeout"); err != nil {
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
	client := &http.Client{Transport: &http.Transport{
		// Health checks go straight to the servers: a proxy from the
		// environment would check the proxy's view instead.
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: defaultHealthRequestLimit,
		DisableKeepAlives:     true,
	}}
	defer client.CloseIdleConnections()
	err = c.On(hosts, nil, func(hc *tasks.HostContext) error {
		for _, u := range byHost[hc.Host.Key()] {
			start := time.Now()
			if err := waitHealthy(hc.Ctx(), client, u, cfg.expect, cfg.timeout); err != nil {
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

// waitHealthy polls url until its body contains expect (case-insensitive)
// with a status below 400, or timeout passes. Each request is bounded on
// its own, so one hung connection cannot eat the whole deadline.
func waitHealthy(ctx context.Context, client *http.Client, url, expect string, timeout time.Duration) error {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	want := bytes.ToLower([]byte(expect))
	last := "no answer"
	// try makes one request; it reports whether the page was healthy and,
	// if not, why in last.
	try := func() (bool, error) {
		rctx, rcancel := context.WithTimeout(dctx, defaultHealthRequestLimit)
		defer rcancel()
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		switch {
		case err != nil:
			last = fmt.Sprintf("status %d, reading the body: %v", resp.StatusCode, err)
		case resp.StatusCode >= 400:
			last = fmt.Sprintf("status %d", resp.StatusCode)
		case !bytes.Contains(bytes.ToLower(body), want):
			last = fmt.Sprintf("status %d, body without %q: %q", resp.StatusCode, expect, snippet(body))
		default:
			return true, nil
		}
		return false, nil
	}
	for {
		ok, err := try()
		if ok || err != nil {
			return err
		}
		t := time.NewTimer(defaultHealthInterval)
		select {
		case <-dctx.Done():
			t.Stop()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("no answer containing %q within %s (last: %s)", expect, timeout, last)
		case <-t.C:
		}
	}
}

func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}
