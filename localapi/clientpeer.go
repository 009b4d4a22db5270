package localapi

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// untrustedAgentError is a dial refused because the socket's server runs as an untrusted uid.
type untrustedAgentError struct {
	uid     uint32
	pid     int32
	trusted []uint32
}

func (e *untrustedAgentError) Error() string {
	return fmt.Sprintf("the process serving the socket runs as uid %d (pid %d), not as a trusted agent uid %v", e.uid, e.pid, e.trusted)
}

// defaultDaemonUIDs are root and, when it differs, the Client's own uid.
func defaultDaemonUIDs() []uint32 {
	uids := []uint32{0}
	if me := uint32(os.Getuid()); me != 0 {
		uids = append(uids, me)
	}
	return uids
}

// checkDaemon reads the credentials of the socket's server (recorded by the kernel when it called
// listen, so a process that took over the path cannot borrow the daemon's) and refuses an untrusted uid.
func checkDaemon(conn net.Conn, trusted []uint32) error {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return errors.New("not a unix socket connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	cerr := raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("SO_PEERCRED: %w", err)
	}
	if !slices.Contains(trusted, cred.Uid) {
		return &untrustedAgentError{uid: cred.Uid, pid: cred.Pid, trusted: trusted}
	}
	return nil
}

// dialError turns a failed request to the socket into the Client's error: an untrusted server, a
// permission the caller lacks, or no agent at all.
func (c *Client) dialError(err error) error {
	var ua *untrustedAgentError
	switch {
	case errors.As(err, &ua):
		return &Error{Code: CodeUntrustedAgent, Message: "refusing to talk to " + c.socket + ": " + ua.Error() +
			"; nothing was sent"}
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return &Error{Code: CodePermissionDenied, Message: "permission denied on " + c.socket + ": " + socketGroupHint(c.socket)}
	}
	return &Error{Code: CodeNoAgent, Message: "no agent answers at " + c.socket + ": " + err.Error()}
}

// socketGroupHint names the group whose members may connect, from the socket file's group.
func socketGroupHint(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "cannot reach the socket (" + err.Error() + ")"
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "not allowed to connect"
	}
	name := strconv.FormatUint(uint64(st.Gid), 10)
	if g, err := user.LookupGroupId(name); err == nil {
		name = g.Name
	}
	return fmt.Sprintf("not in group %s (the socket's group; ask an administrator to add you, then log in again)", name)
}
