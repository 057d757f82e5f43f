# Release the deploy lock of the layout in $1 only if this run holds it
# (its info has the line $2, the run's token), so a run never removes a
# lock another deploy took after a deploy:unlock.
cd "$1" || return
ours=
if [ -f .davit/lock/info ]; then
	while IFS= read -r l || [ -n "$l" ]; do [ "$l" = "$2" ] && ours=1; done < .davit/lock/info
fi
if [ -n "$ours" ]; then
	rm -rf .davit/lock && echo '@@ released'
elif [ -d .davit/lock ]; then
	echo '@@ foreign'
else
	echo '@@ none'
fi
