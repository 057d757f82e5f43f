package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"text/tabwriter"

	urfave "github.com/urfave/cli/v2"

	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/recipes"
	"github.com/davit-deploy/davit/tasks/deployfile"
	"github.com/davit-deploy/davit/tasks/remoterecipe"
)

// recipesCommand is `davit recipes list|update`: the git recipes the
// Deployfile loads, as its lock file pins them.
func recipesCommand(s *session, stdout, stderr io.Writer) *urfave.Command {
	return &urfave.Command{
		Name:  "recipes",
		Usage: "list or update the git recipes the Deployfile loads, as Deployfile.lock pins them",
		Subcommands: []*urfave.Command{
			{
				Name:      "list",
				Usage:     "show each git recipe source: its constraint, the locked version, and whether a newer one satisfies the constraint",
				ArgsUsage: " ",
				Action: func(c *urfave.Context) error {
					if c.Args().Len() > 0 {
						return usageError(fmt.Errorf("recipes list takes no arguments (got %s)", c.Args().First()))
					}
					return listRecipes(c, stdout)
				},
			},
			{
				Name:      "update",
				Usage:     "resolve the git recipes again (all, or the SOURCEs named) and rewrite Deployfile.lock",
				ArgsUsage: "[SOURCE...]",
				Action: func(c *urfave.Context) error {
					return updateRecipes(c, s, stdout, stderr)
				},
			},
		},
	}
}

// lockPath is the lock file of the Deployfile the command line names.
func lockPath(c *urfave.Context) (deployfilePath, lock string, err error) {
	path, err := findDeployfile(c.String("file"))
	if err != nil {
		return "", "", err
	}
	return path, remoterecipe.LockPathFor(path), nil
}

func listRecipes(c *urfave.Context, stdout io.Writer) error {
	_, lock, err := lockPath(c)
	if err != nil {
		return err
	}
	sts, err := remoterecipe.Statuses(c.Context, remoterecipe.Config{LockPath: lock})
	if err != nil {
		return usageError(err)
	}
	name := filepath.Base(lock)
	if sts == nil {
		fmt.Fprintf(stdout, "No %s yet: the first run that loads a git recipe writes it (so does `davit recipes update`).\n", name)
		return nil
	}
	if len(sts) == 0 {
		fmt.Fprintf(stdout, "%s pins no git recipes.\n", name)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tCONSTRAINT\tLOCKED\tCOMMIT\tNEWER")
	for _, st := range sts {
		locked := st.Entry.Tag
		if locked == "" {
			locked = "(commit)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", st.Source, st.Entry.Constraint, locked, st.Entry.Commit[:12], newerLabel(st))
	}
	return tw.Flush()
}

// newerLabel says whether a newer version satisfies a source's
// constraint.
func newerLabel(st remoterecipe.Status) string {
	switch {
	case st.Err != nil:
		return "unknown (cannot ask the repository: " + st.Err.Error() + ")"
	case st.Pinned:
		return "pinned (no other version can satisfy it)"
	case st.Newer != "":
		return st.Newer + " (`davit recipes update " + st.Source + "`)"
	}
	return "none: the locked version is the newest that satisfies it"
}

func updateRecipes(c *urfave.Context, s *session, stdout, stderr io.Writer) error {
	path, lock, err := lockPath(c)
	if err != nil {
		return err
	}
	before, err := remoterecipe.ReadLock(lock)
	if err != nil {
		return usageError(err)
	}
	sources := c.Args().Slice()
	for i, src := range sources {
		// Accept a whole load() name too: its source is what is meant.
		if spec, err := remoterecipe.ParseSpec(src); err == nil {
			sources[i] = spec.Source
		}
	}
	r, err := remoterecipe.New(remoterecipe.Config{LockPath: lock, Update: sources, UpdateAll: len(sources) == 0})
	if err != nil {
		return usageError(err)
	}
	warn := output.SinkFunc(func(ev output.Event) {
		if ev.Level == "warn" {
			fmt.Fprintf(stderr, "davit: warning: %s\n", ev.Line)
		}
	})
	p, err := deployfile.Load(c.Context, path, deployfile.Options{
		Version:   s.opts.version(),
		Recipes:   recipes.Starlark(),
		GoRecipes: s.opts.goRecipes(),
		Remote:    r,
		Sink:      warn,
	})
	if err != nil {
		return usageError(err)
	}
	used := p.RemoteSources()
	if len(used) == 0 {
		fmt.Fprintf(stdout, "%s loads no git recipes; nothing to update.\n", filepath.Base(path))
		return nil
	}
	for _, co := range used {
		src := co.Spec.Source
		if len(sources) > 0 && !slices.Contains(sources, src) {
			continue
		}
		now := versionLabel(co.Tag, co.Commit)
		var was *remoterecipe.Entry
		if before != nil {
			was = before.Sources[src]
		}
		head := fmt.Sprintf("%s @%s", src, co.Spec.Ref)
		if was != nil && was.Constraint != co.Spec.Ref {
			head += " (was @" + was.Constraint + ")"
		}
		switch {
		case was == nil:
			fmt.Fprintf(stdout, "%s: %s, new in %s\n", head, now, filepath.Base(lock))
		case was.Commit == co.Commit:
			fmt.Fprintf(stdout, "%s: %s, unchanged\n", head, now)
		default:
			fmt.Fprintf(stdout, "%s: %s -> %s\n", head, versionLabel(was.Tag, was.Commit), now)
		}
	}
	fmt.Fprintf(stdout, "Wrote %s.\n", lock)
	return nil
}

// versionLabel is "v1.2.0 (commit 0123456789ab)", or the commit alone.
func versionLabel(tag, commit string) string {
	if tag == "" {
		return "commit " + commit[:12]
	}
	return fmt.Sprintf("%s (commit %s)", tag, commit[:12])
}
