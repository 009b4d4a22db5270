// Package secfile opens files that hold secrets (shared keys, local credentials) and configuration with
// the checks a privileged daemon owes them: no symlink is followed, a FIFO or device never blocks the
// caller, only regular files are read, the owner must be root (or the daemon's own user), a secret file
// must not be readable by group or others, and what is read is capped. Every refusal says how to fix it.
package secfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Options tunes one read.
type Options struct {
	// What names the file in messages ("key file", "local credential file", "configuration file").
	What string
	// Max caps the bytes read; a larger file is refused. It must be positive.
	Max int64
	// Secret refuses a file readable or writable by group or others (mode & 0o077).
	Secret bool
	// AllowReadable relaxes Secret to refuse only write access for group or others (an operator's
	// explicit override such as allow_insecure_key_file).
	AllowReadable bool
	// FollowSymlinks accepts a symlink as the last path element (the configuration file may be one).
	FollowSymlinks bool
	// CheckOwner requires the owner to be root or the effective user.
	CheckOwner bool
}

// Error is a refused file: Msg says what is wrong and how to fix it; Err is the system error, if any.
type Error struct {
	Path string
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Path + ": " + e.Msg + ": " + e.Err.Error()
	}
	return e.Path + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// ReadFile reads path under opts. It never blocks on a FIFO or device and never follows a final symlink
// (unless FollowSymlinks); the content is returned only when every check passed.
func ReadFile(path string, opts Options) ([]byte, error) {
	what := opts.What
	if what == "" {
		what = "file"
	}
	flags := unix.O_RDONLY | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY
	if !opts.FollowSymlinks {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := openRetry(path, flags)
	if err != nil {
		if errors.Is(err, unix.ELOOP) && !opts.FollowSymlinks {
			return nil, &Error{Path: path, Msg: fmt.Sprintf("the %s is a symbolic link; point the configuration at the real file", what)}
		}
		return nil, &Error{Path: path, Msg: "cannot open the " + what, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &Error{Path: path, Msg: "cannot stat the " + what, Err: err}
	}
	if err := check(path, what, &st, opts); err != nil {
		return nil, err
	}
	// A regular file never blocks; clear O_NONBLOCK anyway so that reads behave plainly.
	_ = unix.SetNonblock(fd, false)
	if opts.Max <= 0 {
		return nil, &Error{Path: path, Msg: "internal: no size cap given"}
	}
	if st.Size > opts.Max {
		return nil, &Error{Path: path, Msg: fmt.Sprintf("the %s is %d bytes, more than the %d allowed", what, st.Size, opts.Max)}
	}
	b, err := io.ReadAll(io.LimitReader(f, opts.Max+1))
	if err != nil {
		return nil, &Error{Path: path, Msg: "cannot read the " + what, Err: err}
	}
	if int64(len(b)) > opts.Max {
		Wipe(b)
		return nil, &Error{Path: path, Msg: fmt.Sprintf("the %s is more than the %d bytes allowed", what, opts.Max)}
	}
	return b, nil
}

func openRetry(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags, 0)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

func check(path, what string, st *unix.Stat_t, opts Options) error {
	mode := st.Mode
	if mode&unix.S_IFMT != unix.S_IFREG {
		return &Error{Path: path, Msg: fmt.Sprintf("the %s is not a regular file (%s); point the configuration at a plain file", what, typeName(mode))}
	}
	if opts.CheckOwner {
		euid := uint32(os.Geteuid())
		if st.Uid != 0 && st.Uid != euid {
			return &Error{Path: path, Msg: fmt.Sprintf("the %s is owned by uid %d, not root or the daemon's user (uid %d); chown root %s", what, st.Uid, euid, path)}
		}
	}
	perm := mode & 0o777
	if opts.Secret {
		bad, fix := perm&0o077, "chmod 600 "+path
		if opts.AllowReadable {
			bad, fix = perm&0o022, "chmod go-w "+path
		}
		if bad != 0 {
			return &Error{Path: path, Msg: fmt.Sprintf("the %s has mode %04o: group or others may %s it; %s", what, perm, access(bad), fix)}
		}
	} else if perm&0o002 != 0 {
		return &Error{Path: path, Msg: fmt.Sprintf("the %s has mode %04o: every user may write it; chmod o-w %s", what, perm, path)}
	}
	return nil
}

func access(bits uint32) string {
	switch {
	case bits&0o044 != 0 && bits&0o022 != 0:
		return "read and write"
	case bits&0o022 != 0:
		return "write"
	case bits&0o044 != 0:
		return "read"
	}
	return "execute"
}

func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFLNK:
		return "a symbolic link"
	}
	return "not a plain file"
}

// CheckDir refuses a directory that is a symlink, is not a directory, is owned by someone other than
// root or the daemon's user, or is writable by group or others: whoever can write it can replace what
// the daemon puts there (the local API socket). A missing directory is not an error (ok false).
func CheckDir(path, what string) (exists bool, err error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return false, nil
		}
		return false, &Error{Path: path, Msg: "cannot stat the " + what, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return true, &Error{Path: path, Msg: fmt.Sprintf("the %s is %s, not a directory; remove it and let the daemon create it", what, typeName(st.Mode))}
	}
	euid := uint32(os.Geteuid())
	if st.Uid != 0 && st.Uid != euid {
		return true, &Error{Path: path, Msg: fmt.Sprintf("the %s is owned by uid %d, not root or the daemon's user (uid %d); chown root %s (or remove it)", what, st.Uid, euid, path)}
	}
	if perm := st.Mode & 0o777; perm&0o022 != 0 {
		return true, &Error{Path: path, Msg: fmt.Sprintf("the %s has mode %04o: group or others may write it; chmod 755 %s", what, perm, path)}
	}
	return true, nil
}

// Wipe overwrites b with zeros (a secret the caller owns and no longer needs).
func Wipe(b []byte) {
	clear(b)
}
