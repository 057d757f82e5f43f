package assets

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

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
	// multipart is the size from which a file is uploaded in parts, and
	// the size of each part.
	multipart int64
	// distribution is the CloudFront distribution to invalidate; "" none.
	distribution string
	// maxPaths is the most paths one invalidation lists; above it, "/*".
	maxPaths int
	// wait bounds the wait for the invalidation to complete; 0 does not wait.
	wait time.Duration
}

// minPartSize is S3's smallest part of a multipart upload (but the last).
const minPartSize = 5 << 20

// bucketName is S3's rule for a general purpose bucket's name.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// distributionID is the form of a CloudFront distribution's id (E2QWRUHAPOMQZL).
var distributionID = regexp.MustCompile(`^[A-Z0-9]{1,128}$`)

// CheckVars validates every assets_* variable without touching the disk
// or the network, and reports every problem at once; the run calls it
// before the first command (tasks.VarsChecker). An empty assets_bucket is
// not a problem here (a Deployfile may use the recipe in one stage only);
// assets:sync refuses it. Whether assets_dir exists is the task's
// business too: an earlier task of the deploy may build it.
func (r *Recipe) CheckVars(v *tasks.Vars) error {
	_, err := readSettings(v, "", false)
	return err
}

// Compile-time check that the recipe validates its variables up front.
var _ tasks.VarsChecker = (*Recipe)(nil)

// readSettings reads and validates the variables; localDir is the
// Deployfile's directory, which a relative assets_dir is under. With
// needBucket, an empty assets_bucket is a problem. The error is a
// *tasks.VarsError with every problem.
func readSettings(v *tasks.Vars, localDir string, needBucket bool) (settings, error) {
	var s settings
	var problems []string
	add := func(name string, err error) {
		if err != nil {
			problems = append(problems, v.Problem(name, err, recipePos.File))
		}
	}

	dir, err := v.FetchString("assets_dir")
	switch {
	case err != nil:
		add("assets_dir", err)
	case dir == "":
		add("assets_dir", errors.New("assets_dir is empty (the directory to upload, such as \"public\")"))
	case !filepath.IsAbs(dir) && localDir != "":
		s.dir = filepath.Join(localDir, dir)
	default:
		s.dir = dir
	}

	s.bucket, err = v.FetchString("assets_bucket")
	switch {
	case err != nil:
		add("assets_bucket", err)
	case s.bucket == "" && needBucket:
		add("assets_bucket", errors.New("assets_bucket is not set (the S3 bucket to sync assets_dir to)"))
	case s.bucket != "" && (!bucketName.MatchString(s.bucket) || strings.Contains(s.bucket, "..")):
		add("assets_bucket", fmt.Errorf("assets_bucket %q is not an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)", s.bucket))
	}

	prefix, err := v.FetchString("assets_prefix")
	add("assets_prefix", err)
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		s.prefix = prefix + "/"
	}

	acl, err := v.FetchString("assets_acl")
	add("assets_acl", err)
	s.acl = types.ObjectCannedACL(acl)
	if acl != "" && !slices.Contains(s.acl.Values(), s.acl) {
		add("assets_acl", fmt.Errorf("assets_acl %q is not a canned ACL (one of %v, or \"\" for none)", acl, s.acl.Values()))
	}

	if cc, err := v.Fetch("assets_cache_control"); err != nil {
		add("assets_cache_control", err)
	} else if s.cache, err = parseCacheRules(cc); err != nil {
		add("assets_cache_control", err)
	}

	if patterns, err := v.FetchStrings("assets_exclude"); err != nil {
		add("assets_exclude", err)
	} else if s.exclude, err = scm.NewExcluder(patterns); err != nil {
		add("assets_exclude", err)
	}

	s.delete, err = v.FetchBool("assets_delete")
	add("assets_delete", err)
	s.deleteForce, err = v.FetchBool("assets_delete_force")
	add("assets_delete_force", err)

	s.parallel, err = v.FetchInt("assets_parallel")
	add("assets_parallel", err)
	if err == nil && s.parallel < 1 {
		add("assets_parallel", fmt.Errorf("assets_parallel is %d; want at least 1", s.parallel))
	}

	threshold, err := v.FetchInt("assets_multipart_threshold")
	add("assets_multipart_threshold", err)
	if err == nil && threshold < minPartSize {
		add("assets_multipart_threshold", fmt.Errorf("assets_multipart_threshold is %d bytes; S3's parts are at least %d (5 MiB)", threshold, minPartSize))
	}
	s.multipart = int64(threshold)

	s.distribution, err = v.FetchString("assets_distribution")
	add("assets_distribution", err)
	if s.distribution != "" && !distributionID.MatchString(s.distribution) {
		add("assets_distribution", fmt.Errorf("assets_distribution %q is not a CloudFront distribution id (uppercase letters and digits, such as E2QWRUHAPOMQZL)", s.distribution))
	}
	s.maxPaths, err = v.FetchInt("assets_invalidate_max_paths")
	add("assets_invalidate_max_paths", err)
	if err == nil && s.maxPaths < 1 {
		add("assets_invalidate_max_paths", fmt.Errorf("assets_invalidate_max_paths is %d; want at least 1", s.maxPaths))
	}
	s.wait, err = v.FetchDuration("assets_invalidation_wait")
	add("assets_invalidation_wait", err)
	if err == nil && s.wait < 0 {
		add("assets_invalidation_wait", fmt.Errorf("assets_invalidation_wait is %s; it cannot be negative", s.wait))
	}

	if len(problems) > 0 {
		return s, &tasks.VarsError{Recipe: "assets", Problems: problems}
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
