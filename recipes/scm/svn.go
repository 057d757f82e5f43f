package scm

// The svn strategy exports one revision of a Subversion URL into each
// release with svn export. It keeps no cache on the hosts: svn has no cheap
// equivalent of a bare mirror, and an export is what a release needs.
//
// Variables (read when each method runs, so command-line overrides count):
//
//	repo_url      (required)  the URL to export (…/trunk, …/branches/x,
//	                          svn://, https://, file://). Mark it
//	                          secret=True if it embeds credentials.
//	revision      unset       the revision to deploy: 1234 or r1234. Unset:
//	                          the URL's last-changed revision, asked once
//	                          per run.
//	svn_username  unset       user name, passed as --username.
//	svn_password  unset       password. Secret (its name says so, so davit
//	                          redacts it everywhere); it travels on the
//	                          command's stdin (--password-from-stdin, svn
//	                          1.10+), never on a command line or in the log.
//
// Every svn command runs with --non-interactive --no-auth-cache: it never
// prompts, and never stores the credentials on a host.
//
// Revision.ID is the revision number ("1234"); Revision.Branch is the
// URL's last path element and the revision, "trunk@r1234", so
// revisions.log shows which line of development was deployed.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/tasks"
)

// svnStrategy is the "svn" strategy; its state is the revision resolved
// for this run and that revision's date.
type svnStrategy struct {
	mu       sync.Mutex
	resolved *Revision
	// revTime is revTimeOf's last-changed date, once asked for.
	revTime   time.Time
	revTimeOf string
}

func (s *svnStrategy) Name() string { return "svn" }

// svnAuth is how svn commands authenticate.
type svnAuth struct {
	username, password string
}

// args are the options every svn command gets: never prompt, never cache
// credentials, and the credentials themselves, the password only as a
// promise to read it from stdin.
func (a svnAuth) args() []string {
	args := []string{"--non-interactive", "--no-auth-cache"}
	if a.username != "" {
		args = append(args, "--username", a.username)
	}
	if a.password != "" {
		args = append(args, "--password-from-stdin")
	}
	return args
}

// opts carries the password on stdin. Each command needs a reader of its
// own: a reader is used up by the first command that reads it.
func (a svnAuth) opts() tasks.CommandOptions {
	o := tasks.CommandOptions{Env: map[string]string{"LC_ALL": "C"}}
	if a.password != "" {
		o.Stdin = strings.NewReader(a.password + "\n")
	}
	return o
}

// svnSource is what the svn strategy reads from variables.
type svnSource struct {
	url      string
	revision string // "" or digits
	auth     svnAuth
}

func readSVNSource(c *tasks.Context) (svnSource, error) {
	var s svnSource
	var err error
	if s.url, err = reqString(c, "repo_url"); err != nil {
		return s, err
	}
	if err := validateRepoURL(s.url); err != nil {
		return s, err
	}
	url := s.url
	s, err = readSVNOptions(c)
	s.url = url
	return s, err
}

// readSVNOptions reads and validates the svn strategy's variables other
// than repo_url (the revision and the credentials), leaving url empty.
func readSVNOptions(c *tasks.Context) (svnSource, error) {
	var s svnSource
	var err error
	if s.revision, err = optString(c, "revision"); err != nil {
		return s, err
	}
	if s.revision != "" {
		if s.revision, err = parseSVNRevision(s.revision); err != nil {
			return s, err
		}
	}
	if s.auth.username, err = optString(c, "svn_username"); err != nil {
		return s, err
	}
	if strings.HasPrefix(s.auth.username, "-") || strings.ContainsAny(s.auth.username, "\n\r\x00") {
		return s, fmt.Errorf("svn_username %q: starts with '-' or contains a line break", s.auth.username)
	}
	// Not optString: a password's surrounding spaces are part of it.
	pw, err := c.FetchOr("svn_password", nil)
	if err != nil {
		return s, err
	}
	switch p := pw.(type) {
	case nil:
	case string:
		s.auth.password = p
	default:
		return s, fmt.Errorf("variable svn_password: want a string, have %T", pw)
	}
	if strings.ContainsAny(s.auth.password, "\n\r") {
		// svn reads one line; the rest would be silently dropped.
		return s, errors.New("svn_password contains a line break, which --password-from-stdin cannot pass")
	}
	return s, nil
}

