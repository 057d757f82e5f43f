# Take the deploy lock of the layout in $1 and write its info, the
# arguments after $2, one per line; then read the host's state with
# probe.sh, which follows this text in the same step ($2 is the SCM
# cache's file), so the run plans from the state it locked. The lock is
# made whole under a name of its own (one a crashed run of the same pid
# may have left is reused), then renamed into place: rename(2)
# is atomic and fails onto a lock that exists, so a lock is never seen
# without its info, even by a deploy refused the same moment. A lock held
# by someone else: print '@@ held' and its info, and stop.
d=$1 cache=$2
shift 2
cd "$d" && { [ -d .davit ] || mkdir -p .davit; } || return
t=.davit/lock.$$
mkdir -p "$t" && printf '%s\n' "$@" > "$t/info" || return
if [ ! -e .davit/lock ] && mv -T "$t" .davit/lock 2>/dev/null; then
	echo '@@ locked'
else
	rm -rf "$t"
	echo '@@ held'
	if [ -f .davit/lock/info ]; then
		while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done < .davit/lock/info
	fi
	return 0
fi
set -- "$d" "" "$cache"
