package scm

import (
	"fmt"
	"slices"
	"strings"

	"github.com/davit-deploy/davit/tasks"
)

// Variables are read when a strategy method runs, never when it is made:
// the Deployfile's set() and command-line overrides (branch=hotfix) must
// both be seen, and a lazy value must be computed only by a run that
// needs it.

// optString reads an optional string variable. Unset, None and "" all
// mean "not given", so a Deployfile can clear a default with set(x, None).
// Numbers are accepted as their decimal form, since an svn revision is
// naturally written as one.
func optString(c *tasks.Context, name string) (string, error) {
	v, err := c.FetchOr(name, nil)
	if err != nil {
		return "", err
	}
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return strings.TrimSpace(x), nil
	case int, int64:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("variable %s: want a string, have %T", name, v)
}

// reqString reads a string variable that must be set.
func reqString(c *tasks.Context, name string) (string, error) {
	s, err := optString(c, name)
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", fmt.Errorf("variable %s is not set", name)
	}
	return s, nil
}

// optStrings reads an optional list of strings (see tasks.Vars.FetchStrings
// for the forms accepted); unset means none.
func optStrings(c *tasks.Context, name string) ([]string, error) {
	v, err := c.FetchOr(name, nil)
	if err != nil || v == nil {
		return nil, err
	}
	return c.Executor.Vars.FetchStrings(name)
}

// overridden reports whether name was given on the command line.
func overridden(c *tasks.Context, name string) bool {
	v := c.Executor.Vars
	return v != nil && v.Overridden(name)
}

// selector is what the user asked to deploy: one of branch, tag, revision
// or version, and its value.
type selector struct {
	kind, value string
}

// defaultBranch is deployed when none of branch, tag, revision and version
// is set.
const defaultBranch = "main"

// readSelector decides which of branch, tag, revision and version picks the
// revision, and validates every one that is set.
//
// revision, tag and version are exclusive: setting two is an error rather
// than a silent precedence rule. branch always has a value (default
// "main"), so it counts only when none of the others is set. Values given
// on the command line win over the Deployfile's, so that
// `davit production deploy branch=hotfix` deploys hotfix even when the
// Deployfile pins a version: when any of the four is overridden, only the
// overridden ones are considered.
func readSelector(c *tasks.Context) (selector, error) {
	kinds := []string{KindRevision, KindTag, KindVersion, KindBranch}
	vals := map[string]string{}
	var fromCLI []string
	for _, k := range kinds {
		v, err := optString(c, k)
		if err != nil {
			return selector{}, err
		}
		if v == "" {
			continue
		}
		if err := ValidateRef(k, v); err != nil {
			return selector{}, err
		}
		vals[k] = v
		if overridden(c, k) {
			fromCLI = append(fromCLI, k)
		}
	}
	if len(fromCLI) > 0 {
		for _, k := range kinds {
			if !slices.Contains(fromCLI, k) {
				delete(vals, k)
			}
		}
	}
	var specific []string
	for _, k := range kinds[:3] {
		if _, ok := vals[k]; ok {
			specific = append(specific, k)
		}
	}
	switch len(specific) {
	case 0:
		if b, ok := vals[KindBranch]; ok {
			return selector{KindBranch, b}, nil
		}
		return selector{KindBranch, defaultBranch}, nil
	case 1:
		k := specific[0]
		v := vals[k]
		if k == KindRevision {
			v = strings.ToLower(v)
		}
		return selector{k, v}, nil
	}
	both := "both"
	if len(specific) > 2 {
		both = "all"
	}
	return selector{}, fmt.Errorf("%s are %s set; set only one of revision, tag and version (a value given on the command line wins over the Deployfile's)",
		strings.Join(specific, " and "), both)
}
