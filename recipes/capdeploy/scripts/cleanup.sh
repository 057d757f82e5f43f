# Remove the paths after $1, relative to the layout in $1 (old releases
# and their marks).
cd "$1" || return
shift
rm -rf -- "$@"
