# Append line $2 to revisions.log, $1.
printf '%s\n' "$2" >> "$1"
