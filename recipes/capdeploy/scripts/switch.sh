# Point current of the layout in $1 at $2 atomically: a new symlink under
# .davit/, renamed over current (rename(2) replaces it in one step, so
# current never dangles or goes missing). An empty $2 removes current (a
# host that had none before). With more arguments, append the lines after
# $3 to file $3 (the release's mark) once it switched.
d=$1 target=$2
shift 2
if [ -z "$target" ]; then
	rm -f -- "$d/current"
	return
fi
{ [ -d "$d/.davit" ] || mkdir -p "$d/.davit"; } && ln -sfn "$target" "$d/.davit/current.tmp" && mv -T "$d/.davit/current.tmp" "$d/current" || return
[ $# -gt 0 ] || return 0
m=$1
shift
printf '%s\n' "$@" >> "$m"
