# Remove whatever deploy lock $1 is (deploy:unlock run by hand, after a
# deploy that died) and print its info after '@@ removed'.
if [ -d "$1" ]; then
	echo '@@ removed'
	if [ -f "$1/info" ]; then
		while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done < "$1/info"
	fi
	rm -rf -- "$1"
else
	echo '@@ none'
fi
