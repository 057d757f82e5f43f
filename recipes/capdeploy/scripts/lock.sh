# Take the deploy lock of the layout in $1 (mkdir is atomic) and write its
# info, the arguments after $2, one per line; then read the host's state
# with probe.sh, which follows this text in the same step ($2 is the SCM
# cache's file), so the run plans from the state it locked. A lock held by
# someone else: print '@@ held' and its info, and stop.
d=$1 cache=$2
shift 2
cd "$d" && { [ -d .davit ] || mkdir -p .davit; } || return
if mkdir .davit/lock 2>/dev/null; then
	printf '%s\n' "$@" > .davit/lock/info && echo '@@ locked' || return
else
	echo '@@ held'
	if [ -f .davit/lock/info ]; then
		while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done < .davit/lock/info
	fi
	return 0
fi
set -- "$d" "" "$cache"
