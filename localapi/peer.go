package localapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peer is what the Server learned about a connection's other end when it accepted it.
type peer struct {
	caller  Caller
	known   bool   // SO_PEERCRED answered
	allowed bool   // the access rule admits the caller
	why     string // why not, for the log and the 403 message
}

type peerKey struct{}

// connKey stores the *peerConn of a shared-out connection in its requests' context (ConnContext).
type connKey struct{}

// peerFrom returns the peer stored in ctx by the Server's ConnContext.
func peerFrom(ctx context.Context) peer {
	p, _ := ctx.Value(peerKey{}).(peer)
	return p
}

// accessRule is who may call: root (uid rootUID, 0 outside tests), and, when hasGroup, members of group
// gid, by primary or supplementary group.
type accessRule struct {
	rootUID  uint32
	gid      uint32
	hasGroup bool
}

// allows is the access decision, a pure function of the caller's credentials. groups are the caller's
// supplementary groups; it is called only when the primary group does not decide, because finding them
// costs a system call.
func (r accessRule) allows(c Caller, groups func() ([]uint32, error)) (bool, string) {
	if c.UID == r.rootUID {
		return true, ""
	}
	if !r.hasGroup {
		return false, fmt.Sprintf("uid %d is not root and no group is allowed", c.UID)
	}
	if c.GID == r.gid {
		return true, ""
	}
	gs, err := groups()
	if err != nil {
		return false, fmt.Sprintf("uid %d: cannot read its groups: %v", c.UID, err)
	}
	for _, g := range gs {
		if g == r.gid {
			return true, ""
		}
	}
	return false, fmt.Sprintf("uid %d is not root and not in group %d", c.UID, r.gid)
}

// peerOf reads the credentials of a unix socket's peer and applies rule. Any other kind of connection has
// no credentials and is refused.
func peerOf(c net.Conn, rule accessRule) peer {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{why: "not a unix socket connection"}
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peer{why: "no raw connection: " + err.Error()}
	}
	var (
		cred   *unix.Ucred
		groups []uint32
		gerr   error
	)
	cerr := raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil || cred.Uid == rule.rootUID || !rule.hasGroup || cred.Gid == rule.gid {
			return
		}
		groups, gerr = peerGroups(int(fd), int(cred.Pid))
	})
	if cerr == nil {
		cerr = err
	}
	if cerr != nil {
		return peer{why: "SO_PEERCRED: " + cerr.Error()}
	}
	p := peer{caller: Caller{UID: cred.Uid, GID: cred.Gid, PID: int(cred.Pid)}, known: true}
	p.allowed, p.why = rule.allows(p.caller, func() ([]uint32, error) { return groups, gerr })
	return p
}

// maxPeerGroups bounds the supplementary groups read; Linux's NGROUPS_MAX is 65536.
const maxPeerGroups = 65536

// peerGroups returns the peer's supplementary groups as the kernel recorded them at connect time
// (SO_PEERGROUPS, Linux 4.13), so a process that exits and whose pid is reused cannot lend its groups to
// another. Older kernels fall back to /proc/<pid>/status, which has that race.
func peerGroups(fd, pid int) ([]uint32, error) {
	n := 64
	for {
		buf := make([]uint32, n)
		size := uint32(n * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch {
		case errno == 0:
			return buf[:size/4], nil
		case errno == unix.ERANGE && int(size/4) > n && int(size/4) <= maxPeerGroups:
			n = int(size / 4)
		case errno == unix.ENOPROTOOPT:
			return procGroups(pid)
		default:
			return nil, errno
		}
	}
}

// procGroups reads the "Groups:" line of /proc/<pid>/status.
func procGroups(pid int) ([]uint32, error) {
	if pid <= 0 {
		return nil, errors.New("peer pid unknown (another pid namespace)")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	return parseGroupsLine(b)
}

// parseGroupsLine extracts the supplementary groups from the text of /proc/<pid>/status (proc(5)).
func parseGroupsLine(status []byte) ([]uint32, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("Groups:"))
		if !ok {
			continue
		}
		var out []uint32
		for _, f := range bytes.Fields(rest) {
			g, err := strconv.ParseUint(string(f), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("bad Groups entry %q", f)
			}
			out = append(out, uint32(g))
		}
		return out, nil
	}
	return nil, errors.New("no Groups line")
}
