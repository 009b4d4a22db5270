package daemon

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/proxy"
	"github.com/tacagent/tacagent/spool"
	"github.com/tacagent/tacagent/tacplus"
)

var frontKey = []byte("daemon-front-end-local-key-01")

// frontDaemon is a daemon over the server at addr (spool at path when not ""), with the local API and
// the TACACS+ front end; it returns the front end's address.
func frontDaemon(t testing.TB, key []byte, addr, path string) (*Daemon, string) {
	t.Helper()
	s := Settings{Agent: agent.Config{Servers: []agent.Server{{Addr: addr, Key: key, Timeout: 2 * time.Second, DialTimeout: time.Second}}},
		Groups: []string{"default"}}
	if path != "" {
		s.Spool = &spool.Config{Path: path, RetryInitial: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond}
	}
	d, err := New(s, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.ServeAPI(filepath.Join(t.TempDir(), "tacagent.sock"), 0o600, localapi.Config{}); err != nil {
		t.Fatal(err)
	}
	if err := d.ServeTACACS("127.0.0.1:0", false, proxy.Config{Key: frontKey}, localapi.RateLimit{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, d) })
	return d, d.TACACSAddr()
}

// acctThrough sends one accounting START through the front end and returns the reply's status.
func acctThrough(t *testing.T, addr, task string) tacplus.AcctStatus {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	codec, _ := tacplus.NewCodec(tacplus.Options{Role: tacplus.RoleClient, Key: frontKey})
	pkt, err := codec.Marshal(tacplus.Header{Version: tacplus.VersionByte(0), Type: tacplus.TypeAcct, SeqNo: 1, SessionID: 77},
		&tacplus.AcctRequest{Flags: tacplus.AcctFlagStart, Method: tacplus.MethodTACACSPlus, PrivLvl: 1, Type: tacplus.AuthenTypeASCII,
			Service: tacplus.ServiceLogin, User: "alice", Port: "tty3", Args: []string{"task_id=" + task, "service=shell"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(pkt); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	h, raw, err := codec.NewReader(nc).Next()
	if err != nil {
		t.Fatal(err)
	}
	var r tacplus.AcctReply
	if err := codec.DecodeBody(h, raw, &r); err != nil {
		t.Fatal(err)
	}
	return r.Status
}

// TestFrontEndAccountingIsDurable: with the spool on, a record sent through the front end while every
// server is down is answered SUCCESS (it is in the spool file), survives a restart of the daemon, and
// reaches the server the next daemon knows. With the spool off the same record gets ERROR.
func TestFrontEndAccountingIsDurable(t *testing.T) {
	key := []byte("daemon-spool-key-0123")
	path := filepath.Join(t.TempDir(), "spool.db")
	down := closedAddr(t)

	t.Run("spool off, server down", func(t *testing.T) {
		_, addr := frontDaemon(t, key, down, "")
		if st := acctThrough(t, addr, "off-1"); st != tacplus.AcctStatusError {
			t.Fatalf("%v, want ERROR: nothing kept the record", st)
		}
	})
	t.Run("spool on, server down", func(t *testing.T) {
		d, addr := frontDaemon(t, key, down, path)
		if st := acctThrough(t, addr, "kept-1"); st != tacplus.AcctStatusSuccess {
			t.Fatalf("%v, want SUCCESS once durable", st)
		}
		if n := d.Spool().Stats().Depth; n != 1 {
			t.Fatalf("spool depth %d after SUCCESS", n)
		}
	})
	t.Run("next start delivers it", func(t *testing.T) {
		srv := startTestServer(t, key)
		_, addr := frontDaemon(t, key, srv.Addr(), path)
		rec := waitRecord(t, srv, "kept-1")
		if rec.User != "alice" || rec.Port != "tty3" || rec.Flags != tacplus.AcctFlagStart {
			t.Fatalf("%+v", rec)
		}
		if st := acctThrough(t, addr, "live-1"); st != tacplus.AcctStatusSuccess {
			t.Fatalf("%v", st)
		}
		waitRecord(t, srv, "live-1")
	})
}

// TestFrontEndThroughDaemon: a PAP login and an authorization through the daemon's front end reach the
// server; the front end stops with the daemon.
func TestFrontEndThroughDaemon(t *testing.T) {
	key := []byte("daemon-front-server-key-01")
	srv := startTestServer(t, key)
	_, addr := frontDaemon(t, key, srv.Addr(), "")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	codec, _ := tacplus.NewCodec(tacplus.Options{Role: tacplus.RoleClient, Key: frontKey})
	pkt, _ := codec.Marshal(tacplus.Header{Version: tacplus.VersionByte(1), Type: tacplus.TypeAuthen, SeqNo: 1, SessionID: 5},
		&tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 1, Type: tacplus.AuthenTypePAP, Service: tacplus.ServiceLogin, User: "alice", Data: "pw"})
	nc.Write(pkt)
	_ = nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	h, raw, err := codec.NewReader(nc).Next()
	if err != nil {
		t.Fatal(err)
	}
	var r tacplus.AuthenReply
	if err := codec.DecodeBody(h, raw, &r); err != nil || r.Status != tacplus.AuthenStatusPass {
		t.Fatalf("%+v %v", r, err)
	}
	if st := srv.Stats(); st.AuthenPass != 1 {
		t.Fatalf("server %+v", st)
	}
}
