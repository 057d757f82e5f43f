// Package remoterecipe fetches shared Starlark recipes from git
// repositories, pinned: it resolves a load("git+URL//PATH@REF") to a
// commit (git ls-remote and davit's one semver rule, semvertag), keeps
// that commit's files in a cache two davit processes may fill at once,
// and records the resolution and the SHA-256 of every file loaded in a
// lock file beside the Deployfile, which later runs follow without the
// network.
//
// It runs the real git binary, so credentials for private repositories
// come from git's own configuration (ssh keys and agent, credential
// helpers); nothing in a Deployfile can carry them.
package remoterecipe

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// Spec is one load() name of a git recipe:
// git+SCHEME://HOST/REPO//PATH@REF.
type Spec struct {
	// Source is the repository as written, with its git+ prefix
	// ("git+https://git.example.com/acme/recipes.git"): the lock's key.
	Source string
	// URL is what git is given ("https://git.example.com/acme/recipes.git").
	URL string
	// Path is the file inside the repository ("rails/rails.star").
	Path string
	// Ref is what to load: a semver constraint ("^1.2"), a tag
	// ("v1.2.0", "release-7") or a full commit.
	Ref string
}

// String is the load() name the spec was parsed from, normalised.
func (s Spec) String() string { return s.Source + "//" + s.Path + "@" + s.Ref }

// schemes are the transports a git recipe may use: plain http and git://
// are left out, as they let anyone on the path change the recipe before
// the lock exists.
var schemes = []string{"https", "ssh", "file"}

// IsRemote reports whether a load() name means a git recipe.
func IsRemote(name string) bool { return strings.HasPrefix(name, "git+") }

// ParseSpec reads a load() name of a git recipe.
func ParseSpec(name string) (Spec, error) {
	bad := func(format string, args ...any) (Spec, error) {
		return Spec{}, fmt.Errorf("%q: %s; want git+https://HOST/REPO.git//PATH/FILE.star@^1.2 (or git+ssh://, git+file://; after @ a constraint, a tag or a full commit)", name, fmt.Sprintf(format, args...))
	}
	rest, ok := strings.CutPrefix(name, "git+")
	if !ok {
		return bad("not a git source")
	}
	scheme, after, ok := strings.Cut(rest, "://")
	if !ok {
		return bad("no scheme")
	}
	known := false
	for _, s := range schemes {
		known = known || s == scheme
	}
	if !known {
		return bad("unsupported scheme %q (https, ssh and file are)", scheme)
	}
	repo, file, ok := strings.Cut(after, "//")
	if !ok || strings.Trim(repo, "/") == "" {
		return bad("no // between the repository and the file in it")
	}
	file, ref, ok := cutLast(file, "@")
	if !ok || ref == "" {
		return bad("no version after @")
	}
	if file == "" {
		return bad("no file after //")
	}
	if p := path.Clean(file); p != file || !fs.ValidPath(p) {
		return bad("the file %q is not a clean path inside the repository", file)
	}
	if strings.ContainsAny(ref, " \t\n") && !strings.ContainsAny(ref, "<>=^~*,|") {
		return bad("the version %q has spaces", ref)
	}
	return Spec{Source: "git+" + scheme + "://" + repo, URL: scheme + "://" + repo, Path: file, Ref: ref}, nil
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// IsCommit reports whether ref is a full commit id (SHA-1 or SHA-256).
func IsCommit(ref string) bool {
	if len(ref) != 40 && len(ref) != 64 {
		return false
	}
	for _, c := range ref {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// Join resolves a relative load() name written in file (both inside one
// repository) to a path in that repository; it refuses one that leaves
// the repository.
func Join(file, name string) (string, error) {
	if path.IsAbs(name) {
		return "", errors.New("a file in a git recipe cannot load an absolute path; load files of its own repository by relative path")
	}
	p := path.Join(path.Dir(file), name)
	if !fs.ValidPath(p) {
		return "", fmt.Errorf("%q leaves the repository", name)
	}
	return p, nil
}
