package atomicfile

import (
	"errors"
	"syscall"
)

// isNoLinkErrno reports the errors of link(2) on filesystems without hard
// links (FAT, some network and FUSE filesystems).
func isNoLinkErrno(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) ||
		errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EXDEV)
}
