package localapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestAccessRule(t *testing.T) {
	groups := func(gs ...uint32) func() ([]uint32, error) {
		return func() ([]uint32, error) { return gs, nil }
	}
	broken := func() ([]uint32, error) { return nil, errors.New("no such process") }
	tests := []struct {
		name   string
		rule   accessRule
		caller Caller
		groups func() ([]uint32, error)
		want   bool
	}{
		{"root, no group configured", accessRule{}, Caller{UID: 0, GID: 0}, groups(), true},
		{"non-root, no group configured", accessRule{}, Caller{UID: 1000, GID: 0}, groups(0), false},
		{"non-root, primary group matches", accessRule{gid: 120, hasGroup: true}, Caller{UID: 1000, GID: 120}, broken, true},
		{"non-root, supplementary group matches", accessRule{gid: 120, hasGroup: true}, Caller{UID: 1000, GID: 1000}, groups(4, 120), true},
		{"non-root, not in the group", accessRule{gid: 120, hasGroup: true}, Caller{UID: 1000, GID: 1000}, groups(4, 27), false},
		{"non-root, groups unreadable", accessRule{gid: 120, hasGroup: true}, Caller{UID: 1000, GID: 1000}, broken, false},
		{"gid 0 is not root", accessRule{}, Caller{UID: 1000, GID: 0}, groups(), false},
		{"root is allowed with a group configured", accessRule{gid: 120, hasGroup: true}, Caller{UID: 0, GID: 0}, broken, true},
		{"a non-root check (tests)", accessRule{rootUID: 4242, gid: 120, hasGroup: true}, Caller{UID: 0, GID: 0}, groups(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := tt.rule.allows(tt.caller, tt.groups)
			if got != tt.want || (got == (why != "")) {
				t.Fatalf("allows(%v) = %v %q, want %v", tt.caller, got, why, tt.want)
			}
		})
	}
}

func TestParseGroupsLine(t *testing.T) {
	tests := []struct {
		in      string
		want    []uint32
		wantErr bool
	}{
		{"Name:\tbash\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 27 1000 \nNgid:\t0\n", []uint32{4, 24, 27, 1000}, false},
		{"Groups:\t\n", nil, false},
		{"Groups:\t4 x\n", nil, true},
		{"Name:\tbash\n", nil, true},
	}
	for _, tt := range tests {
		got, err := parseGroupsLine([]byte(tt.in))
		if (err != nil) != tt.wantErr || fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("parseGroupsLine(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	// This process's own line parses.
	if _, err := procGroups(os.Getpid()); err != nil {
		t.Errorf("procGroups(self): %v", err)
	}
}

// TestPeerCheckNonRoot: a real process of another uid, with or without the allowed group (primary or
// supplementary), calls through the socket; the kernel's SO_PEERCRED/SO_PEERGROUPS decide.
func TestPeerCheckNonRoot(t *testing.T) {
	bin := childBinary(t)
	const nobody = 65534
	tests := []struct {
		name   string
		group  string
		gid    uint32
		groups []uint32
		status int
	}{
		{"root only: another uid is refused", "", nobody, nil, http.StatusForbidden},
		{"allowed by primary group", "nogroup", nobody, nil, http.StatusOK},
		{"allowed by supplementary group", "adm", nobody, []uint32{4}, http.StatusOK},
		{"not in the allowed group", "adm", nobody, []uint32{24}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, newFakeBackend(), func(c *Config) { c.Group = tt.group })
			status, body := runAsPeer(t, bin, ts.sock, nobody, tt.gid, tt.groups, "/v1/status", "")
			if status != tt.status {
				t.Fatalf("got %d %s, want %d", status, body, tt.status)
			}
			if tt.status == http.StatusForbidden {
				if !strings.Contains(body, `"code":"forbidden"`) || !strings.Contains(body, "uid 65534") {
					t.Errorf("body %s", body)
				}
				if got := testutil.ToFloat64(ts.metrics.APIRejected.WithLabelValues("peer")); got != 1 {
					t.Errorf("api_rejected_total{reason=peer} = %v", got)
				}
			}
		})
	}
}

// TestPeerCheckRootRefused: with the root rule pointed elsewhere and a group this process is not in, even
// this (root) process is refused.
func TestPeerCheckRootRefused(t *testing.T) {
	ts := startServer(t, newFakeBackend(), func(c *Config) { c.Group, c.rootUID = "nogroup", 4242 })
	r := ts.do(t, http.MethodGet, "/v1/status", "")
	if r.status != http.StatusForbidden || r.err.Code != CodeForbidden {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

// TestConversationOtherUID: a conversation id is useless to another uid.
func TestConversationOtherUID(t *testing.T) {
	bin := childBinary(t)
	b := newFakeBackend()
	ts := startServer(t, b, func(c *Config) { c.Group = "nogroup" })
	var res AuthenResult
	ts.post(t, "/v1/authenticate", AuthenRequest{User: "bob"}, &res)
	if res.Result != ResultPrompt {
		t.Fatalf("start: %+v", res)
	}
	status, body := runAsPeer(t, bin, ts.sock, 65534, 65534, nil, "/v1/conversations/"+res.Conversation, `{"answer":"pw"}`)
	if status != http.StatusForbidden || !strings.Contains(body, "another user") {
		t.Fatalf("other uid: %d %s", status, body)
	}
	// The owner can still finish it.
	var fin AuthenResult
	if r := ts.post(t, "/v1/conversations/"+res.Conversation, ConversationRequest{Answer: "pw"}, &fin); r.status != 200 || fin.Result != ResultPass {
		t.Fatalf("owner: %d %s", r.status, r.body)
	}
}

// childBinary copies the test binary where another uid can run it.
func childBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "localapi-peer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(dir, "peer")
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// runAsPeer runs bin (the test binary, in peerChild mode) as uid/gid with the given supplementary groups
// and returns the status and body it got.
func runAsPeer(t *testing.T, bin, sock string, uid, gid uint32, groups []uint32, path, body string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = []string{childEnv + "=" + sock, "LOCALAPI_TEST_PATH=" + path, "LOCALAPI_TEST_BODY=" + body}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups, NoSetGroups: false}}
	if groups == nil {
		cmd.SysProcAttr.Credential.Groups = []uint32{}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("peer process: %v: %s", err, out)
	}
	var status int
	rest := ""
	if _, err := fmt.Sscanf(string(out), "%d", &status); err != nil {
		t.Fatalf("peer output %q", out)
	}
	if i := strings.IndexByte(string(out), ' '); i >= 0 {
		rest = string(out[i+1:])
	}
	if !json.Valid([]byte(rest)) {
		t.Fatalf("peer got a body that is not JSON: %q", rest)
	}
	return status, rest
}
