package deploy

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

func TestCommandString(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Command
		want string
	}{
		{"raw line", Command{Args: []string{"ls -l | wc -l"}}, "ls -l | wc -l"},
		{"words quoted", Command{Args: []string{"echo", "a b", "it's", "$HOME", "plain"}},
			`echo 'a b' 'it'\''s' '$HOME' plain`},
		{"empty word kept", Command{Args: []string{"printf", "%s", ""}}, "printf %s ''"},
		{"dir", Command{Args: []string{"ls"}, Dir: "/srv/my app"}, "cd '/srv/my app' && { ls\n}"},
		{"umask", Command{Args: []string{"touch", "f"}, Umask: "022"}, "umask 022 && { touch f\n}"},
		{"env sorted by key and quoted", Command{Args: []string{"env"}, Env: map[string]string{
			"ZED": "last", "A_1": "it's here", "MID": "", "PATHY": "/a b:/c",
		}}, `export A_1='it'\''s here' MID='' PATHY='/a b:/c' ZED=last && { env` + "\n}"},
		{"prefix order", Command{Args: []string{"a || b"}, Dir: "/x", Umask: "0027", Env: map[string]string{"K": "v"}},
			"cd /x && umask 0027 && export K=v && { a || b\n}"},
		{"user alone", Command{Args: []string{"whoami"}, User: "deploy"}, "sudo -n -u deploy -- sh -c whoami"},
		{"user wraps the prefix", Command{Args: []string{"echo", "it's"}, Dir: "/x", User: "app"},
			`sudo -n -u app -- sh -c 'cd /x && { echo '\''it'\''\'\'''\''s'\''` + "\n}'"},
		{"comment at the end", Command{Args: []string{"make # build"}, Dir: "/x"}, "cd /x && { make # build\n}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got := tc.c.String(); got != tc.want {
				t.Errorf("String() =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestCommandScript(t *testing.T) {
	c := Command{Args: []string{"a && b"}, Dir: "/x", Env: map[string]string{"K": "v"}}
	if got := c.Script(); got != "a && b" {
		t.Errorf("raw Script() = %q", got)
	}
	c.Args = []string{"a", "&&", "b"}
	if got := c.Script(); got != "a '&&' b" {
		t.Errorf("words Script() = %q", got)
	}
}

// shell runs a rendered command line the way the local backend does.
func shell(t *testing.T, c *Command) (string, int) {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", c.String())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), 0
}

// TestCommandStringInShell checks the rendered lines mean what they say
// when a real shell reads them.
func TestCommandStringInShell(t *testing.T) {
	dir := t.TempDir()
	t.Run("env values arrive intact", func(t *testing.T) {
		v := "it's \"$HOME\" `id` $(id) \\ \n; && *"
		out, code := shell(t, &Command{Args: []string{`printf '%s|%s' "$V" "$W"`}, Env: map[string]string{"V": v, "W": ""}})
		if code != 0 || out != v+"|" {
			t.Errorf("got %q (exit %d)", out, code)
		}
	})
	t.Run("words arrive intact", func(t *testing.T) {
		args := []string{"printf", "%s|", "a b", "it's", "$(id)", "*", "-n", ""}
		out, code := shell(t, &Command{Args: args, Dir: dir})
		if code != 0 || out != strings.Join(args[2:], "|")+"|" {
			t.Errorf("got %q (exit %d)", out, code)
		}
	})
	t.Run("a failing cd stops an || command", func(t *testing.T) {
		// Without the braces this would read `cd /missing && true || echo RAN`.
		out, code := shell(t, &Command{Args: []string{"true || echo RAN"}, Dir: dir + "/missing"})
		if strings.Contains(out, "RAN") || code == 0 {
			t.Errorf("command ran after cd failed: %q (exit %d)", out, code)
		}
	})
	t.Run("|| inside the braces still works", func(t *testing.T) {
		out, code := shell(t, &Command{Args: []string{"false || echo fallback"}, Dir: dir})
		if code != 0 || out != "fallback\n" {
			t.Errorf("got %q (exit %d)", out, code)
		}
	})
	t.Run("trailing comment", func(t *testing.T) {
		out, code := shell(t, &Command{Args: []string{"pwd # where am I"}, Dir: dir, Env: map[string]string{"X": "1"}})
		if code != 0 || out != dir+"\n" {
			t.Errorf("got %q (exit %d)", out, code)
		}
	})
	t.Run("exit status passes through", func(t *testing.T) {
		if _, code := shell(t, &Command{Args: []string{"exit 7"}, Dir: dir}); code != 7 {
			t.Errorf("exit %d, want 7", code)
		}
	})
	t.Run("as another user", func(t *testing.T) {
		if exec.Command("sudo", "-n", "-u", "nobody", "true").Run() != nil {
			t.Skip("sudo -n -u nobody is not allowed here")
		}
		// Dir, umask and env apply as the user, through two levels of quoting.
		c := &Command{Args: []string{`printf '%s|' "$(id -un)" "$(pwd)" "$(umask)" "$V" 'it'\''s'`},
			Dir: "/", Umask: "077", Env: map[string]string{"V": "a 'b'"}, User: "nobody"}
		out, code := shell(t, c)
		if code != 0 || out != "nobody|/|0077|a 'b'|it's|" {
			t.Errorf("got %q (exit %d)", out, code)
		}
	})
	t.Run("umask applies", func(t *testing.T) {
		out, code := shell(t, &Command{Args: []string{"umask"}, Umask: "027"})
		if code != 0 || out != "0027\n" {
			t.Errorf("got %q (exit %d)", out, code)
		}
	})
}

func TestCommandValidate(t *testing.T) {
	ok := []Command{
		{Args: []string{"ls"}},
		{Args: []string{"echo", ""}},
		{Args: []string{"x"}, Env: map[string]string{"_A1": "v\nw"}, User: "svc$", Umask: "0022"},
		{Args: []string{"x"}, User: "www-data"},
	}
	for _, c := range ok {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	for _, tc := range []struct {
		c    Command
		want string
	}{
		{Command{}, "empty command"},
		{Command{Args: []string{""}}, "empty command"},
		{Command{Args: []string{" \t\n"}}, "empty command"},
		{Command{Args: []string{"a\x00b"}}, "argument contains a NUL byte"},
		{Command{Args: []string{"echo", "\x00"}}, "argument contains a NUL byte"},
		{Command{Args: []string{"ls"}, Dir: "/x\x00"}, "directory contains a NUL byte"},
		{Command{Args: []string{"ls"}, Env: map[string]string{"1A": "v"}}, `invalid environment variable name "1A"`},
		{Command{Args: []string{"ls"}, Env: map[string]string{"A-B": "v"}}, `invalid environment variable name "A-B"`},
		{Command{Args: []string{"ls"}, Env: map[string]string{"": "v"}}, `invalid environment variable name ""`},
		{Command{Args: []string{"ls"}, Env: map[string]string{"A=B": "v"}}, `invalid environment variable name "A=B"`},
		{Command{Args: []string{"ls"}, Env: map[string]string{"K": "\x00"}}, "environment value of K contains a NUL byte"},
		{Command{Args: []string{"ls"}, User: "-root"}, `invalid user name "-root"`},
		{Command{Args: []string{"ls"}, User: "a b"}, `invalid user name "a b"`},
		{Command{Args: []string{"ls"}, User: "root;id"}, `invalid user name "root;id"`},
		{Command{Args: []string{"ls"}, Umask: "22"}, `invalid umask "22" (want octal like 022)`},
		{Command{Args: []string{"ls"}, Umask: "0999"}, `invalid umask "0999" (want octal like 022)`},
		{Command{Args: []string{"ls"}, Umask: "022; id"}, `invalid umask "022; id" (want octal like 022)`},
	} {
		err := tc.c.Validate()
		if err == nil || err.Error() != tc.want {
			t.Errorf("%+v: Validate() = %v, want %q", tc.c, err, tc.want)
		}
	}
}
