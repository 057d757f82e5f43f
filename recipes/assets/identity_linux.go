package assets

import (
	"os"
	"syscall"
)

// identityOf is what says a file is the one hashed before: its size, its
// modification and change times, its device and inode. The change time
// moves on every write and cannot be set back, unlike the modification
// time (tar, rsync -t and cp -p restore that).
func identityOf(info os.FileInfo) (fileID, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{
		Size:  info.Size(),
		Mtime: info.ModTime().UnixNano(),
		Ctime: st.Ctim.Nano(),
		Dev:   uint64(st.Dev),
		Ino:   st.Ino,
	}, true
}
