package scm

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"
)

// Reference kinds ValidateRef knows, named like the variables they come
// from so its errors point at what to fix.
const (
	KindBranch   = "branch"
	KindTag      = "tag"
	KindRevision = "revision"
	KindVersion  = "version"
	KindRepoTree = "repo_tree"
)

// forbiddenRefChars are refused in branch and tag names and repo_tree
// paths. It is git check-ref-format's set (~ ^ : ? * [ \) plus every other
// character a shell, a glob or git's pathspec magic gives a meaning to.
// Values are always passed through deploy.Quote anyway; refusing them as
// well means a name that looks like an attack is reported as one instead of
// being looked up as a branch that happens not to exist.
const forbiddenRefChars = ";&|$`\\\"'<>(){}[]*?~^:!#"

var (
	revisionPattern = regexp.MustCompile(`^[0-9a-fA-F]{4,40}$|^[0-9a-fA-F]{64}$`)
	fullSHAPattern  = regexp.MustCompile(`^[0-9a-f]{40}$|^[0-9a-f]{64}$`)
)

// ValidateRef checks a value that selects what to deploy before any command
// sees it. kind is the variable the value came from:
//
//   - "branch", "tag": git check-ref-format's rules (no "..", no "@{", no
//     component starting with '.' or ending in ".lock", no trailing '.' or
//     '/', no "//", not "@"), plus no leading '-' (git would read an
//     option), no whitespace, control or other non-printable characters,
//     and no shell metacharacters at all;
//   - "revision": 4 to 40 hexadecimal digits of a commit sha (or all 64 of a
//     SHA-256 repository's);
//   - "version": a Masterminds/semver constraint such as "^1.4" (it only
//     ever selects among tags in Go, so its '<', '>' and '|' are fine);
//   - "repo_tree": a clean relative path inside the repository, with the
//     same character rules as a branch.
//
// The error names the variable and the reason, e.g.
// `branch "main;rm -rf /": contains ';' (not allowed in a branch name)`.
func ValidateRef(kind, name string) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s %q: %s", kind, name, fmt.Sprintf(format, args...))
	}
	if name == "" {
		return fmt.Errorf("%s is empty", kind)
	}
	if !utf8.ValidString(name) {
		return fail("is not valid UTF-8")
	}
	switch kind {
	case KindBranch, KindTag, KindRepoTree, KindRevision, KindVersion:
	default:
		return fmt.Errorf("ValidateRef: unknown kind %q (want %s, %s, %s, %s or %s)",
			kind, KindBranch, KindTag, KindRevision, KindVersion, KindRepoTree)
	}
	// One pass in string order, so the error names the first offending
	// character. Invisible ones are named by code point: a name that
	// prints as "main" but holds a newline or a bidi override must never
	// look valid in an error. A version constraint may contain spaces
	// (">=1.2, <2") and shell syntax: it never reaches a command.
	for _, r := range name {
		switch {
		case r == ' ' && kind == KindVersion:
		case unicode.IsSpace(r):
			return fail("contains whitespace (%U)", r)
		case !unicode.IsPrint(r):
			return fail("contains a non-printable character (%U)", r)
		case kind == KindVersion || kind == KindRevision:
		case strings.ContainsRune(forbiddenRefChars, r):
			return fail("contains %q (not allowed in %s)", r, refWhat(kind))
		}
	}
	switch kind {
	case KindRevision:
		if !revisionPattern.MatchString(name) {
			return fail("want 4 to 40 hexadecimal digits of a commit sha")
		}
		return nil
	case KindVersion:
		if _, err := semver.NewConstraint(name); err != nil {
			return fail("not a semver constraint such as \"^1.4\": %v", err)
		}
		return nil
	}
	what := refWhat(kind)
	if strings.HasPrefix(name, "-") {
		return fail("starts with '-' (git would read it as an option)")
	}
	if strings.Contains(name, "..") {
		return fail("contains \"..\" (not allowed in %s)", what)
	}
	if kind == KindRepoTree {
		return validateTree(name, fail)
	}
	switch {
	case name == "@":
		return fail("is \"@\" (not allowed as %s)", what)
	case strings.Contains(name, "@{"):
		return fail("contains \"@{\" (not allowed in %s)", what)
	case strings.HasPrefix(name, "/"), strings.HasSuffix(name, "/"):
		return fail("starts or ends with '/' (not allowed in %s)", what)
	case strings.Contains(name, "//"):
		return fail("contains \"//\" (not allowed in %s)", what)
	case strings.HasSuffix(name, "."):
		return fail("ends with '.' (not allowed in %s)", what)
	}
	for _, comp := range strings.Split(name, "/") {
		if strings.HasPrefix(comp, ".") {
			return fail("has a component starting with '.' (not allowed in %s)", what)
		}
		if strings.HasSuffix(comp, ".lock") {
			return fail("has a component ending in \".lock\" (not allowed in %s)", what)
		}
	}
	return nil
}

// refWhat names what kind of value a branch, tag or repo_tree is, for
// errors.
func refWhat(kind string) string {
	if kind == KindRepoTree {
		return "a repo_tree path"
	}
	return "a " + kind + " name"
}

// validateTree applies the path rules of repo_tree: relative, clean, and
// not the repository root itself.
func validateTree(name string, fail func(string, ...any) error) error {
	clean := path.Clean(name)
	switch {
	case path.IsAbs(name):
		return fail("is an absolute path (want a path relative to the repository root)")
	case clean == ".":
		return fail("is the repository root (leave repo_tree unset to deploy everything)")
	case clean != name:
		return fail("is not a clean relative path (did you mean %q?)", clean)
	}
	return nil
}

// validateRepoURL checks repo_url before it is handed to git or svn as an
// argument. The value is always quoted; what is refused here is what the
// tools themselves would misread: a leading '-' (an option), line breaks
// and control characters (which git also rejects, less clearly), and git's
// command-running transports ext:: and fd::.
func validateRepoURL(u string) error {
	if u == "" {
		return fmt.Errorf("repo_url is empty")
	}
	if strings.HasPrefix(u, "-") {
		return fmt.Errorf("repo_url %q: starts with '-' (it would be read as an option)", u)
	}
	for _, r := range u {
		if unicode.IsControl(r) || (!unicode.IsPrint(r) && r != ' ') {
			return fmt.Errorf("repo_url %q: contains a control or non-printable character (%U)", u, r)
		}
	}
	lower := strings.ToLower(u)
	if strings.HasPrefix(lower, "ext::") || strings.HasPrefix(lower, "fd::") {
		return fmt.Errorf("repo_url %q: the %s transport runs commands and is not allowed", u, u[:strings.Index(u, "::")+2])
	}
	return nil
}

// isFullSHA reports whether id is a complete, lower-case object name, the
// only form a Revision.ID of the git strategies takes.
func isFullSHA(id string) bool { return fullSHAPattern.MatchString(id) }

// treeDepth is how many leading path components tar must strip so that
// repo_tree's contents land at the release root.
func treeDepth(tree string) int {
	if tree == "" {
		return 0
	}
	return strings.Count(tree, "/") + 1
}
