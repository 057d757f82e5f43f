# git and tar on the PATH; with $1 (the repository), git ls-remote of it.
if ! command -v git >/dev/null; then
	echo 'problem: git is not installed (no git on the PATH)'
	return 0
fi
command -v tar >/dev/null || echo "problem: tar is not installed (it unpacks git archive's output into each release)"
[ -n "$1" ] || return 0
if err=$(git ls-remote -- "$1" HEAD 2>&1 >/dev/null); then :; else
	echo '@@ failed'
	printf '%s\n' "$err"
fi
