# Refresh the mirror in $1 from repository $2, pruning what is gone
# upstream (git fetch itself: git remote update would run it as a second
# process). set-url rewrites the mirror's config, so it runs only when
# origin's url line (git writes it as "<TAB>url = VALUE") is not exactly $2.
cd "$1" || return
known= sec=
while IFS= read -r l || [ -n "$l" ]; do
	case $l in '[remote "origin"]') sec=1 ;; '['*) sec= ;; esac
	[ -n "$sec" ] && [ "$l" = "	url = $2" ] && known=1
done < config
[ -n "$known" ] || git remote set-url origin "$2" || return
git fetch --prune --quiet origin
