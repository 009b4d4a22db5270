package localapi

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// Defaults of Listen.
const (
	// DefaultSocketDirMode is the mode of the socket's parent directory when Listen creates it.
	DefaultSocketDirMode fs.FileMode = 0o755
	// StaleDialTimeout bounds the dial that tells a live agent's socket from a stale one.
	StaleDialTimeout = time.Second
)

// Listen creates the API socket at path with the given mode, owned by group (a group name; empty keeps
// the process's group), and returns its listener. Closing the listener removes the socket.
//
// It creates the parent directory (DefaultSocketDirMode) when missing. An existing socket is removed only
// when nothing answers on it (a stale socket from a crash); when another process listens there, or path
// is not a socket, Listen refuses with an error of class tacplus.ErrConfig.
func Listen(path string, mode fs.FileMode, group string) (net.Listener, error) {
	cfgErr := func(format string, args ...any) error {
		return &tacplus.Error{Class: tacplus.ErrConfig, Msg: "local API socket " + path + ": " + fmt.Sprintf(format, args...)}
	}
	gid := -1
	if group != "" {
		g, err := lookupGID(group)
		if err != nil {
			return nil, cfgErr("%v", err)
		}
		gid = int(g)
	}
	if err := os.MkdirAll(filepath.Dir(path), DefaultSocketDirMode); err != nil {
		return nil, cfgErr("creating its directory: %v", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, cfgErr("exists and is not a socket; refusing to remove it")
		}
		if c, derr := net.DialTimeout("unix", path, StaleDialTimeout); derr == nil {
			_ = c.Close()
			return nil, cfgErr("another process (an agent already running?) is listening there")
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, cfgErr("removing the stale socket: %v", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, cfgErr("%v", err)
	}

	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, cfgErr("%v", err)
	}
	// Until the chmod below, the socket has the umask's mode: with the usual 022 only its owner (the
	// daemon's user) may connect. The peer check of every request is the real gate either way.
	l.SetUnlinkOnClose(false) // socketListener removes it, once
	fail := func(format string, args ...any) (net.Listener, error) {
		_ = l.Close()
		_ = os.Remove(path)
		return nil, cfgErr(format, args...)
	}
	if err := os.Chmod(path, mode); err != nil {
		return fail("chmod: %v", err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			return fail("chown to group %s: %v", group, err)
		}
	}
	return &socketListener{UnixListener: l, path: path}, nil
}

// socketListener removes its socket file when closed.
type socketListener struct {
	*net.UnixListener
	path string
	once sync.Once
}

func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { _ = os.Remove(l.path) })
	return err
}

// lookupGID resolves a group name (or a numeric gid).
func lookupGID(name string) (uint32, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		if n, perr := strconv.ParseUint(name, 10, 32); perr == nil {
			return uint32(n), nil
		}
		return 0, fmt.Errorf("group %q: %v", name, err)
	}
	n, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("group %q has gid %q", name, g.Gid)
	}
	return uint32(n), nil
}
