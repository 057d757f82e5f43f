# Make the layout's directories ($1 is deploy_to; the arguments after $2
# are the shared directories linked paths need) and print a "problem: "
# line for what is wrong: a directory that cannot be made or written, a
# current that is not a symlink; with $2 = lock, also the deploy lock's
# info after '@@ lock' if one is held. mkdir runs only when a directory is
# missing: on a set-up host this forks nothing.
d=$1 lock=$2
shift 2
for p in "$d" "$d/releases" "$d/shared" "$d/.davit" "$d/.davit/releases" "$@"; do
	[ -d "$p" ] && continue
	out=$(mkdir -p -- "$d" "$d/releases" "$d/shared" "$d/.davit" "$d/.davit/releases" "$@" 2>&1) ||
		printf '%s\n' "$out" | while IFS= read -r l; do printf 'problem: %s\n' "$l"; done
	break
done
for p in "$d" "$d/releases" "$d/shared" "$d/.davit" "$d/.davit/releases"; do
	if [ -d "$p" ] && [ ! -w "$p" ]; then printf 'problem: %s is not writable\n' "$p"; fi
done
if [ -e "$d/current" ] && [ ! -L "$d/current" ]; then
	printf 'problem: %s is not a symlink (move it away so davit can manage it)\n' "$d/current"
fi
if [ "$lock" = lock ] && [ -d "$d/.davit/lock" ]; then
	echo '@@ lock'
	if [ -f "$d/.davit/lock/info" ]; then
		while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done < "$d/.davit/lock/info"
	else
		echo held=1
	fi
fi
return 0
