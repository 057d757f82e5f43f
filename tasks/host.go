package tasks

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/output"
)

// stderrTailLines is how much of a failed command's stderr its error
// quotes: enough to show the cause, short enough to read for ten hosts.
const stderrTailLines = 10

// CommandOptions shape one command, like SSHKit's within/with/as blocks.
type CommandOptions struct {
	// Within is the working directory.
	Within string
	// Env is exported for the command, over the variable default_env.
	Env map[string]string
	// User runs the command through `sudo -n -u USER`.
	User string
	// Timeout bounds the command; 0 means none.
	Timeout time.Duration
	// Umask, e.g. "002"; "" uses the variable umask if set.
	Umask string
	// PTY requests a pseudo-terminal (SSH only).
	PTY bool
	// Stdin, if set, is fed to the command.
	Stdin io.Reader
	// Label says what the command does in a few words ("take the deploy
	// lock"). The pretty format shows it instead of a long generated
	// script; the other formats and the run log keep the full command.
	Label string
}

// CommandError is a command that failed on a host: it exited non-zero, or
// (with Err set) it could not run or finish, e.g. a timeout or a lost
// connection. Its message quotes the end of its stderr, because that is
// almost always where the reason is.
type CommandError struct {
	Host string
	// Command is the display form: the command and "(in DIR as USER)".
	Command string
	// ExitStatus is -1 when the command did not finish.
	ExitStatus int
	StderrTail []string
	// Err is what kept the command from finishing, or nil.
	Err error
}

func (e *CommandError) Error() string {
	var b strings.Builder
	if e.Err != nil {
		fmt.Fprintf(&b, "command %q: %v", e.Command, e.Err)
	} else {
		fmt.Fprintf(&b, "command %q exited with status %d", e.Command, e.ExitStatus)
	}
	for _, l := range e.StderrTail {
		b.WriteString("\n  | " + l)
	}
	return b.String()
}

func (e *CommandError) Unwrap() error { return e.Err }

// HostContext is the handle for one host inside On or RunLocally: it runs
// commands and moves files there, reporting each as events.
type HostContext struct {
	Host    *deploy.Host
	Context *Context
	ctx     context.Context
	backend deploy.Backend // set for RunLocally; otherwise from the pool
}

// Ctx is the context for this host's work.
func (h *HostContext) Ctx() context.Context { return h.ctx }

// Info prints a message attributed to this host.
func (h *HostContext) Info(msg string) { h.Context.message("info", h.Host.String(), msg) }

// Warn prints a warning attributed to this host.
func (h *HostContext) Warn(msg string) { h.Context.message("warn", h.Host.String(), msg) }

func (h *HostContext) getBackend() (deploy.Backend, error) {
	if h.backend != nil {
		return h.backend, nil
	}
	if h.Context.Executor.Pool == nil {
		return nil, errors.New("the executor has no connection pool")
	}
	return h.Context.Executor.Pool.Get(h.ctx, h.Host)
}

func (h *HostContext) emit(ev output.Event) {
	ev.Task = h.Context.taskName()
	ev.Host = h.Host.String()
	h.Context.Executor.emit(ev)
}

// command builds the deploy.Command for args, filling in the variables
// default_env (a dict of strings, under opts.Env) and umask.
func (h *HostContext) command(args []string, opts CommandOptions) (*deploy.Command, error) {
	c := &deploy.Command{
		Args:    args,
		Dir:     opts.Within,
		User:    opts.User,
		Umask:   opts.Umask,
		Timeout: opts.Timeout,
		PTY:     opts.PTY,
		Stdin:   opts.Stdin,
	}
	vars := h.Context.vars()
	if vars.Has("default_env") {
		v, err := vars.Fetch("default_env")
		if err != nil {
			return nil, err
		}
		env, err := stringMap(v)
		if err != nil {
			return nil, fmt.Errorf("variable default_env: %w", err)
		}
		c.Env = env
	}
	if len(opts.Env) > 0 {
		if c.Env == nil {
			c.Env = map[string]string{}
		}
		maps.Copy(c.Env, opts.Env)
	}
	if c.Umask == "" && vars.Has("umask") {
		u, err := vars.FetchString("umask")
		if err != nil {
			return nil, err
		}
		c.Umask = u
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid command: %w", err)
	}
	return c, nil
}

