package capdeploy

import (
	"bufio"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/davit-deploy/davit/deploy"
)

// The on-server state davit keeps beyond Capistrano's layout:
//
//	DEPLOY_TO/.davit/lock/          the deploy lock (mkdir is atomic)
//	DEPLOY_TO/.davit/lock/info      key=value lines: user, control, pid,
//	                                since, token, release
//	DEPLOY_TO/.davit/releases/<id>  key=value lines about one release,
//	                                appended over its life; the last value
//	                                of a key wins
//	DEPLOY_TO/.davit/current.tmp    the link renamed over current
//
// A release's state is pending (being deployed, or a deploy that died
// before davit could remove it: failed), finished (it went live), or bad
// (rolled back from). A release without a mark file was made by
// Capistrano (or by hand) and counts as good.

// Release states in mark files.
const (
	statePending  = "pending"
	stateFinished = "finished"
	stateFailed   = "failed"
	stateBad      = "bad"
)

// timeFormat is how marks and the lock record times: UTC, to the second.
const timeFormat = time.RFC3339

// mark is what .davit/releases/<id> says about a release.
type mark struct {
	values map[string]string
}

func (m *mark) get(k string) string {
	if m == nil {
		return ""
	}
	return m.values[k]
}

// state is the release's state; "" for a release davit never marked.
func (m *mark) state() string { return m.get("state") }

// serverState is what one probe command learned about one host.
type serverState struct {
	// missing: deploy_to does not exist.
	missing bool
	// currentTarget is what current links to, as readlink prints it
	// (absolute from Capistrano and davit; relative forms are read too).
	currentTarget string
	// currentID is the release current points at, or "" when current is
	// missing or points outside releases/.
	currentID string
	// currentNotLink: current exists but is not a symlink.
	currentNotLink bool
	// releases are the release ids present, oldest first; names that are
	// not release ids are never listed, so never touched.
	releases []string
	marks    map[string]*mark
	// lock is the lock's info, nil when no lock is held.
	lock *lockInfo
	// cached: the SCM strategy's cache (the git mirror) exists.
	cached bool
	// revisions maps release id to its REVISION file (full probes only).
	revisions map[string]string
	// logged maps release id to what revisions.log says about its deploy
	// (full probes only), for releases Capistrano made.
	logged map[string]logEntry
}

type logEntry struct{ branch, revision, user string }

// has reports whether release id is present.
func (s *serverState) has(id string) bool {
	_, ok := slices.BinarySearch(s.releases, id)
	return ok
}

// releaseState is a release's state on this host, "" when unmarked
// (Capistrano's). A pending release other than inProgress is failed: the
// lock guarantees no other deploy is making it.
func (s *serverState) releaseState(id, inProgress string) string {
	st := s.marks[id].state()
	if st == statePending && id != inProgress {
		return stateFailed
	}
	return st
}

// good reports whether release id may be rolled back to and counts toward
// keep_releases: finished, or made by Capistrano.
func (s *serverState) good(id, inProgress string) bool {
	switch s.releaseState(id, inProgress) {
	case "", stateFinished:
		return true
	}
	return false
}

// lockInfo is the content of .davit/lock/info.
type lockInfo struct {
	values map[string]string
}

func (l *lockInfo) String() string {
	if l == nil || len(l.values) == 0 {
		return "a deploy lock with no details (its holder died while taking it, or is taking it right now)"
	}
	v := l.values
	who := v["user"]
	if v["control"] != "" {
		who += " on " + v["control"]
	}
	s := "deploy locked by " + who
	if t, err := time.Parse(timeFormat, v["since"]); err == nil {
		s += fmt.Sprintf(" since %s (%s ago)", t.UTC().Format("2006-01-02 15:04:05 UTC"), ago(time.Since(t)))
	} else if v["since"] != "" {
		s += " since " + v["since"]
	}
	if v["pid"] != "" {
		s += ", pid " + v["pid"]
	}
	switch {
	case v["release"] != "":
		s += ", deploying release " + v["release"]
	case v["operation"] != "":
		s += ", for a " + v["operation"]
	}
	return s
}

// ago is an age as people say it: seconds, minutes, hours or days.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return d.Round(time.Second).String()
	case d < 2*time.Hour:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

// Section markers of probe output. They start with "@@ " so no file
// content a probe prints can be mistaken for one: mark and lock lines are
// key=value, release names are digits.
const (
	secMissing  = "@@ missing"
	secCurrent  = "@@ current"
	secNotLink  = "@@ current-not-link"
	secReleases = "@@ releases"
	secMarks    = "@@ marks"
	secLock     = "@@ lock"
	secRevision = "@@ revision"
	secLog      = "@@ log"
	secCached   = "@@ cached"
)

var (
	// Capistrano's line, and davit's for a source that is no branch
	// ("Directory app (content c53e…) deployed as …").
	logLine = regexp.MustCompile(`^(?:Branch|Directory) (.*) \((?:at|content) (\S*)\) deployed as release ([0-9]{14}) by (.*)$`)
)

// parseProbe reads probe.sh's output (possibly after other lines,
// which it skips until the first section).
func parseProbe(out string, l deploy.Layout) *serverState {
	s := &serverState{marks: map[string]*mark{}}
	sec := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "@@ ") {
			sec = line
			switch sec {
			case secMissing:
				s.missing = true
			case secNotLink:
				s.currentNotLink = true
			case secCached:
				s.cached = true
			}
			continue
		}
		switch sec {
		case secCurrent:
			if line != "" {
				s.currentTarget = line
				s.currentID = releaseOf(line, l)
			}
		case secReleases:
			if deploy.IsReleaseID(line) {
				s.releases = append(s.releases, line)
			}
		case secMarks:
			// "<id>:key=value"
			name, kv, ok := strings.Cut(line, ":")
			if !ok || !deploy.IsReleaseID(name) {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			m := s.marks[name]
			if m == nil {
				m = &mark{values: map[string]string{}}
				s.marks[name] = m
			}
			m.values[k] = v
		case secLock:
			if k, v, ok := strings.Cut(line, "="); ok {
				if s.lock == nil {
					s.lock = &lockInfo{values: map[string]string{}}
				}
				if k != "held" {
					s.lock.values[k] = v
				}
			}
		case secRevision:
			// "<id>:<sha>"
			name, rev, ok := strings.Cut(line, ":")
			if ok && deploy.IsReleaseID(name) {
				if s.revisions == nil {
					s.revisions = map[string]string{}
				}
				s.revisions[name] = strings.TrimSpace(rev)
			}
		case secLog:
			if m := logLine.FindStringSubmatch(line); m != nil {
				if s.logged == nil {
					s.logged = map[string]logEntry{}
				}
				s.logged[m[3]] = logEntry{branch: m[1], revision: m[2], user: m[4]}
			}
		}
	}
	slices.Sort(s.releases)
	return s
}

// releaseOf returns the release id a current link target names, whether
// absolute (Capistrano's and davit's form) or relative to deploy_to
// (releases/<id>, ./releases/<id>), or "" for a target outside releases/.
func releaseOf(target string, l deploy.Layout) string {
	t := target
	if !path.IsAbs(t) {
		t = path.Join(l.DeployTo, t)
	}
	t = path.Clean(t)
	if path.Dir(t) != l.Releases() {
		return ""
	}
	if id := path.Base(t); deploy.IsReleaseID(id) {
		return id
	}
	return ""
}
