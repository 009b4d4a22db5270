package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// TCP over loopback has no SO_PEERCRED. The kernel knows the uid that created each socket: the client's
// socket is the one whose local address is the client's and whose remote address is the front end's.
// It is asked once per accepted connection (not per packet) with an exact NETLINK_SOCK_DIAG lookup; when
// netlink is not available, the socket table (/proc/net/tcp, /proc/net/tcp6) is scanned, which costs
// time in proportion to the host's sockets. A loopback client whose socket is not found is refused.

// socketOwner returns the uid owning the TCP socket at client connected to server (both "ip:port").
func socketOwner(client, server string) (uint32, error) {
	c, err := netip.ParseAddrPort(client)
	if err != nil {
		return 0, err
	}
	s, err := netip.ParseAddrPort(server)
	if err != nil {
		return 0, err
	}
	if uid, err := diagOwner(c, s); err == nil {
		return uid, nil
	}
	return procOwner(client, c, s)
}

// procOwner scans /proc/net/tcp (or tcp6) for the client's socket.
func procOwner(client string, c, s netip.AddrPort) (uint32, error) {
	server := s.String()
	c = netip.AddrPortFrom(c.Addr().Unmap(), c.Port())
	s = netip.AddrPortFrom(s.Addr().Unmap(), s.Port())
	path := "/proc/net/tcp"
	if c.Addr().Is6() {
		path = "/proc/net/tcp6"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if uid, ok := findOwner(b, procAddr(c), procAddr(s)); ok {
		return uid, nil
	}
	if c.Addr().Is4() { // an IPv4 client of a dual-stack listener shows in tcp6, mapped
		if b6, err := os.ReadFile("/proc/net/tcp6"); err == nil {
			m := func(a netip.AddrPort) netip.AddrPort {
				return netip.AddrPortFrom(netip.AddrFrom16(a.Addr().As16()), a.Port())
			}
			if uid, ok := findOwner(b6, procAddr(m(c)), procAddr(m(s))); ok {
				return uid, nil
			}
		}
	}
	return 0, fmt.Errorf("no socket %s -> %s in the kernel's socket table", client, server)
}

// procAddr formats a as the kernel prints it: the address as 32-bit words in the machine's byte order,
// each %08X, then ":" and the port %04X.
func procAddr(a netip.AddrPort) string {
	var sb strings.Builder
	if a.Addr().Is4() {
		ip := a.Addr().As4()
		fmt.Fprintf(&sb, "%08X", binary.NativeEndian.Uint32(ip[:]))
	} else {
		ip := a.Addr().As16()
		for i := 0; i < 16; i += 4 {
			fmt.Fprintf(&sb, "%08X", binary.NativeEndian.Uint32(ip[i:i+4]))
		}
	}
	fmt.Fprintf(&sb, ":%04X", a.Port())
	return sb.String()
}

// findOwner scans a /proc/net/tcp table for the row local -> remote and returns its uid column.
func findOwner(table []byte, local, remote string) (uint32, bool) {
	sc := bufio.NewScanner(bytes.NewReader(table))
	sc.Buffer(make([]byte, 0, 512), 4096)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid ...
		if len(f) < 8 || f[1] != local || f[2] != remote {
			continue
		}
		uid, err := strconv.ParseUint(f[7], 10, 32)
		if err != nil {
			return 0, false
		}
		return uint32(uid), true
	}
	return 0, false
}
