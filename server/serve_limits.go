package main

import (
	"fmt"
	"net"
	"sync"
)

// Near the open-file limit accept fails with "too many open files" and
// net/http backs off for up to a second per failure, so every request
// slowed to seconds. The server therefore takes at most maxConns()
// connections at a time: later ones wait in the kernel's accept queue until
// one closes, and the descriptors left over serve files and logs.

// fdReserve is how many descriptors are kept for everything but client
// connections (embedded files need none; a --web folder needs one per file
// being sent).
const fdReserve = 64

// limitListener accepts a connection only while fewer than its capacity
// are open.
type limitListener struct {
	net.Listener
	slots chan struct{}
}

func newLimitListener(ln net.Listener, n int) net.Listener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &slotConn{Conn: c, release: func() { <-l.slots }}, nil
}

// slotConn frees its listener slot when first closed (net/http may close
// a connection more than once).
type slotConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// listenNote warns when the server is reachable from other machines: an
// --addr without a host (":8080") or with 0.0.0.0 / :: listens on every
// network interface.
func listenNote(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return ""
	}
	return fmt.Sprintf("vitlens: listening on ALL network interfaces (port %d): other machines can reach this server; --addr 127.0.0.1:%d keeps it to this one\n", tcp.Port, tcp.Port)
}