// parseSVNRevision accepts 1234 or r1234 and returns the digits.
func parseSVNRevision(r string) (string, error) {
	d := r
	if len(d) > 0 && (d[0] == 'r' || d[0] == 'R') {
		d = d[1:]
	}
	n, err := strconv.ParseUint(d, 10, 63)
	if err != nil {
		return "", fmt.Errorf("revision %q: want an svn revision number such as 1234 or r1234", r)
	}
	return strconv.FormatUint(n, 10), nil
}

// svnBranch is Revision.Branch: the URL's last path element at the
// revision, e.g. "trunk@r1234".
func svnBranch(url, rev string) string { return svnLine(url) + "@r" + rev }

// svnLine is the URL's last path element: the line of development
// ("trunk", a branch's name).
func svnLine(url string) string {
	u := strings.TrimRight(url, "/")
	if i := strings.LastIndex(u, "/"); i >= 0 {
		u = u[i+1:]
	}
	return u
}

// Check reports a missing svn, invalid variables and a URL the host cannot
// read with the configured credentials, in one command.
func (s *svnStrategy) Check(hc *tasks.HostContext, l deploy.Layout) ([]string, error) {
	return runCheck(s, hc, l)
}

// CheckStep is Check's step: svn --version, then svn info of the URL with
// the credentials (the password on stdin).
func (s *svnStrategy) CheckStep(c *tasks.Context, l deploy.Layout) ([]string, *tasks.Step, func(string) []string) {
	var problems []string
	src, srcErr := readSVNSource(c)
	if srcErr != nil {
		problems = append(problems, srcErr.Error())
	}
	opts := svnAuth{}.opts()
	var args []string
	if srcErr == nil {
		args = append(append([]string{"svn", "info"}, src.auth.args()...), "--", src.url)
		opts = src.auth.opts()
	}
	parse := func(out string) []string {
		probs, failed := parseCheck(out)
		if failed != nil {
			r := stderrReason(failed)
			if r == "" {
				r = "svn info failed"
			}
			probs = append(probs, fmt.Sprintf("cannot read repo_url %s: %s", src.url, r))
		}
		return probs
	}
	return problems, &tasks.Step{Name: "check svn and the repository", Script: svnCheckScript, Args: args, Env: opts.Env, Stdin: opts.Stdin}, parse
}

// Resolve returns the revision variable when set, else asks for the URL's
// last-changed revision (the revision of the newest change at or below the
// URL, so deploying twice without changes gives the same ID) on the
// control machine, or on the primary host when the control machine cannot
// reach the repository. Once per strategy value, like git's.
func (s *svnStrategy) Resolve(c *tasks.Context) (Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resolved != nil {
		return *s.resolved, nil
	}
	src, err := readSVNSource(c)
	if err != nil {
		return Revision{}, fmt.Errorf("svn: %w", err)
	}
	rev := src.revision
	if rev == "" && c.DryRun() {
		// A dry run asks no server: what it would ask stands in.
		c.Info(fmt.Sprintf("svn: dry run: the last-changed revision of %s would be asked for", src.url))
		r := placeholderRevision("last-changed revision", src.url, svnLine(src.url))
		s.resolved = &r
		return r, nil
	}
	if rev == "" {
		var out string
		where, err := firstReachable(c, "svn", src.url, true, func(hc *tasks.HostContext) error {
			args := append([]string{"svn", "info", "--show-item", "last-changed-revision"}, src.auth.args()...)
			var err error
			opts := src.auth.opts()
			opts.Label = "ask svn for the last-changed revision"
			out, err = hc.Capture(append(args, "--", src.url), opts)
			return err
		})
		if err != nil {
			return Revision{}, err
		}
		if rev, err = parseSVNRevision(strings.TrimSpace(out)); err != nil {
			return Revision{}, fmt.Errorf("svn: svn info of %s on %s printed %q, not a revision", src.url, where, out)
		}
		c.Info(fmt.Sprintf("svn: %s is at r%s (resolved on %s)", src.url, rev, where))
	} else {
		c.Info(fmt.Sprintf("svn: deploying r%s of %s", rev, src.url))
	}
	r := Revision{ID: rev, Branch: svnBranch(src.url, rev)}
	s.resolved = &r
	return r, nil
}

