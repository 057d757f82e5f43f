# Succeed when tar and gzip, which unpack the copy strategy's archive, are
# on the PATH (builtins only: nothing to fork).
command -v tar >/dev/null && command -v gzip >/dev/null
