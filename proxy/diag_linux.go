package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// diagOwner asks the kernel for one TCP socket by its addresses (NETLINK_SOCK_DIAG, an exact lookup:
// constant cost however many sockets the host holds) and returns the uid that owns it.
func diagOwner(local, remote netip.AddrPort) (uint32, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 1}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return 0, err
	}
	family := byte(unix.AF_INET)
	if local.Addr().Is6() {
		family = unix.AF_INET6
	}
	// struct nlmsghdr (16) + struct inet_diag_req_v2 (56).
	const hdrLen, reqLen = 16, 56
	b := make([]byte, hdrLen+reqLen)
	binary.NativeEndian.PutUint32(b[0:], hdrLen+reqLen)
	binary.NativeEndian.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(b[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(b[8:], 1) // seq
	r := b[hdrLen:]
	r[0], r[1] = family, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(r[4:], 0xffffffff) // every state
	id := r[8:]                                      // struct inet_diag_sockid
	binary.BigEndian.PutUint16(id[0:], local.Port())
	binary.BigEndian.PutUint16(id[2:], remote.Port())
	putAddr(id[4:20], local.Addr())
	putAddr(id[20:36], remote.Addr())
	binary.NativeEndian.PutUint32(id[40:], 0xffffffff) // INET_DIAG_NOCOOKIE
	binary.NativeEndian.PutUint32(id[44:], 0xffffffff)
	if err := unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return 0, err
	}
	buf = buf[:n]
	if len(buf) < hdrLen {
		return 0, errors.New("sock_diag: short answer")
	}
	switch typ := binary.NativeEndian.Uint16(buf[4:]); typ {
	case unix.NLMSG_ERROR:
		if len(buf) >= hdrLen+4 {
			if e := int32(binary.NativeEndian.Uint32(buf[hdrLen:])); e != 0 {
				return 0, fmt.Errorf("sock_diag: %w", unix.Errno(-e))
			}
		}
		return 0, errors.New("sock_diag: no such socket")
	case unix.SOCK_DIAG_BY_FAMILY:
	default:
		return 0, fmt.Errorf("sock_diag: answer of type %d", typ)
	}
	// struct inet_diag_msg: family, state, timer, retrans (4), sockid (48), expires, rqueue, wqueue, uid.
	msg := buf[hdrLen:]
	if len(msg) < 4+48+16 {
		return 0, errors.New("sock_diag: short inet_diag_msg")
	}
	return binary.NativeEndian.Uint32(msg[4+48+12:]), nil
}

// putAddr writes an address as the kernel's __be32[4]: IPv4 in the first word.
func putAddr(dst []byte, a netip.Addr) {
	if a.Is4() {
		ip := a.As4()
		copy(dst, ip[:])
		return
	}
	ip := a.As16()
	copy(dst, ip[:])
}
