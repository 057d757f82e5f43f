// Package dryrun is the backend of `davit --dry-run`: it prints the exact
// shell line each command would run on each host, and runs nothing.
package dryrun

import (
	"context"
	"fmt"
	"io"
	"io/fs"

	"github.com/davit-deploy/davit/deploy"
)

// Placeholder is what every command "prints" on stdout in a dry run. Tasks
// that capture a command's output (a revision, a list of releases) get a
// recognisable non-empty value and carry on, so a dry run walks the whole
// task graph instead of stopping at the first capture.
const Placeholder = "dry-run"

// Backend reports instead of running. Reports go to a function rather than
// a writer so the CLI can route them through its output sink: the same
// format (json stays json) and the same secret redaction as real runs.
type Backend struct {
	// Report receives each report, e.g. "would run: cd /srv && …". It may
	// span lines (a rendered command does) and is called from the goroutine
	// running the command.
	Report func(msg string)
}

// New returns a dry-run backend that hands its reports to report.
func New(report func(msg string)) *Backend { return &Backend{Report: report} }

// Run validates c, as the real backends do, then reports its rendered line
// (c.String(), with cd, umask, env and sudo), writes Placeholder and a
// newline to stdout, and succeeds. Stdin is not read: a dry run must not
// consume a stream meant for a real command, or block on a terminal.
func (b *Backend) Run(ctx context.Context, c *deploy.Command, stdout, stderr io.Writer) (*deploy.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	what := "would run: "
	if c.Stdin != nil {
		what = "would run (with stdin): "
	}
	b.report(what + c.String())
	if stdout != nil {
		if _, err := io.WriteString(stdout, Placeholder+"\n"); err != nil {
			return nil, err
		}
	}
	return &deploy.Result{ExitStatus: 0}, nil
}

// Upload reports the destination and mode. It does not read r: the content
// may be a large archive, and the dry run has nowhere to put it.
func (b *Backend) Upload(ctx context.Context, r io.Reader, remotePath string, mode fs.FileMode) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.report(fmt.Sprintf("would upload %s (mode %#o)", deploy.Quote(remotePath), mode.Perm()))
	return nil
}

// Download reports the source and writes nothing to w, so a dry run
// leaves local files as they were.
func (b *Backend) Download(ctx context.Context, remotePath string, w io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.report("would download " + deploy.Quote(remotePath))
	return nil
}

// Close has nothing to release.
func (b *Backend) Close() error { return nil }

func (b *Backend) report(msg string) {
	if b.Report != nil {
		b.Report(msg)
	}
}
