package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	urfave "github.com/urfave/cli/v2"

	"github.com/davit-deploy/davit/recipes/boot"
	"github.com/davit-deploy/davit/tasks/run"
)

// selfDeployCommand is `davit self-deploy`: an EC2 instance configuring
// and deploying itself at boot (recipes/boot).
func selfDeployCommand(s *session, stdout io.Writer) *urfave.Command {
	return &urfave.Command{
		Name:      "self-deploy",
		Usage:     "at boot on an EC2 instance: read its user data, write /etc/hosts, deploy on this machine as the app user, start its role",
		ArgsUsage: "[STAGE] [KEY=VALUE...]",
		Flags: []urfave.Flag{
			&urfave.StringFlag{Name: "stage", Usage: "the stage to deploy (default: the user data's STAGE)"},
			&urfave.StringFlag{Name: "user-data", Usage: "read the user data from this file instead of the metadata service", TakesFile: true},
			&urfave.StringFlag{Name: "instance-type", Usage: "the instance type, instead of the metadata service's"},
			&urfave.StringFlag{Name: "hosts-file", Value: boot.DefaultHostsFile, Usage: "the hosts file etc_hosts goes to", TakesFile: true},
			&urfave.DurationFlag{Name: "metadata-timeout", Value: boot.DefaultMetadataTimeout, Usage: "give up on the metadata service after this long"},
			&urfave.BoolFlag{Name: "install", DisableDefaultText: true, Usage: "write a systemd unit that runs this command at boot, and say how to enable it"},
			&urfave.StringFlag{Name: "install-dir", Value: boot.DefaultUnitDir, Usage: "with --install, the directory for the unit"},
		},
		Action: func(c *urfave.Context) error { return selfDeploy(c, s, stdout) },
	}
}

func selfDeploy(c *urfave.Context, s *session, stdout io.Writer) error {
	words, overrides, err := splitArgs(c.Args().Slice(), c.StringSlice("set"))
	if err != nil {
		return err
	}
	if err := checkFlags(c); err != nil {
		return err
	}
	stage := c.String("stage")
	switch {
	case len(words) > 1:
		return usageError(fmt.Errorf("self-deploy takes one stage, not %q; variables are KEY=VALUE", words))
	case len(words) == 1 && stage != "" && stage != words[0]:
		return usageError(fmt.Errorf("two stages: --stage %s and %s", stage, words[0]))
	case len(words) == 1:
		stage = words[0]
	}
	path, err := findDeployfile(c.String("file"))
	if err != nil {
		return err
	}
	if c.Bool("install") {
		return installSelfDeploy(c, stdout, path, stage)
	}
	cfg := runConfig(c, s, path, overrides)
	if cfg.Terminal, err = terminalFormat(c, stdout); err != nil {
		return err
	}
	if closer, ok := cfg.Terminal.(io.Closer); ok {
		defer closer.Close()
	}
	opts := boot.Options{Run: cfg, Stage: stage, InstanceType: c.String("instance-type"), HostsFile: c.String("hosts-file"),
		Metadata: boot.MetadataOptions{Timeout: c.Duration("metadata-timeout")},
		Started:  func(r *run.Run) { s.started(stage, r) }}
	if f := c.String("user-data"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return usageError(fmt.Errorf("--user-data: %w", err))
		}
		if b == nil {
			b = []byte{}
		}
		opts.UserData = b
	}
	r, err := boot.SelfDeploy(c.Context, opts)
	if err == nil {
		return nil
	}
	var bu *boot.UsageError
	var ru *run.UsageError
	if errors.As(err, &bu) || errors.As(err, &ru) {
		if r != nil {
			err = redacted(r, err)
		}
		return usageError(err)
	}
	if r == nil {
		return taskError(err)
	}
	return taskFailure(c.Context, r, err)
}

// installSelfDeploy writes the systemd unit that runs this same command
// (Deployfile, stage, variables and hosts file) at boot.
func installSelfDeploy(c *urfave.Context, stdout io.Writer, deployfile, stage string) error {
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("install: where is davit? %w", err)
	}
	if deployfile, err = filepath.Abs(deployfile); err != nil {
		return err
	}
	args := []string{"-f", deployfile, "--format", "plain"}
	if log := c.String("log"); log != "" {
		abs, err := filepath.Abs(log)
		if err != nil {
			return err
		}
		args = append(args, "--log", abs)
	}
	args = append(args, "self-deploy")
	if c.IsSet("hosts-file") {
		abs, err := filepath.Abs(c.String("hosts-file"))
		if err != nil {
			return err
		}
		args = append(args, "--hosts-file", abs)
	}
	if stage != "" {
		args = append(args, stage)
	}
	for _, a := range c.Args().Slice() {
		if assignment.MatchString(a) {
			args = append(args, a)
		}
	}
	path, err := boot.Unit{Davit: bin, Args: args}.Install(c.String("install-dir"))
	if err != nil {
		return taskError(err)
	}
	fmt.Fprintf(stdout, "wrote %s\nenable it: %s\n", path, boot.EnableHint())
	return nil
}
