# Print the state of the layout in $1, in sections ('@@ current', ...),
# with one exec (readlink) and builtins otherwise: it runs on every host
# in every deploy. With $2 = full, also every release's REVISION and the
# deploy lines of revisions.log (the releases table); $3, if set, is the
# SCM cache's file, reported as '@@ cached' when it exists.
cd "$1" 2>/dev/null || { echo '@@ missing'; return 0; }
[ -n "$3" ] && [ -f "$3" ] && echo '@@ cached'
echo '@@ current'
if [ -L current ]; then readlink current; elif [ -e current ]; then echo '@@ current-not-link'; fi
echo '@@ releases'
for f in releases/*; do [ -d "$f" ] && echo "${f#releases/}"; done
echo '@@ marks'
for f in .davit/releases/*; do
	[ -f "$f" ] || continue
	n=${f##*/}
	while IFS= read -r l || [ -n "$l" ]; do printf '%s:%s\n' "$n" "$l"; done < "$f"
done
echo '@@ lock'
if [ -f .davit/lock/info ]; then
	while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done < .davit/lock/info
elif [ -d .davit/lock ]; then
	echo held=1
fi
[ "$2" = full ] || return 0
echo '@@ revision'
for f in releases/*/REVISION; do
	[ -f "$f" ] || continue
	l=
	IFS= read -r l < "$f"
	n=${f#releases/}
	echo "${n%/REVISION}:$l"
done
echo '@@ log'
grep -h ' deployed as release ' revisions.log 2>/dev/null | tail -n 1000
return 0
