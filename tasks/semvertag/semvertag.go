// Package semvertag is davit's one rule for choosing a release among a
// repository's tags by a semver constraint. The git strategy's version=
// and load("git+…@^1.2") of shared recipes both use it, so a constraint
// means the same thing wherever a Deployfile writes one.
package semvertag

import (
	"fmt"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Parse reads a tag as a release version: semver 2 (X.Y.Z with an
// optional prerelease and build), with an optional leading "v". Looser
// forms ("1.4", "2024-01") are not versions here: a constraint picking a
// date tag would be a surprise.
func Parse(tag string) (*semver.Version, bool) {
	v, err := semver.StrictNewVersion(strings.TrimPrefix(tag, "v"))
	return v, err == nil
}

// Tagged is a tag that parses as a version.
type Tagged struct {
	Tag     string
	Version *semver.Version
}

// Sorted returns the tags that are versions, highest first; tags of one
// version (v1.4.2 and 1.4.2) in name order, so the order never depends on
// how the tags were listed.
func Sorted(tags []string) []Tagged {
	var all []Tagged
	for _, tag := range tags {
		if v, ok := Parse(tag); ok {
			all = append(all, Tagged{tag, v})
		}
	}
	slices.SortFunc(all, func(a, b Tagged) int {
		if c := b.Version.Compare(a.Version); c != 0 {
			return c
		}
		return strings.Compare(a.Tag, b.Tag)
	})
	return all
}

// Constraint parses a constraint ("^1.2", ">=1.3.0-0", "~1.4.2").
func Constraint(constraint string) (*semver.Constraints, error) {
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return nil, fmt.Errorf("version %q: %w", constraint, err)
	}
	return c, nil
}

// Pick returns the tag with the highest version satisfying constraint.
// Prereleases count only when the constraint itself names one
// (Masterminds/semver's rule: "^1.5.0-rc.0" admits 1.5.0-rc.1, "^1.4" does
// not). The error lists the version tags there are (up to 20), or says
// there are none.
func Pick(constraint string, tags []string) (string, error) {
	cons, err := Constraint(constraint)
	if err != nil {
		return "", err
	}
	all := Sorted(tags)
	for _, x := range all {
		if cons.Check(x.Version) {
			return x.Tag, nil
		}
	}
	if len(all) == 0 {
		return "", fmt.Errorf("version %q: no tag satisfies it: the repository has no version tags (vX.Y.Z)", constraint)
	}
	names := make([]string, len(all))
	for i, x := range all {
		names[i] = x.Tag
	}
	return "", fmt.Errorf("version %q: no tag satisfies it; version tags: %s", constraint, listSome(names, 20))
}

// listSome joins up to n names, saying how many more there are.
func listSome(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s, … (%d more)", strings.Join(names[:n], ", "), len(names)-n)
}