func stringMap(v any) (map[string]string, error) {
	switch m := v.(type) {
	case nil:
		return nil, nil
	case map[string]string:
		return maps.Clone(m), nil
	case map[string]any:
		out := make(map[string]string, len(m))
		for k, x := range m {
			switch x := x.(type) {
			case string:
				out[k] = x
			case int, int64, float64, bool:
				out[k] = fmt.Sprint(x)
			default:
				return nil, fmt.Errorf("value of %s is %T, want a string", k, x)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a dict of strings, have %T", v)
}

// display is the short form events and errors show: the command as the
// user wrote it plus where and as whom it runs, without the cd/export
// plumbing of the full shell line.
func display(c *deploy.Command) string {
	s := c.Script()
	var where []string
	if c.Dir != "" {
		where = append(where, "in "+c.Dir)
	}
	if c.User != "" {
		where = append(where, "as "+c.User)
	}
	if len(where) > 0 {
		s += " (" + strings.Join(where, " ") + ")"
	}
	return s
}

// runMode adjusts how run reports a command.
type runMode struct {
	// capture, if set, also receives stdout.
	capture io.Writer
	// test marks a command run as a condition: its non-zero exit is an
	// answer, not a failure, in its end event.
	test bool
	// marker is davit's own protocol on stdout (RunSteps' step markers):
	// captured, but cut from the output reported.
	marker string
}

// run executes one command with events: CommandStart, an Output event per
// line of either stream, CommandEnd.
func (h *HostContext) run(args []string, opts CommandOptions, mode runMode) (*deploy.Result, *CommandError) {
	capture, test := mode.capture, mode.test
	c, err := h.command(args, opts)
	if err != nil {
		return nil, &CommandError{Host: h.Host.String(), Command: strings.Join(args, " "), ExitStatus: -1, Err: err}
	}
	id := h.Context.Executor.share().nextID.Add(1)
	disp := display(c)
	h.emit(output.Event{Kind: output.CommandStart, ID: id, Command: disp, Label: opts.Label})
	stderrTail := &tail{n: stderrTailLines}
	outW := output.NewLineWriter(func(l string) {
		if mode.marker != "" {
			// A marker ends its line, but may follow output that had no
			// newline of its own ("printf b"): keep that part.
			if i := strings.Index(l, mode.marker); i >= 0 {
				if l = l[:i]; l == "" {
					return
				}
			}
		}
		h.emit(output.Event{Kind: output.Output, ID: id, Stream: output.Stdout, Line: l})
	})
	errW := output.NewLineWriter(func(l string) {
		stderrTail.add(l)
		h.emit(output.Event{Kind: output.Output, ID: id, Stream: output.Stderr, Line: l})
	})
	var stdout io.Writer = outW
	if capture != nil {
		stdout = io.MultiWriter(capture, outW)
	}
	start := time.Now()
	var res *deploy.Result
	be, err := h.getBackend()
	if err == nil {
		res, err = be.Run(h.ctx, c, stdout, errW)
	}
	outW.Flush()
	errW.Flush()
	status := -1
	end := output.Event{Kind: output.CommandEnd, ID: id, Command: disp, Label: opts.Label, Duration: time.Since(start), Test: test}
	if res != nil {
		status = res.ExitStatus
		end.Duration = res.Duration
	}
	if err != nil {
		status = -1
		end.Error = eventError(err)
	}
	end.ExitStatus = &status
	h.emit(end)
	if err != nil || status != 0 {
		return res, &CommandError{Host: h.Host.String(), Command: disp, ExitStatus: status, StderrTail: stderrTail.get(), Err: err}
	}
	return res, nil
}

// Execute runs a command and fails unless it exits 0. One argument is a
// shell line run as written; several are quoted words.
func (h *HostContext) Execute(args []string, opts CommandOptions) error {
	if _, cerr := h.run(args, opts, runMode{}); cerr != nil {
		return cerr
	}
	return nil
}

// Capture runs a command and returns its stdout without the trailing
// newline; the output is still emitted as events, so logs show it.
func (h *HostContext) Capture(args []string, opts CommandOptions) (string, error) {
	var buf bytes.Buffer
	if _, cerr := h.run(args, opts, runMode{capture: &buf}); cerr != nil {
		return "", cerr
	}
	return strings.TrimRight(buf.String(), "\r\n"), nil
}

// Test runs a command as a condition: exit 0 is true, any other exit status
// false. A command that could not run or finish is an error, not false, so
// a lost connection is never mistaken for a missing file.
func (h *HostContext) Test(args []string, opts CommandOptions) (bool, error) {
	_, cerr := h.run(args, opts, runMode{test: true})
	switch {
	case cerr == nil:
		return true, nil
	case cerr.Err == nil:
		return false, nil
	}
	return false, cerr
}

// transfer wraps an upload or download in CommandStart/CommandEnd events so
// the output and the run log show file transfers too.
func (h *HostContext) transfer(what string, fn func(deploy.Backend) error) error {
	id := h.Context.Executor.share().nextID.Add(1)
	h.emit(output.Event{Kind: output.CommandStart, ID: id, Command: what})
	start := time.Now()
	be, err := h.getBackend()
	if err == nil {
		err = fn(be)
	}
	status := 0
	end := output.Event{Kind: output.CommandEnd, ID: id, Command: what, Duration: time.Since(start)}
	if err != nil {
		status = -1
		end.Error = eventError(err)
	}
	end.ExitStatus = &status
	h.emit(end)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Upload writes r to remote with mode, replacing any file there.
func (h *HostContext) Upload(r io.Reader, remote string, mode fs.FileMode) error {
	return h.transfer(fmt.Sprintf("upload %s (mode %04o)", remote, mode.Perm()), func(b deploy.Backend) error {
		return b.Upload(h.ctx, r, remote, mode)
	})
}

// UploadFile uploads the local file at local to remote. A zero mode keeps
// the local file's permissions.
func (h *HostContext) UploadFile(local, remote string, mode fs.FileMode) error {
	local = h.localPath(local)
	f, err := os.Open(local)
	if err != nil && h.Context.Executor.DryRun {
		// A dry run reads nothing it uploads: a file the real run needs
		// (one the user makes before deploying) is a warning, and the
		// upload is still reported.
		h.Warn(fmt.Sprintf("dry run: cannot upload: %v; a real run would fail here", err))
		return h.Upload(strings.NewReader(""), remote, cmp.Or(mode, fs.FileMode(0o644)))
	}
	if err != nil {
		return fmt.Errorf("upload %s: %w", local, err)
	}
	defer f.Close()
	if mode == 0 {
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("upload %s: %w", local, err)
		}
		mode = st.Mode().Perm()
	}
	return h.transfer(fmt.Sprintf("upload %s to %s (mode %04o)", local, remote, mode.Perm()), func(b deploy.Backend) error {
		return b.Upload(h.ctx, f, remote, mode)
	})
}

// Download copies remote into w.
func (h *HostContext) Download(remote string, w io.Writer) error {
	return h.transfer("download "+remote, func(b deploy.Backend) error {
		return b.Download(h.ctx, remote, w)
	})
}

// DownloadFile copies remote to the local path, creating its directory if
// needed. The file appears complete or not at all: it is written to a
// temporary file and renamed into place.
func (h *HostContext) DownloadFile(remote, local string) error {
	local = h.localPath(local)
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		return fmt.Errorf("download %s: %w", remote, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(local), ".davit-download-*")
	if err != nil {
		return fmt.Errorf("download %s: %w", remote, err)
	}
	defer os.Remove(tmp.Name())
	err = h.transfer(fmt.Sprintf("download %s to %s", remote, local), func(b deploy.Backend) error {
		return b.Download(h.ctx, remote, tmp)
	})
	if err == nil {
		// CreateTemp makes the file 0600; a download should look like
		// any other new file.
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("download %s: %w", remote, cerr)
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), local); err != nil {
		return fmt.Errorf("download %s: %w", remote, err)
	}
	return nil
}

// localPath resolves a relative local path against Executor.LocalDir, so a
// Deployfile works the same from any working directory.
func (h *HostContext) localPath(p string) string {
	if filepath.IsAbs(p) || h.Context.Executor.LocalDir == "" {
		return p
	}
	return filepath.Join(h.Context.Executor.LocalDir, p)
}

// eventError is how a command's end event states why it did not finish:
// "interrupted" for a run cancelled by Ctrl-C, which every host would
// otherwise report as Go's "context canceled".
func eventError(err error) string {
	if errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	return err.Error()
}
