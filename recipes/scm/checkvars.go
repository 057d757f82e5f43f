package scm

import (
	"context"
	"fmt"

	"github.com/davit-deploy/davit/tasks"
)

// CheckVars returns every problem with the variables strategy name reads
// (their types and forms: a branch name git would refuse, two of
// revision, tag and version set, a copy_exclude pattern that cannot
// match), found without running anything, so a run can refuse them
// before its first command. Each error's text starts with the variable's
// name (`branch "a;b": contains ';' …`, `variable copy_dir: …`). An
// unknown name is the one problem, with the closest valid name suggested.
//
// A variable that must be set but is not (repo_url) is not reported:
// deploy:check and the deploy say so, and tasks that deploy nothing (a
// deploy:setup before the repository exists) do not need it.
func CheckVars(name string, v *tasks.Vars) []error {
	if _, err := New(name); err != nil {
		return []error{fmt.Errorf("scm: %w", err)}
	}

	// The strategies read their variables through a task's context; one
	// over v alone reads the same values the run will.
	c := tasks.NewContext(context.Background(), &tasks.Executor{Vars: v}, &tasks.Task{Name: "check variables"})
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	repoURL := func() {
		url, err := optString(c, "repo_url")
		if err == nil && url != "" {
			err = validateRepoURL(url)
		}
		add(err)
	}
	switch name {
	case "git":
		repoURL()
		_, err := readGitSelection(c)
		add(err)
	case "svn":
		repoURL()
		_, err := readSVNOptions(c)
		add(err)
	case "copy":
		src, err := readCopyOptions(c)
		add(err)
		if err == nil && src.dir == "" {
			// No directory: the copy strategy archives a git revision.
			repoURL()
			_, err := readGitSelection(c)
			add(err)
		}
	}
	return errs
}
