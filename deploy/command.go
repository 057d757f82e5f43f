package deploy

import (
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Command is one thing to run on a host. Args with a single element is a
// shell line run as written (so users can write pipes and &&); with more
// elements each argument is quoted, so values never need escaping.
type Command struct {
	Args []string
	// Dir is the working directory ("within" in the Deployfile).
	Dir string
	// Env is exported for the command; it travels inside the rendered line
	// because stock sshd accepts only LANG and LC_* through SetEnv.
	Env map[string]string
	// User runs the command as another user through `sudo -n -u`.
	User string
	// Umask, e.g. "022", applies to files the command creates.
	Umask string
	// Timeout bounds the command; zero means no limit beyond the run's context.
	Timeout time.Duration
	// PTY asks the backend for a pseudo-terminal (SSH only).
	PTY bool
	// Stdin, if set, is copied to the command's standard input.
	Stdin io.Reader
}

var (
	safeWord  = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)
	envName   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	userName  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$`)
	umaskForm = regexp.MustCompile(`^[0-7]{3,4}$`)
)

// Quote makes s one word for a POSIX shell. It is the only function in davit
// that builds shell syntax from values: everything else calls it.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if safeWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Validate rejects commands that cannot be rendered safely.
func (c *Command) Validate() error {
	if len(c.Args) == 0 || (len(c.Args) == 1 && strings.TrimSpace(c.Args[0]) == "") {
		return fmt.Errorf("empty command")
	}
	check := func(what, s string) error {
		if strings.ContainsRune(s, 0) {
			return fmt.Errorf("%s contains a NUL byte", what)
		}
		return nil
	}
	for _, a := range c.Args {
		if err := check("argument", a); err != nil {
			return err
		}
	}
	if err := check("directory", c.Dir); err != nil {
		return err
	}
	for k, v := range c.Env {
		if !envName.MatchString(k) {
			return fmt.Errorf("invalid environment variable name %q", k)
		}
		if err := check("environment value of "+k, v); err != nil {
			return err
		}
	}
	if c.User != "" && !userName.MatchString(c.User) {
		return fmt.Errorf("invalid user name %q", c.User)
	}
	if c.Umask != "" && !umaskForm.MatchString(c.Umask) {
		return fmt.Errorf("invalid umask %q (want octal like 022)", c.Umask)
	}
	return nil
}

// Script is the user's command alone, without dir, env or user: a raw shell
// line for one argument, quoted words for several.
func (c *Command) Script() string {
	if len(c.Args) == 1 {
		return c.Args[0]
	}
	words := make([]string, len(c.Args))
	for i, a := range c.Args {
		words[i] = Quote(a)
	}
	return strings.Join(words, " ")
}

// String renders the full shell line a backend hands to `sh -c` (or to sshd):
//
//	cd DIR && umask 022 && export K=V && { CMD
//	}
//
// and, with User set, the same line inside `sudo -n -u USER -- sh -c '…'`, so
// the directory, umask and environment apply as that user. The braces keep an
// `a || b` command from being split by the prefix's &&; the newline before the
// closing brace lets a command end in a comment.
func (c *Command) String() string {
	var prefix []string
	if c.Dir != "" {
		prefix = append(prefix, "cd "+Quote(c.Dir))
	}
	if c.Umask != "" {
		prefix = append(prefix, "umask "+c.Umask)
	}
	if len(c.Env) > 0 {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(c.Env)) {
			kv = append(kv, k+"="+Quote(c.Env[k]))
		}
		prefix = append(prefix, "export "+strings.Join(kv, " "))
	}
	line := c.Script()
	if len(prefix) > 0 {
		line = strings.Join(prefix, " && ") + " && { " + line + "\n}"
	}
	if c.User != "" {
		line = "sudo -n -u " + Quote(c.User) + " -- sh -c " + Quote(line)
	}
	return line
}
