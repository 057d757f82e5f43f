# The first deploy's mirror: clone repository $2 into $1.
git clone --mirror --quiet -- "$2" "$1"
