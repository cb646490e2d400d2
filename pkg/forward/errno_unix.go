package forward

import "syscall"

const (
	syscallEMFILE     = syscall.EMFILE
	syscallECONNRESET = syscall.ECONNRESET
	syscallEPIPE      = syscall.EPIPE
)
