# Write REVISION ($2) and REVISION_TIME in release directory $1: the time
# is $3, or what the command after $3 prints (git log in the mirror),
# written by it straight into the file (no subshell to capture it).
cd "$1" && printf '%s\n' "$2" > REVISION || return
if [ -n "$3" ]; then
	printf '%s\n' "$3" > REVISION_TIME
	return
fi
shift 3
"$@" > REVISION_TIME
