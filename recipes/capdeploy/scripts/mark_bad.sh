# Append the lines after $2 to mark file $2 in marks directory $1.
{ [ -d "$1" ] || mkdir -p "$1"; } || return
m=$1/$2
shift 2
printf '%s\n' "$@" >> "$m"
