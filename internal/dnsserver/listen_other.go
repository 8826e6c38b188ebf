//go:build !linux

package dnsserver

import "syscall"

// udpSockets: one UDP socket where SO_REUSEPORT is not relied on.
func udpSockets() int { return 1 }

func reusePort(network, address string, c syscall.RawConn) error { return nil }