// Update does nothing: svn keeps no cache on the hosts.
func (s *svnStrategy) Update(hc *tasks.HostContext, l deploy.Layout, rev Revision) error {
	return nil
}

// CacheFile is "": there is no cache.
func (s *svnStrategy) CacheFile(l deploy.Layout) string { return "" }

// UpdateStep is nil: there is no cache to update.
func (s *svnStrategy) UpdateStep(c *tasks.Context, l deploy.Layout, rev Revision, cached bool) (*tasks.Step, error) {
	return nil, nil
}

// Release runs ReleaseStep, one command.
func (s *svnStrategy) Release(hc *tasks.HostContext, l deploy.Layout, rev Revision, dir string) error {
	step, err := s.ReleaseStep(hc.Context, l, rev, dir)
	if err != nil {
		return fmt.Errorf("svn release on %s: %w", hc.Host, err)
	}
	_, err = runSteps(hc, "svn release", step)
	return err
}

// ReleaseStep is
//
//	svn export --force --quiet --non-interactive --no-auth-cache
//	    [--username U] [--password-from-stdin] -r REV URL@REV DIR
//
// --force because dir already exists (empty); the peg revision @REV makes
// svn look the URL up as it was at REV, so a later move or deletion of the
// path does not break a redeploy of an old revision, and an '@' inside the
// URL is never mistaken for a peg. The password travels on the step's
// stdin.
func (s *svnStrategy) ReleaseStep(c *tasks.Context, l deploy.Layout, rev Revision, dir string) (tasks.Step, error) {
	if err := checkReleaseDir(dir); err != nil {
		return tasks.Step{}, err
	}
	id, err := parseSVNRevision(rev.ID)
	if rev.Placeholder {
		id, err = rev.ID, nil
	}
	if err != nil || id != rev.ID {
		return tasks.Step{}, fmt.Errorf("revision id %q is not an svn revision number", rev.ID)
	}
	src, err := readSVNSource(c)
	if err != nil {
		return tasks.Step{}, err
	}
	args := append([]string{"--force", "--quiet"}, src.auth.args()...)
	args = append(args, "-r", id, "--", src.url+"@"+id, dir)
	opts := src.auth.opts()
	return tasks.Step{Name: "export r" + id, Script: svnExportScript, Args: args, Env: opts.Env, Stdin: opts.Stdin}, nil
}

// RevisionTime is the URL's last-changed date at the revision, asked once
// per run on the control machine (or the primary host when the control
// machine cannot reach the repository): one svn info for the whole fleet.
func (s *svnStrategy) RevisionTime(c *tasks.Context, l deploy.Layout, rev Revision) (time.Time, []string, error) {
	if rev.Placeholder || c.DryRun() {
		// Unknown: a dry run asks no server (the recipe writes the
		// release's time in its stead).
		return time.Time{}, nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.revTime.IsZero() && s.revTimeOf == rev.ID {
		return s.revTime, nil, nil
	}
	src, err := readSVNSource(c)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("svn: %w", err)
	}
	id, err := parseSVNRevision(rev.ID)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("svn: %w", err)
	}
	var out string
	_, err = firstReachable(c, "svn", src.url, true, func(hc *tasks.HostContext) error {
		args := append([]string{"svn", "info", "--show-item", "last-changed-date"}, src.auth.args()...)
		var err error
		opts := src.auth.opts()
		opts.Label = "ask svn for the revision's date"
		out, err = hc.Capture(append(args, "--", src.url+"@"+id), opts)
		return err
	})
	if err != nil {
		return time.Time{}, nil, err
	}
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(out))
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("svn: svn info of %s@%s printed %q, not a date", src.url, id, out)
	}
	s.revTime, s.revTimeOf = t, rev.ID
	return t, nil, nil
}

// Close has nothing to remove.
func (s *svnStrategy) Close() error { return nil }
