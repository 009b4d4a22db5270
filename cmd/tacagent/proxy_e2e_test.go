package main

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	tq "github.com/facebookincubator/tacquito"

	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// TestTACACSFrontEndE2E: `tacagent run` with listen.tacacs serves tacquito's client on loopback with the
// local key: a PAP login and an accounting record reach the server, /metrics counts them, and SIGTERM
// stops the daemon with the client still connected.
func TestTACACSFrontEndE2E(t *testing.T) {
	srv := testServer(t, tacplustest.Config{Users: users, AuthorRules: rules, SingleConnect: true})
	dir := t.TempDir()
	local := filepath.Join(dir, "local.key")
	const localKey = "e2e-local-front-end-key-42"
	if err := os.WriteFile(local, []byte(localKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	d := startDaemon(t, serverEntry("primary", srv.Addr()), "listen:\n  tacacs:\n    address: "+addr+"\n    key_file: "+local+"\n")
	eventually(t, 15*time.Second, "the front end listening", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	c, err := tq.NewClient(tq.SetClientDialer("tcp", addr, []byte(localKey)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hdr := func(typ tq.HeaderType, minor uint8, id tq.SessionID) *tq.Header {
		return tq.NewHeader(tq.SetHeaderVersion(tq.Version{MajorVersion: tq.MajorVersion, MinorVersion: minor}),
			tq.SetHeaderType(typ), tq.SetHeaderSeqNo(1), tq.SetHeaderSessionID(id), tq.SetHeaderFlag(tq.SingleConnect))
	}
	start := tq.NewAuthenStart(tq.SetAuthenStartAction(tq.AuthenActionLogin), tq.SetAuthenStartPrivLvl(tq.PrivLvlUser),
		tq.SetAuthenStartType(tq.AuthenTypePAP), tq.SetAuthenStartService(tq.AuthenServiceLogin),
		tq.SetAuthenStartUser("bob"), tq.SetAuthenStartData("bob-pw"))
	resp, err := c.Send(tq.NewPacket(tq.SetPacketHeader(hdr(tq.Authenticate, 1, 41)), tq.SetPacketBodyUnsafe(start)))
	if err != nil {
		t.Fatal(err)
	}
	var r tq.AuthenReply
	if err := tq.Unmarshal(resp.Body, &r); err != nil || r.Status != tq.AuthenStatusPass {
		t.Fatalf("login: %+v %v\n%s", r, err, d.Stderr.String())
	}
	acct := tq.NewAcctRequest(tq.SetAcctRequestFlag(tq.AcctFlagStart), tq.SetAcctRequestMethod(tq.AuthenMethodTacacsPlus),
		tq.SetAcctRequestPrivLvl(tq.PrivLvlUser), tq.SetAcctRequestType(tq.AuthenTypeASCII), tq.SetAcctRequestService(tq.AuthenServiceLogin),
		tq.SetAcctRequestUser("bob"), tq.SetAcctRequestArgs(tq.Args{"task_id=fe-1", "service=shell"}))
	resp, err = c.Send(tq.NewPacket(tq.SetPacketHeader(hdr(tq.Accounting, 0, 42)), tq.SetPacketBodyUnsafe(acct)))
	if err != nil {
		t.Fatal(err)
	}
	var ar tq.AcctReply
	if err := tq.Unmarshal(resp.Body, &ar); err != nil || ar.Status != tq.AcctReplyStatusSuccess {
		t.Fatalf("accounting: %+v %v", ar, err)
	}
	eventually(t, 15*time.Second, "the record at the server", func() bool {
		for _, rec := range srv.Accounting() {
			if rec.TaskID == "fe-1" {
				return true
			}
		}
		return false
	})
	if st := srv.Stats(); st.AuthenPass != 1 {
		t.Errorf("server %+v", st)
	}
	if v := d.metricValue(`tacagent_proxy_sessions_total{kind="authen",outcome="PASS"}`); v != 1 {
		t.Errorf("tacagent_proxy_sessions_total authen PASS = %v", v)
	}
	if code := d.Stop(); code != exitOK {
		t.Errorf("exit %d with a client connected\n%s", code, d.Stderr.String())
	}
}
