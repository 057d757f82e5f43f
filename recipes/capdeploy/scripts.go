package capdeploy

import (
	_ "embed"
	"errors"
	"strings"

	"github.com/davit-deploy/davit/tasks"
)

// The recipe's remote shell scripts, one file each in scripts/: constant
// text that takes its values as positional parameters, so deploy.Quote
// (through tasks.Step's Args) is the only code that quotes, and nothing
// builds shell from values. Each file says what its parameters are.
// testdata/*.golden holds exactly what hosts receive in a setup, a first
// deploy, a repeat deploy and a rollback.
var (
	//go:embed scripts/layout.sh
	layoutScript string
	//go:embed scripts/linked_files.sh
	linkedFilesScript string
	//go:embed scripts/probe.sh
	probeScript string
	//go:embed scripts/lock.sh
	lockScript string
	//go:embed scripts/unlock.sh
	unlockScript string
	//go:embed scripts/remove_lock.sh
	removeLockScript string
	//go:embed scripts/create_release.sh
	createReleaseScript string
	//go:embed scripts/revision.sh
	revisionScript string
	//go:embed scripts/link_shared.sh
	linkSharedScript string
	//go:embed scripts/switch.sh
	switchScript string
	//go:embed scripts/cleanup.sh
	cleanupScript string
	//go:embed scripts/log_revision.sh
	logRevisionScript string
	//go:embed scripts/mark_bad.sh
	markBadScript string
	//go:embed scripts/remove_release.sh
	removeReleaseScript string
)

// exitReleaseExists is create_release.sh's status when the directory is
// already there, so davit never removes a release it did not make.
const exitReleaseExists = 17

// runStep runs one step on hc's host, as one command, and returns its
// stdout; its failure is the *tasks.CommandError (callers name the step).
func runStep(hc *tasks.HostContext, step tasks.Step) (string, error) {
	return runStepIn(hc, nil, step)
}

// runStepIn is runStep in the flow's shell on the host (sh, or a command
// of its own when sh is nil).
func runStepIn(hc *tasks.HostContext, sh *tasks.Shell, step tasks.Step) (string, error) {
	outs, err := hc.RunStepsIn(sh, []tasks.Step{step}, tasks.CommandOptions{})
	var se *tasks.StepError
	if errors.As(err, &se) {
		return "", se.Err
	}
	if err != nil {
		return "", err
	}
	return outs[0], nil
}

// kvLines renders key=value lines (marks, the lock's info), dropping
// newlines from values so one value can never forge another key.
func kvLines(kv ...string) []string {
	var lines []string
	for i := 0; i+1 < len(kv); i += 2 {
		lines = append(lines, kv[i]+"="+oneLine(kv[i+1]))
	}
	return lines
}

// oneLine flattens newlines, for a value that must stay one line of a
// file.
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}
