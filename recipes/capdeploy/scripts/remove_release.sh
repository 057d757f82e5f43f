# Remove release $2 of the layout in $1 and its mark, refusing when
# current points at it (it would then be live).
cd "$1" || return
if [ current -ef "releases/$2" ]; then
	printf 'current points at %s; not removing it\n' "$2" >&2
	return 1
fi
rm -rf -- "releases/$2" ".davit/releases/$2"
