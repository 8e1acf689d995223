package rig

import "syscall"

// sysProcAttr has the kernel SIGKILL a child when the thread that started
// it ends, which in a test binary is when the binary ends (Go ends a thread
// before that only if a goroutine locked to it exits): a test that never
// reaches its cleanup, because go test's timeout panicked, leaves no
// process behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
