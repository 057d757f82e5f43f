package scm

import (
	"strings"
	"testing"

	"github.com/davit-deploy/davit/tasks"
)

func TestValidateRef(t *testing.T) {
	ok := []struct{ kind, name string }{
		{"branch", "main"},
		{"branch", "feature/login-2"},
		{"branch", "release-1.4+hotfix"},
		{"branch", "user@feature"},
		{"branch", "fix-ü"},
		{"tag", "v1.4.2"},
		{"tag", "v1.5.0-rc.1"},
		{"revision", "abcd"},
		{"revision", "0123456789abcdef0123456789ABCDEF01234567"},
		{"revision", strings.Repeat("a", 64)},
		{"version", "^1.4"},
		{"version", ">=1.2, <2"},
		{"version", "~1.3 || ^2"},
		{"repo_tree", "app"},
		{"repo_tree", "apps/web-ui/.config"},
	}
	for _, tt := range ok {
		if err := ValidateRef(tt.kind, tt.name); err != nil {
			t.Errorf("ValidateRef(%q, %q) = %v, want nil", tt.kind, tt.name, err)
		}
	}
	bad := []struct{ kind, name, want string }{
		{"branch", "main;rm -rf /", `branch "main;rm -rf /": contains ';' (not allowed in a branch name)`},
		{"branch", "$(reboot)", `contains '$'`},
		{"branch", "a`id`", "contains '`'"},
		{"branch", "a|b", `contains '|'`},
		{"branch", "a&b", `contains '&'`},
		{"branch", "a>b", `contains '>'`},
		{"branch", `a"b`, `contains '"'`},
		{"branch", "a'b", `contains '\''`},
		{"branch", `a\b`, `contains '\\'`},
		{"branch", "a b", "contains whitespace (U+0020)"},
		{"branch", "main\n", "contains whitespace (U+000A)"},
		{"branch", "ma\x00in", "contains a non-printable character (U+0000)"},
		{"branch", "main\u202e", "contains a non-printable character (U+202E)"},
		{"branch", "-f", "starts with '-'"},
		{"branch", "--upload-pack=x", "starts with '-'"},
		{"branch", "a..b", `contains ".."`},
		{"branch", "a@{1}", `contains '{'`},
		{"branch", "a@{", `contains '{'`},
		{"branch", "@", `is "@"`},
		{"branch", "main.lock", `ending in ".lock"`},
		{"branch", "a.lock/b", `ending in ".lock"`},
		{"branch", "main/", "ends with '/'"},
		{"branch", "/main", "starts or ends with '/'"},
		{"branch", "a//b", `contains "//"`},
		{"branch", "main.", "ends with '.'"},
		{"branch", ".hidden", "component starting with '.'"},
		{"branch", "a/.b", "component starting with '.'"},
		{"branch", "a~1", `contains '~'`},
		{"branch", "a^", `contains '^'`},
		{"branch", "a:b", `contains ':'`},
		{"branch", "a?", `contains '?'`},
		{"branch", "a*", `contains '*'`},
		{"branch", "a[b", `contains '['`},
		{"branch", "", "branch is empty"},
		{"branch", "\xff", "not valid UTF-8"},
		{"tag", "v1;x", `tag "v1;x": contains ';' (not allowed in a tag name)`},
		{"revision", "abc", "want 4 to 40 hexadecimal digits"},
		{"revision", "xyz12345", "want 4 to 40 hexadecimal digits"},
		{"revision", strings.Repeat("a", 41), "want 4 to 40 hexadecimal digits"},
		{"revision", "abcd;ls", "want 4 to 40 hexadecimal digits"},
		{"version", "latest", "not a semver constraint"},
		{"version", "^1\n", "contains whitespace (U+000A)"},
		{"repo_tree", "/app", "absolute path"},
		{"repo_tree", "../app", `contains ".."`},
		{"repo_tree", "app/../etc", `contains ".."`},
		{"repo_tree", "app/", `not a clean relative path (did you mean "app"?)`},
		{"repo_tree", "./app", `did you mean "app"?`},
		{"repo_tree", ".", "is the repository root"},
		{"repo_tree", "-app", "starts with '-'"},
		{"repo_tree", ":(glob)*", `repo_tree ":(glob)*": contains ':' (not allowed in a repo_tree path)`},
		{"repo_tree", "my app", "contains whitespace"},
		{"nonsense", "x", `unknown kind "nonsense"`},
	}
	for _, tt := range bad {
		err := ValidateRef(tt.kind, tt.name)
		if err == nil {
			t.Errorf("ValidateRef(%q, %q) = nil, want %q", tt.kind, tt.name, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ValidateRef(%q, %q) = %q, want it to contain %q", tt.kind, tt.name, err, tt.want)
		}
	}
}

func TestValidateRepoURL(t *testing.T) {
	for _, u := range []string{"https://git.example.com/a.git", "git@github.com:a/b.git", "file:///srv/repo with space.git", "svn://127.0.0.1:3690/repo/trunk"} {
		if err := validateRepoURL(u); err != nil {
			t.Errorf("validateRepoURL(%q) = %v", u, err)
		}
	}
	for u, want := range map[string]string{
		"":                     "repo_url is empty",
		"-oProxyCommand=x":     "starts with '-'",
		"https://x/\nrm -rf /": "control or non-printable",
		"ext::sh -c x":         "the ext:: transport runs commands",
		"FD::17":               "the FD:: transport runs commands",
		"https://x/\u202egit.": "non-printable",
	} {
		err := validateRepoURL(u)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validateRepoURL(%q) = %v, want %q", u, err, want)
		}
	}
}

