package dnsserver

import (
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// udpSockets is how many UDP sockets share the port: one per CPU the Go
// runtime uses, at most 8.
func udpSockets() int { return min(runtime.GOMAXPROCS(0), 8) }

// reusePort sets SO_REUSEPORT, so several sockets bind one address and
// the kernel spreads datagrams over them by source.
func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
