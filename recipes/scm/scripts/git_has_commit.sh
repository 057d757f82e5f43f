# Fail, saying why ($3), unless commit $2 is in the mirror in $1.
cd "$1" && git cat-file -e "$2^{commit}" 2>/dev/null || { printf '%s\n' "$3" >&2; return 1; }