func TestNew(t *testing.T) {
	for _, name := range Names() {
		s, err := New(name)
		if err != nil || s.Name() != name {
			t.Errorf("New(%q) = %v, %v", name, s, err)
		}
	}
	a, _ := New("git")
	b, _ := New("git")
	if a == b {
		t.Error("New returned the same strategy twice; run state would leak between runs")
	}
	_, err := New("gti")
	if err == nil || err.Error() != `unknown scm "gti" (did you mean git?); valid: copy, git, svn` {
		t.Errorf("New(gti) = %v", err)
	}
	_, err = New("mercurial")
	if err == nil || err.Error() != `unknown scm "mercurial"; valid: copy, git, svn` {
		t.Errorf("New(mercurial) = %v", err)
	}
}

func TestRevisionString(t *testing.T) {
	sha := "0123456789abcdef0123456789abcdef01234567"
	for _, tt := range []struct {
		rev  Revision
		want string
	}{
		{Revision{ID: sha, Branch: "main"}, "main (0123456789ab)"},
		{Revision{ID: sha, Branch: sha}, sha},
		{Revision{ID: "1234", Branch: "trunk@r1234"}, "trunk@r1234 (1234)"},
		{Revision{ID: "1234"}, "1234"},
		{Revision{ID: "c53e2e96a1b0c3d4", Branch: "app", Source: "directory app"}, "directory app, content c53e2e96a1b0"},
		{placeholderRevision("revision", "branch main", "main"), "<revision of branch main>"},
	} {
		if got := tt.rev.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.rev, got, tt.want)
		}
	}
}

