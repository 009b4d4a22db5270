package config

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loadWithin runs Load in a goroutine and fails the test if it does not return within 20 s (a FIFO or a
// pathological document must never hang the daemon).
func loadWithin(t *testing.T, path string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := Load(path)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close() // release a blocked FIFO open so the goroutine ends
		}
		t.Fatalf("Load(%s) did not return in 20 s", path)
		return nil
	}
}

func writeConfig(t *testing.T, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tacagent.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadRefusesHugeConfig(t *testing.T) {
	doc := expand(t, valid) + "\n#" + strings.Repeat("x", 2<<20) + "\n"
	err := loadWithin(t, writeConfig(t, doc))
	if err == nil || !strings.Contains(err.Error(), "more than the 1048576 allowed") {
		t.Fatalf("2 MiB configuration: %v, want refused for its size", err)
	}
}

func TestLoadRefusesFIFOConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tacagent.yaml")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	err := loadWithin(t, p)
	if err == nil || !strings.Contains(err.Error(), "FIFO") {
		t.Fatalf("FIFO configuration: %v, want refused as a FIFO", err)
	}
}

func TestLoadAcceptsGoodConfig(t *testing.T) {
	if err := loadWithin(t, writeConfig(t, expand(t, valid))); err != nil {
		t.Fatal(err)
	}
}

// TestBillionLaughs: nine levels of nine aliases each would be 9^9 values expanded; the decoder's node
// budget refuses the document promptly instead.
func TestBillionLaughs(t *testing.T) {
	var b strings.Builder
	b.WriteString("x0: &a0 [\"lol\"]\n")
	for i := 1; i <= 9; i++ {
		refs := strings.TrimSuffix(strings.Repeat("*a"+string(rune('0'+i-1))+", ", 9), ", ")
		b.WriteString("x" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [" + refs + "]\n")
	}
	// The aliases land where the decoder descends: a server list, a group's members, and the stack.
	laughs := b.String()
	for _, tail := range []string{
		"servers: *a9\n",
		"servers:\n  - name: s\n    address: 127.0.0.1\n    key_file: /k\ngroups:\n  - name: g\n    servers: *a9\n",
		"servers:\n  - name: s\n    address: 127.0.0.1\n    key_file: /k\nauthentication: *a9\n",
	} {
		doc := laughs + tail
		done := make(chan error, 1)
		go func() {
			_, err := Parse([]byte(doc), "laughs.yaml")
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("a billion-laughs document was accepted:\n%s", doc)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("a billion-laughs document is still decoding after 20 s:\n%s", doc)
		}
	}
}

// TestAliasBudgetCounts proves the budget itself (not an unknown-field error) stops a wide expansion: a
// list of strings under a known field, nested through aliases past maxNodes.
func TestAliasBudgetCounts(t *testing.T) {
	var b strings.Builder
	b.WriteString("servers:\n  - name: s\n    address: 127.0.0.1\n    key_file: /k\ngroups:\n  - name: g\n    servers: &l0 [")
	b.WriteString(strings.TrimSuffix(strings.Repeat("s, ", 100), ", "))
	b.WriteString("]\n")
	for i := 1; i <= 1100; i++ {
		b.WriteString("  - name: g" + strconv.Itoa(i) + "\n    servers: *l0\n")
	}
	_, err := Parse([]byte(b.String()), "wide.yaml")
	if err == nil || !strings.Contains(err.Error(), "expands to more than") {
		t.Fatalf("wide alias expansion: %v, want the node budget's refusal", err)
	}
}
