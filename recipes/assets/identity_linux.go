package assets

import "golang.org/x/sys/unix"

// identityOf is what says a file is the one hashed before: its size, its
// modification and change times, its device and inode. The change time
// moves on every write and cannot be set back, unlike the modification
// time (tar, rsync -t and cp -p restore that).
func identityOf(st *unix.Stat_t) (fileID, bool) {
	return fileID{
		Size:  st.Size,
		Mtime: st.Mtim.Nano(),
		Ctime: st.Ctim.Nano(),
		Dev:   uint64(st.Dev),
		Ino:   st.Ino,
	}, true
}