func TestExcluder(t *testing.T) {
	ex, err := NewExcluder([]string{".git", "*.log", "tmp/cache", "/public/assets", "log/"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		rel   string
		dir   bool
		want  bool
		cause string
	}{
		{".git", true, true, "name at the root"},
		{"vendor/x/.git", true, true, "name at any depth"},
		{"a.log", false, true, "glob on a name"},
		{"deep/b.log", false, true, "glob on a deep name"},
		{"tmp/cache", true, true, "anchored path"},
		{"x/tmp/cache", true, false, "anchored path elsewhere"},
		{"public/assets", true, true, "leading slash"},
		{"log", true, true, "directory-only pattern"},
		{"log", false, false, "directory-only pattern on a file"},
		{"app.rb", false, false, "unmatched"},
	} {
		if got := ex.Excluded(tt.rel, tt.dir); got != tt.want {
			t.Errorf("excluded(%q, dir=%v) = %v, want %v (%s)", tt.rel, tt.dir, got, tt.want, tt.cause)
		}
	}
	if _, err := NewExcluder([]string{"[a"}); err == nil || !strings.Contains(err.Error(), `copy_exclude pattern "[a"`) {
		t.Errorf("bad pattern: %v", err)
	}
	if _, err := NewExcluder([]string{"/"}); err == nil {
		t.Error("pattern / accepted")
	}
}

func TestPickVersion(t *testing.T) {
	tags := map[string]string{"v1.4.2": "a", "1.4.2": "b", "v1.4.10": "c", "release-7": "d", "v2.0.0-beta.1": "e", "v1.4": "f"}
	for c, want := range map[string]string{"^1.4": "v1.4.10", "~1.4.2": "v1.4.10", "1.4.2": "1.4.2", "^2.0.0-0": "v2.0.0-beta.1"} {
		got, err := pickVersion(c, tags)
		if err != nil || got != want {
			t.Errorf("pickVersion(%q) = %q, %v; want %q", c, got, err, want)
		}
	}
	if _, err := pickVersion("^2", tags); err == nil || !strings.Contains(err.Error(), "version tags: v2.0.0-beta.1, v1.4.10, 1.4.2, v1.4.2") {
		t.Errorf("pickVersion(^2) error = %v", err)
	}
	if _, err := pickVersion("^1", map[string]string{"release": "x"}); err == nil || !strings.Contains(err.Error(), "no version tags") {
		t.Errorf("no version tags: %v", err)
	}
}

func TestParseLsRemote(t *testing.T) {
	a, b, c := strings.Repeat("a", 40), strings.Repeat("b", 40), strings.Repeat("c", 40)
	out := a + "\tHEAD\n" + a + "\trefs/heads/main\n" + b + "\trefs/tags/v1\n" + c + "\trefs/tags/v1^{}\n" + a + "\trefs/tags/light\nwarning: junk\n"
	r := parseLsRemote(out)
	if r.heads["main"] != a || r.tags["v1"] != c || r.tags["light"] != a || len(r.tags) != 2 || len(r.heads) != 1 {
		t.Errorf("parsed %+v", r)
	}
	// Peeled before unpeeled still peels.
	r = parseLsRemote(c + "\trefs/tags/v1^{}\n" + b + "\trefs/tags/v1\n")
	if r.tags["v1"] != c {
		t.Errorf("peeled tag = %s", r.tags["v1"])
	}
}

// CheckVars finds every strategy's wrong variables by their form, without
// running anything; an unset repo_url is not its business.
func TestCheckVars(t *testing.T) {
	vars := func(kv ...any) *tasks.Vars {
		v := tasks.NewVars()
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i].(string), kv[i+1], tasks.Position{})
		}
		return v
	}
	for _, tt := range []struct {
		name string
		v    *tasks.Vars
		want []string // one substring per problem, in order
	}{
		{"gti", vars(), []string{`scm: unknown scm "gti" (did you mean git?)`}},
		{"git", vars(), nil},
		{"git", vars("repo_url", "ext::sh -c evil", "branch", "a b", "repo_tree", "../up"), []string{"repo_url", `branch "a b": contains whitespace`}},
		{"git", vars("tag", "v1", "revision", "abcd"), []string{"revision and tag are both set"}},
		{"svn", vars("revision", "HEAD", "svn_username", "-x"), []string{`revision "HEAD": want an svn revision number`}},
		{"copy", vars("copy_dir", "-app"), []string{`copy_dir "-app": starts with '-'`}},
		{"copy", vars("copy_exclude", []any{"[x"}), []string{"[x"}},
		{"copy", vars("copy_dir", "app", "branch", "a;b"), nil}, // a directory: no git selector
		{"copy", vars("branch", "a;b"), []string{`branch "a;b": contains ';'`}},
	} {
		errs := CheckVars(tt.name, tt.v)
		if len(errs) != len(tt.want) {
			t.Errorf("CheckVars(%s, %v) = %v, want %d problems", tt.name, tt.v.Names(), errs, len(tt.want))
			continue
		}
		for i, w := range tt.want {
			if !strings.Contains(errs[i].Error(), w) {
				t.Errorf("CheckVars(%s): problem %d = %q, want %q", tt.name, i, errs[i], w)
			}
		}
	}
}
