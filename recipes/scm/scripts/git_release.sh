# Export commit $2 of the mirror in $1 into release directory $3: all of
# it, or with $4 (repo_tree) that directory's contents ($5: its depth, for
# tar's --strip-components). POSIX sh has no pipefail, but tar fails on the
# empty or truncated input a failing git archive leaves it; only then is
# the commit looked for, to say in words ($6) that the fetch did not bring
# it. $7 says that $4 is not a directory of the commit.
cd "$1" || return
if [ -n "$4" ]; then
	[ "$(git cat-file -t "$2:$4" 2>/dev/null)" = tree ] || { printf '%s\n' "$7" >&2; return 1; }
	git archive "$2" "$4" | tar -x -f - --strip-components="$5" -C "$3"
else
	git archive "$2" | tar -x -f - -C "$3"
fi || {
	git cat-file -e "$2^{commit}" 2>/dev/null || printf '%s\n' "$6" >&2
	return 1
}
