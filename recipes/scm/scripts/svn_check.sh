# svn on the PATH; with arguments, run them (svn info of the repository)
# and print their stderr after a failed marker when they fail.
if ! svn --version --quiet >/dev/null 2>&1; then
	echo 'problem: svn is not installed (svn --version failed)'
	return 0
fi
[ $# -gt 0 ] || return 0
if err=$("$@" 2>&1 >/dev/null); then :; else
	echo '@@ failed'
	printf '%s\n' "$err"
fi
