package deploy

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// quoteSeeds are inputs that break naive quoting.
var quoteSeeds = []string{
	"", "plain", "a b", "  lead and trail  ", "it's", "'", "''", `"double"`, `back\slash`, `\`,
	"$HOME", "${HOME}", "$(id)", "`id`", "$((1+1))", "a;b", "a && b", "a || b", "a|b", "a&",
	"a\nb", "\n", "a\tb", "\r\n", "*", "?", "[a-z]", "{a,b}", "~", "~root", "a~b", "-rf", "--", "-",
	"#comment", "a#b", "!", "!!", "<in", ">out", "2>&1", "(x)", "=", "a=b", "%", "@", "ünïcødé ☃",
	"\xff\xfe invalid utf8", "\x1b[31mred", "x'; rm -rf / #", "'\\''", "\\'",
}

// safeUnquoted are the bytes a POSIX shell reads literally outside quotes
// anywhere in an argument: no expansion, globbing, splitting or operator.
func safeUnquoted(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("_@%+=:,./-", c) >= 0
}

// parseWord reads q as exactly one shell word built from safe bytes,
// single-quoted runs (in which nothing is special) and backslash escapes,
// and returns the value the shell would pass on. ok is false for anything
// else: a space, an operator, an expansion, an unterminated quote.
func parseWord(q string) (value string, ok bool) {
	if q == "" {
		return "", false // an empty string is no word at all
	}
	var b strings.Builder
	for i := 0; i < len(q); {
		switch c := q[i]; {
		case c == '\'':
			end := strings.IndexByte(q[i+1:], '\'')
			if end < 0 {
				return "", false
			}
			b.WriteString(q[i+1 : i+1+end])
			i += end + 2
		case c == '\\':
			if i+1 == len(q) || q[i+1] == '\n' { // a line continuation, not a character
				return "", false
			}
			b.WriteByte(q[i+1])
			i += 2
		case safeUnquoted(c):
			b.WriteByte(c)
			i++
		default:
			return "", false
		}
	}
	return b.String(), true
}

func TestParseWord(t *testing.T) {
	// The checker itself must reject what a shell would split or expand.
	for _, bad := range []string{"", "a b", "$x", "`x`", "'open", "a;b", "~", "*", "a\\", "\"x\"", "a\nb"} {
		if v, ok := parseWord(bad); ok {
			t.Errorf("parseWord(%q) accepted as %q", bad, v)
		}
	}
	for q, want := range map[string]string{"''": "", "a": "a", `'a b'`: "a b", `'it'\''s'`: "it's", `a\ b`: "a b"} {
		if v, ok := parseWord(q); !ok || v != want {
			t.Errorf("parseWord(%q) = %q, %v; want %q", q, v, ok, want)
		}
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":          "''",
		"abc":       "abc",
		"/srv/app":  "/srv/app",
		"a=b,c:d@%": "a=b,c:d@%",
		"-rf":       "-rf",
		"a b":       "'a b'",
		"it's":      `'it'\''s'`,
		"~":         "'~'",
		"$HOME":     "'$HOME'",
		"a\nb":      "'a\nb'",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %q, want %q", in, got, want)
		}
	}
	for _, s := range quoteSeeds {
		checkQuoteWord(t, s)
	}
}

func checkQuoteWord(t *testing.T, s string) {
	t.Helper()
	q := Quote(s)
	if v, ok := parseWord(q); !ok || v != s {
		t.Fatalf("Quote(%q) = %q, which reads as one word %v with value %q", s, q, ok, v)
	}
}

// FuzzQuote proves nothing escapes the quotes: for any input a real
// /bin/sh hands printf exactly the original bytes, as one argument.
func FuzzQuote(f *testing.F) {
	for _, s := range quoteSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) {
			t.Skip("argv cannot hold NUL; Command.Validate rejects it")
		}
		checkQuoteWord(t, s)
		// A second word after the quoted one would show as an extra "|".
		cmd := exec.Command("/bin/sh", "-c", "printf '%s|' "+Quote(s))
		cmd.Env = []string{"LC_ALL=C", "PATH=/usr/bin:/bin", "HOME=/nonexistent"}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("sh -c printf %s: %v: %s", Quote(s), err, stderr.String())
		}
		if string(out) != s+"|" {
			t.Fatalf("Quote(%q) = %q: shell printed %q", s, Quote(s), out)
		}
	})
}
