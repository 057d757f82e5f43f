# Print a "problem: " line for each linked file ($@, paths in shared/)
# that does not exist.
for f in "$@"; do
	[ -e "$f" ] || printf 'problem: linked file %s does not exist\n' "$f"
done
return 0
