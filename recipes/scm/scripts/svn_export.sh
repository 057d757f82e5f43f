# svn export with the arguments given.
svn export "$@"
