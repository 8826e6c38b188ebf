package testutil

import "syscall"

// sysProcAttr makes the kernel kill the agent if the test process dies
// without running its cleanups (a panic or a -timeout), so no agent
// outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
