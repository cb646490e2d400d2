package sockettest

import (
	"os"

	"golang.org/x/sys/unix"
)

func setRcvBuf(f *os.File, n int) {
	_ = unix.SetsockoptInt(int(f.Fd()), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
}
