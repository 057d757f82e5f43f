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

	"davit/deploy"
	"davit/tasks"
)

// svnStrategy is the "svn" strategy; its only state is the revision
// resolved for this run.
type svnStrategy struct {
	mu       sync.Mutex
	resolved *Revision
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
func svnBranch(url, rev string) string {
	u := strings.TrimRight(url, "/")
	if i := strings.LastIndex(u, "/"); i >= 0 {
		u = u[i+1:]
	}
	return u + "@r" + rev
}

// Check reports a missing svn, invalid variables and a URL the host cannot
// read with the configured credentials.
func (s *svnStrategy) Check(hc *tasks.HostContext, l deploy.Layout) ([]string, error) {
	var problems []string
	src, srcErr := readSVNSource(hc.Context)
	if srcErr != nil {
		problems = append(problems, srcErr.Error())
	}
	ok, err := hc.Test([]string{"svn", "--version", "--quiet"}, tasks.CommandOptions{})
	if err != nil {
		return nil, fmt.Errorf("svn check on %s: %w", hc.Host, err)
	}
	if !ok {
		return append(problems, "svn is not installed (svn --version failed)"), nil
	}
	if srcErr != nil {
		return problems, nil
	}
	args := append(append([]string{"svn", "info"}, src.auth.args()...), "--", src.url)
	if _, err := hc.Capture(args, src.auth.opts()); err != nil {
		var ce *tasks.CommandError
		if errors.As(err, &ce) && ce.Err == nil {
			return append(problems, fmt.Sprintf("cannot read repo_url %s: %s", src.url, reason(err))), nil
		}
		return nil, fmt.Errorf("svn check on %s: %w", hc.Host, err)
	}
	return problems, nil
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
	if rev == "" {
		var out string
		where, err := firstReachable(c, "svn", src.url, true, func(hc *tasks.HostContext) error {
			args := append([]string{"svn", "info", "--show-item", "last-changed-revision"}, src.auth.args()...)
			var err error
			out, err = hc.Capture(append(args, "--", src.url), src.auth.opts())
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

// Release runs
//
//	svn export --force --quiet --non-interactive --no-auth-cache
//	    [--username U] [--password-from-stdin] -r REV URL@REV DIR
//
// --force because dir already exists (empty); the peg revision @REV makes
// svn look the URL up as it was at REV, so a later move or deletion of the
// path does not break a redeploy of an old revision, and an '@' inside the
// URL is never mistaken for a peg.
func (s *svnStrategy) Release(hc *tasks.HostContext, l deploy.Layout, rev Revision, dir string) error {
	fail := func(err error) error { return fmt.Errorf("svn release on %s: %w", hc.Host, err) }
	if err := checkReleaseDir(dir); err != nil {
		return fail(err)
	}
	id, err := parseSVNRevision(rev.ID)
	if err != nil || id != rev.ID {
		return fail(fmt.Errorf("revision id %q is not an svn revision number", rev.ID))
	}
	src, err := readSVNSource(hc.Context)
	if err != nil {
		return fail(err)
	}
	args := append([]string{"svn", "export", "--force", "--quiet"}, src.auth.args()...)
	args = append(args, "-r", id, "--", src.url+"@"+id, dir)
	if err := hc.Execute(args, src.auth.opts()); err != nil {
		return fail(err)
	}
	return nil
}

// Close has nothing to remove.
func (s *svnStrategy) Close() error { return nil }
