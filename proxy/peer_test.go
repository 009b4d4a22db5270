package proxy

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
)

// TestSocketOwner connects from a process of another uid (bash's /dev/tcp, run as nobody) and from this
// process, and checks that every lookup finds the uid of the client's socket, not the front end's.
func TestSocketOwner(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	type who struct {
		name string
		uid  uint32
		dial func(t *testing.T)
	}
	cases := []who{{"self", uint32(os.Getuid()), func(t *testing.T) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}}}
	if os.Getuid() == 0 {
		cases = append(cases, who{"nobody", 65534, func(t *testing.T) {
			bash, err := exec.LookPath("bash")
			if err != nil {
				t.Skip("no bash for the other-uid client")
			}
			cmd := exec.Command(bash, "-c", "exec 3<>/dev/tcp/127.0.0.1/"+port+" && read -r _")
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				stdin.Close()
				_ = cmd.Wait()
			})
		}})
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			tt.dial(t)
			c, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			client, server := c.RemoteAddr().String(), c.LocalAddr().String()
			ca, sa := netip.MustParseAddrPort(client), netip.MustParseAddrPort(server)
			for name, lookup := range map[string]func() (uint32, error){
				"socketOwner": func() (uint32, error) { return socketOwner(client, server) },
				"sock_diag":   func() (uint32, error) { return diagOwner(ca, sa) },
				"proc":        func() (uint32, error) { return procOwner(client, ca, sa) },
			} {
				uid, err := lookup()
				if err != nil || uid != tt.uid {
					t.Errorf("%s: uid %d, %v; want %d", name, uid, err, tt.uid)
				}
			}
			// The front end's own socket is not the client's: reversed addresses name the accepted socket.
			if uid, err := diagOwner(sa, ca); err != nil || uid != uint32(os.Getuid()) {
				t.Errorf("reverse lookup: %d %v", uid, err)
			}
		})
	}
	if _, err := socketOwner("127.0.0.1:1", "127.0.0.1:2"); err == nil {
		t.Error("a socket that does not exist was found")
	}
}
