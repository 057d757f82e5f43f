package assets

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/davit-deploy/davit/recipes/scm"
	"github.com/davit-deploy/davit/tasks"
)

// settings are the task's variables, read and validated.
type settings struct {
	dir         string // absolute
	bucket      string
	prefix      string // "" or ending in "/"
	acl         types.ObjectCannedACL
	cache       cacheRules
	exclude     *scm.Excluder
	delete      bool
	deleteForce bool
	parallel    int
}

func readSettings(c *tasks.Context) (settings, error) {
	var s settings
	v := c.Executor.Vars
	var err error
	if s.dir, err = v.FetchString("assets_dir"); err != nil {
		return s, err
	}
	if s.dir == "" {
		return s, fmt.Errorf("assets_dir is empty")
	}
	if !filepath.IsAbs(s.dir) && c.Executor.LocalDir != "" {
		s.dir = filepath.Join(c.Executor.LocalDir, s.dir)
	}
	if s.bucket, err = v.FetchString("assets_bucket"); err != nil {
		return s, err
	}
	if s.bucket == "" {
		return s, fmt.Errorf("assets_bucket is not set (the S3 bucket to sync assets_dir to)")
	}
	prefix, err := v.FetchString("assets_prefix")
	if err != nil {
		return s, err
	}
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		s.prefix = prefix + "/"
	}
	acl, err := v.FetchString("assets_acl")
	if err != nil {
		return s, err
	}
	s.acl = types.ObjectCannedACL(acl)
	if acl != "" && !slices.Contains(s.acl.Values(), s.acl) {
		return s, fmt.Errorf("assets_acl %q is not a canned ACL (one of %v, or \"\" for none)", acl, s.acl.Values())
	}
	cc, err := v.Fetch("assets_cache_control")
	if err != nil {
		return s, err
	}
	if s.cache, err = parseCacheRules(cc); err != nil {
		return s, fmt.Errorf("assets_cache_control: %w", err)
	}
	patterns, err := v.FetchStrings("assets_exclude")
	if err != nil {
		return s, err
	}
	if s.exclude, err = scm.NewExcluder(patterns); err != nil {
		return s, fmt.Errorf("assets_exclude: %w", err)
	}
	if s.delete, err = v.FetchBool("assets_delete"); err != nil {
		return s, err
	}
	if s.deleteForce, err = v.FetchBool("assets_delete_force"); err != nil {
		return s, err
	}
	if s.parallel, err = v.FetchInt("assets_parallel"); err != nil {
		return s, err
	}
	if s.parallel < 1 {
		return s, fmt.Errorf("assets_parallel is %d; want at least 1", s.parallel)
	}
	return s, nil
}

// cacheRules choose a file's Cache-Control: the longest glob that matches
// it, else the default ("" sends no header).
type cacheRules struct {
	def   string
	rules []cacheRule // longest glob first
}

type cacheRule struct {
	glob  string
	match *scm.Excluder // the one glob, matched as assets_exclude is
	value string
}

// parseCacheRules accepts a string (the value for every file) or a dict of
// glob to value, with "default" for files no glob matches. A dict comes
// from Starlark without its order, hence longest-glob-wins rather than
// first-wins.
func parseCacheRules(v any) (cacheRules, error) {
	var cr cacheRules
	switch x := v.(type) {
	case nil:
		return cr, nil
	case string:
		cr.def = x
		return cr, nil
	case map[string]any:
		for glob, val := range x {
			s, ok := val.(string)
			if !ok {
				return cr, fmt.Errorf("rule %q: value is %T, want a string", glob, val)
			}
			if glob == "default" {
				cr.def = s
				continue
			}
			m, err := scm.NewExcluder([]string{glob})
			if err != nil {
				return cr, fmt.Errorf("rule %q: %w", glob, err)
			}
			cr.rules = append(cr.rules, cacheRule{glob: glob, match: m, value: s})
		}
		sort.Slice(cr.rules, func(i, j int) bool {
			a, b := cr.rules[i].glob, cr.rules[j].glob
			if len(a) != len(b) {
				return len(a) > len(b)
			}
			return a < b
		})
		return cr, nil
	}
	return cr, fmt.Errorf("want a string or a dict of glob to Cache-Control value, have %T", v)
}

// forPath is the Cache-Control for rel (slash-separated, relative to
// assets_dir). A glob matches the file or any directory above it, as an
// exclusion of a directory covers what is in it.
func (cr cacheRules) forPath(rel string) string {
	for _, r := range cr.rules {
		if r.match.Excluded(rel, false) {
			return r.value
		}
		for d := path.Dir(rel); d != "." && d != "/"; d = path.Dir(d) {
			if r.match.Excluded(d, true) {
				return r.value
			}
		}
	}
	return cr.def
}
