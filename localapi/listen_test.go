package localapi

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tacagent/tacagent/tacplus"
)

func TestListen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "missing", "parent", "api.sock")
	l, err := Listen(path, 0o660, "adm")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 || st.Gid != 4 {
		t.Errorf("socket mode %v gid %d, want socket 0660 gid 4 (adm)", fi.Mode(), st.Gid)
	}
	pfi, err := os.Stat(filepath.Dir(path))
	if err != nil || pfi.Mode().Perm() != DefaultSocketDirMode {
		t.Errorf("parent dir %v %v", pfi.Mode(), err)
	}

	// A second agent on the same path is refused while the first listens.
	if _, err := Listen(path, 0o660, ""); !errors.Is(err, tacplus.ErrConfig) || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second Listen: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Close left the socket: %v", err)
	}
}

func TestListenStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	// A socket file nobody listens on, as a crash leaves it.
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
	l, err := Listen(path, 0o600, "")
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial the new socket: %v", err)
	}
	c.Close()
	l.Close()
}

func TestListenRefuses(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "regular")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, group, want string
	}{
		{"not a socket", file, "", "not a socket"},
		{"unknown group", filepath.Join(dir, "a.sock"), "no-such-group-here", "no-such-group-here"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Listen(tt.path, 0o660, tt.group)
			if !errors.Is(err, tacplus.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a config error about %q", err, tt.want)
			}
		})
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Fatalf("the regular file was touched: %q %v", b, err)
	}
	if _, err := New(Config{Backend: newFakeBackend(), Group: "no-such-group-here"}); !errors.Is(err, tacplus.ErrConfig) {
		t.Fatalf("New with an unknown group: %v", err)
	}
	if _, err := New(Config{}); !errors.Is(err, tacplus.ErrConfig) {
		t.Fatalf("New without a backend: %v", err)
	}
}
