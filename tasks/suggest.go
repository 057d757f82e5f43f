package tasks

import (
	"slices"
	"strings"
)

// levenshtein is the edit distance between a and b (insertions, deletions
// and substitutions of runes), used to suggest the name a user meant.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// Suggest returns the candidate closest to name, or "" when none is close
// enough to be a plausible typo. Comparison ignores case; ties go to the
// alphabetically first candidate, so suggestions do not depend on map order. Exported so the Deployfile loader and the CLI
// make the same suggestions for stages and other names.
func Suggest(name string, candidates []string) string {
	best, bestDist := "", -1
	lname := strings.ToLower(name)
	for _, c := range slices.Sorted(slices.Values(candidates)) {
		d := levenshtein(lname, strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	// Allow roughly one edit per three characters, at least two: close
	// enough to catch typos, far enough not to suggest unrelated names.
	if bestDist < 0 || bestDist > max(2, len([]rune(name))/3) {
		return ""
	}
	return best
}

// DidYouMean formats Suggest's answer as a suffix for an error message:
// " (did you mean NAME?)", or "" when no candidate is close.
func DidYouMean(name string, candidates []string) string {
	if s := Suggest(name, candidates); s != "" {
		return " (did you mean " + s + "?)"
	}
	return ""
}
