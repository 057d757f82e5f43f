# Replace each linked path (the arguments after $2, relative) of release
# directory $1 with a symlink to the same path in shared directory $2.
# mkdir and rm run only when needed: each exec saved is saved on every host.
rel=$1 shared=$2
shift 2
for p in "$@"; do
	t=$rel/$p
	case $p in */*) [ -d "${t%/*}" ] || mkdir -p -- "${t%/*}" || return ;; esac
	if [ -e "$t" ] || [ -L "$t" ]; then rm -rf -- "$t" || return; fi
	ln -s "$shared/$p" "$t" || return
done
