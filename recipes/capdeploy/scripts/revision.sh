# Write REVISION ($2) and REVISION_TIME in release directory $1: the time
# is $3, or what the command after $3 prints (git log in the mirror).
cd "$1" && printf '%s\n' "$2" > REVISION || return
t=$3
shift 3
if [ -z "$t" ]; then t=$("$@") || return; fi
printf '%s\n' "$t" > REVISION_TIME
