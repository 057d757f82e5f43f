# Make release directory releases/$2 of the layout in $1, refusing one
# that exists (status 17, so davit never removes a release it did not
# make), mark it pending with the lines after $2, and note it in the lock.
cd "$1" && { [ -d releases ] && [ -d .davit/releases ] || mkdir -p releases .davit/releases; } || return
if [ -e "releases/$2" ]; then
	printf 'release %s already exists\n' "$2" >&2
	return 17
fi
mkdir "releases/$2" || return
id=$2
shift 2
printf '%s\n' "$@" > ".davit/releases/$id" || return
printf 'release=%s\n' "$id" >> .davit/lock/info 2>/dev/null || :
