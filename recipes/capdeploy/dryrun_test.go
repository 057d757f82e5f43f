package capdeploy

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/backend/dryrun"
)

// A dry run of the whole deploy walks every stage, reports every command
// each host would run, and changes nothing: the dry-run backend answers
// every command with one placeholder line and no step markers, so a
// command of several steps comes back with less output than it has
// steps (which once dereferenced a nil error).
func TestLocalDryRunDeploy(t *testing.T) {
	e := newLocalEnv(t)
	e.deploy("", nil) // a deployed host, so a rollback has something to go back to
	first := e.newestRelease()
	var mu sync.Mutex
	var reports []string
	e.dryRun = true
	e.wrap = func(*deploy.Host, deploy.Backend) deploy.Backend {
		return dryrun.New(func(msg string) {
			mu.Lock()
			reports = append(reports, msg)
			mu.Unlock()
		})
	}
	for _, task := range []string{"deploy", "deploy:check", "deploy:cleanup"} {
		reports = nil
		if _, err := e.run(`set("linked_dirs", ["log"])`, nil, nil, task); err != nil {
			t.Fatalf("dry run of %s: %v", task, err)
		}
		if len(reports) == 0 {
			t.Errorf("dry run of %s reported no command", task)
		}
		if task == "deploy" && !slices.ContainsFunc(reports, func(r string) bool { return strings.Contains(r, "mv -T") }) {
			t.Errorf("dry run of deploy reported no switch among %q", reports)
		}
	}
	e.wantCurrent(first)
	e.wantReleases(first)
	e.wantNoLock()
}
