package capdeploy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/davit-deploy/davit/deploy/httpwait"
	"github.com/davit-deploy/davit/recipes/scm"
	"github.com/davit-deploy/davit/tasks"
)

// CheckVars validates every variable the recipe reads (types, ranges,
// forms, the scm strategy's name and its own variables) without running
// anything, and reports every problem at once. It accepts exactly what the
// recipe's own reads accept, so a command-line override ("3", "true",
// "90s") is as good as the Deployfile's value. The executor's run calls it
// before the first command (tasks.VarsChecker).
func (r *Recipe) CheckVars(v *tasks.Vars) error {
	var problems []string
	add := func(name string, err error) {
		if err != nil {
			problems = append(problems, v.Problem(name, err, recipePos.File))
		}
	}

	// deploy_to's default is derived from application; a Deployfile that
	// sets neither fails in the task that needs the layout, and tasks that
	// do not need it (an uptime check) still run.
	if v.Has("application") || v.SetAt("deploy_to", recipePos.File) != "" {
		_, err := layoutFrom(v)
		add("deploy_to", err)
	}
	if name, err := v.FetchString("scm"); err != nil {
		add("scm", err)
	} else if _, err := scm.New(name); err != nil {
		add("scm", err)
	} else {
		for _, err := range scm.CheckVars(name, v) {
			add(leadingName(err.Error()), err)
		}
	}
	_, err := keepReleases(v)
	add("keep_releases", err)
	for _, name := range []string{"linked_dirs", "linked_files"} {
		paths, err := v.FetchStrings(name)
		add(name, err)
		for _, p := range paths {
			add(name, validLinkedPath(p))
		}
	}
	for _, name := range []string{"deploy_roles", "health_check_roles"} {
		_, err := v.FetchStrings(name)
		add(name, err)
	}
	add("health_check_url", checkHealthURLs(v))
	_, err = v.FetchString("health_check_expect")
	add("health_check_expect", err)
	if d, err := v.FetchDuration("health_check_timeout"); err != nil {
		add("health_check_timeout", err)
	} else if d <= 0 {
		add("health_check_timeout", fmt.Errorf("health_check_timeout is %s; it must be more than 0 seconds", d))
	}
	for _, name := range []string{"health_check_rollback", "host_shell"} {
		_, err := v.FetchBool(name)
		add(name, err)
	}
	if spec, err := v.FetchString("publish_batch"); err != nil {
		add("publish_batch", err)
	} else {
		_, err := batchSize(spec, 1)
		add("publish_batch", err)
	}
	if d, err := v.FetchDuration("publish_batch_wait"); err != nil {
		add("publish_batch_wait", err)
	} else if d < 0 {
		add("publish_batch_wait", fmt.Errorf("publish_batch_wait is %s; it cannot be negative", d))
	}
	for _, name := range []string{"release", "rollback_release"} {
		if v.Has(name) {
			_, err := rollbackTarget(onlyVar(v, name))
			add(name, err)
		}
	}
	_, err = v.FetchString("local_user")
	add("local_user", err)
	var lbErr error
	if r.registry != nil {
		_, lbErr = loadBalanced(r.registry)
	}
	if len(problems) == 0 {
		return lbErr
	}
	return errors.Join(&tasks.VarsError{Recipe: "deploy", Problems: problems}, lbErr)
}

// leadingName is the variable an error of the scm package is about: the
// name it starts with (after "variable ").
func leadingName(msg string) string {
	msg = strings.TrimPrefix(msg, "variable ")
	end := strings.IndexFunc(msg, func(r rune) bool { return r != '_' && !('a' <= r && r <= 'z') })
	if end < 0 {
		return msg
	}
	return msg[:end]
}

// onlyVar is a store holding name's value alone, so rollbackTarget checks
// one of its two variables at a time.
func onlyVar(v *tasks.Vars, name string) *tasks.Vars {
	one := tasks.NewVars()
	if val, err := v.Fetch(name); err == nil {
		one.Set(name, val, v.Pos(name))
	}
	return one
}

// checkHealthURLs validates health_check_url: unset or empty (no check), a
// URL template, or a dict from role to template; each an http or https
// URL with a host once its {placeholders} are filled.
func checkHealthURLs(v *tasks.Vars) error {
	raw, err := v.Fetch("health_check_url")
	if err != nil {
		return err
	}
	switch x := raw.(type) {
	case nil:
		return nil
	case string:
		if strings.TrimSpace(x) == "" {
			return nil
		}
		return checkHealthURL(x)
	case map[string]any:
		var errs []error
		for _, role := range sortedKeys(x) {
			tmpl, ok := x[role].(string)
			if !ok {
				errs = append(errs, fmt.Errorf("[%q]: want a URL template string, have %T", role, x[role]))
				continue
			}
			if err := checkHealthURL(tmpl); err != nil {
				errs = append(errs, fmt.Errorf("[%q]: %w", role, err))
			}
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("want a URL template or a dict from role to template, have %T", raw)
}

// checkHealthURL checks one template's form; which placeholders a host
// can fill is known only once the hosts are (httpwait.ExpandURL).
func checkHealthURL(tmpl string) error {
	filled := httpwait.Placeholder.ReplaceAllString(tmpl, "1") // a host name and a port alike
	u, err := url.Parse(filled)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL: %v", tmpl, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: want an http:// or https:// URL, such as http://{host}:8080/up", tmpl)
	case u.Host == "":
		return fmt.Errorf("%q has no host; {host} is each server's address", tmpl)
	}
	return nil
}

// recipePos is where the recipe's defaults and the values it sets come
// from, as variables and messages show it.
var recipePos = tasks.Position{File: "recipes/capdeploy"}

// Compile-time check that the recipe validates its variables up front.
var _ tasks.VarsChecker = (*Recipe)(nil)
