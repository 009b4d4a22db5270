package secfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func write(t *testing.T, dir, name string, mode os.FileMode, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

var secret = Options{What: "key file", Max: 1024, Secret: true, CheckOwner: true}

func wantRefused(t *testing.T, err error, words ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("accepted, want refused")
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

func TestReadsAGoodFile(t *testing.T) {
	p := write(t, t.TempDir(), "key", 0o600, "s3cret-key")
	b, err := ReadFile(p, secret)
	if err != nil || string(b) != "s3cret-key" {
		t.Fatalf("got %q, %v", b, err)
	}
}

func TestSymlinkRefused(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "key", 0o600, "k")
	l := filepath.Join(dir, "link")
	if err := os.Symlink(p, l); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(l, secret)
	wantRefused(t, err, "symbolic link", "real file")
}

// TestFIFODoesNotHang: a FIFO with no writer would block a plain open forever; here it is refused at once.
// The read runs in a goroutine bounded by a deadline; on a hang the writer end is opened to release it.
func TestFIFODoesNotHang(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ReadFile(p, secret)
		done <- err
	}()
	select {
	case err := <-done:
		wantRefused(t, err, "FIFO", "not a regular file")
	case <-time.After(20 * time.Second):
		// Release the blocked open so the goroutine exits, then fail.
		if w, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatal("reading a FIFO blocked for 20 s")
	}
}

func TestDeviceRefused(t *testing.T) {
	_, err := ReadFile("/dev/zero", secret)
	wantRefused(t, err, "character device")
}

func TestGroupReadableRefused(t *testing.T) {
	p := write(t, t.TempDir(), "key", 0o640, "k")
	_, err := ReadFile(p, secret)
	wantRefused(t, err, "0640", "read", "chmod 600 "+p)
	// The explicit override accepts a readable file but never a writable one.
	if _, err := ReadFile(p, Options{What: "key file", Max: 1024, Secret: true, AllowReadable: true}); err != nil {
		t.Fatalf("override: %v", err)
	}
	w := write(t, t.TempDir(), "key", 0o620, "k")
	_, err = ReadFile(w, Options{What: "key file", Max: 1024, Secret: true, AllowReadable: true})
	wantRefused(t, err, "write", "chmod go-w")
}

func TestWrongOwnerRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a file to nobody")
	}
	p := write(t, t.TempDir(), "key", 0o600, "k")
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(p, secret)
	wantRefused(t, err, "owned by uid 65534", "chown root")
}

func TestSizeCap(t *testing.T) {
	p := write(t, t.TempDir(), "big", 0o600, strings.Repeat("x", 2048))
	_, err := ReadFile(p, secret)
	wantRefused(t, err, "2048 bytes", "1024")
}

func TestCheckDir(t *testing.T) {
	base := t.TempDir()
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if ok, err := CheckDir(filepath.Join(base, "missing"), "socket directory"); ok || err != nil {
		t.Fatalf("missing: %v %v", ok, err)
	}
	if ok, err := CheckDir(base, "socket directory"); !ok || err != nil {
		t.Fatalf("good dir: %v %v", ok, err)
	}
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := CheckDir(open, "socket directory")
	wantRefused(t, err, "0777", "chmod 755")
	link := filepath.Join(base, "link")
	if err := os.Symlink(base, link); err != nil {
		t.Fatal(err)
	}
	_, err = CheckDir(link, "socket directory")
	wantRefused(t, err, "symbolic link")
	if os.Geteuid() == 0 {
		other := filepath.Join(base, "other")
		if err := os.Mkdir(other, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		_, err = CheckDir(other, "socket directory")
		wantRefused(t, err, "owned by uid 65534")
	}
}
