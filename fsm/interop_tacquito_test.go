package fsm_test

// Interop of the codec and the state machines with an independent server: tacquito's, in-process on
// loopback. A small synchronous driver stands in for the actor layer: it writes Send effects, reads one
// reply whenever the machine waits for the server, and answers prompts from a script.

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/internal/tacquitoserver"
	"github.com/tacagent/tacagent/tacplus"
)

const interopKey = "interop-shared-key-0123"

type driver struct {
	t     *testing.T
	conn  net.Conn
	codec *tacplus.Codec
	r     *tacplus.Reader
	buf   []byte
}

// run drives m to completion and returns its completion effect and the prompts it showed.
func (d *driver) run(m fsm.Machine, answers ...string) (fsm.Effect, []fsm.Prompt) {
	d.t.Helper()
	var prompts []fsm.Prompt
	effects, err := m.Step(fsm.Start())
	for {
		if err != nil {
			d.t.Fatalf("step refused: %v", err)
		}
		var next *fsm.Event
		for _, e := range effects {
			switch e.Kind {
			case fsm.EffectSend:
				d.buf, err = d.codec.AppendPacket(d.buf[:0], e.Header, e.Body)
				if err != nil {
					d.t.Fatalf("encoding %v: %v", e, err)
				}
				if _, err := d.conn.Write(d.buf); err != nil {
					d.t.Fatalf("write: %v", err)
				}
			case fsm.EffectPrompt:
				prompts = append(prompts, e.Prompt)
				if len(answers) == 0 {
					d.t.Fatalf("unexpected prompt %+v", e.Prompt)
				}
				ev := fsm.Input([]byte(answers[0]))
				answers = answers[1:]
				next = &ev
			case fsm.EffectComplete:
				return e, prompts
			}
		}
		if next == nil && m.Wait() == fsm.WaitServer {
			ev := d.read()
			next = &ev
		}
		if next == nil {
			d.t.Fatalf("machine in %s waits for nothing and did not complete", m.StateName())
		}
		effects, err = m.Step(*next)
	}
}

func (d *driver) read() fsm.Event {
	d.t.Helper()
	_ = d.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, body, err := d.r.Next()
	if err != nil {
		d.t.Fatalf("reading a reply: %v", err)
	}
	b, err := d.codec.NewBody(h)
	if err == nil {
		err = d.codec.DecodeBody(h, body, b)
	}
	if err != nil {
		return fsm.BadPacket(h, err)
	}
	return fsm.Packet(h, b)
}

func newSessionID(t *testing.T) uint32 {
	id, err := tacplus.NewSessionID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestInteropTacquitoServer(t *testing.T) {
	srv, err := tacquitoserver.Start(tacquitoserver.Config{Key: []byte(interopKey), Users: []tacquitoserver.User{
		{Name: "alice", Password: "alice-pw", PrivLvl: 15, Permit: []string{"show"}, Deny: []string{"reload"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	codec, err := tacplus.NewCodec(tacplus.Options{Key: []byte(interopKey)})
	if err != nil {
		t.Fatal(err)
	}
	// tacquito keeps the connection open between sessions, so every session below shares it.
	d := &driver{t: t, conn: conn, codec: codec, r: codec.NewReader(conn)}

	authen := func(cfg fsm.AuthenConfig) fsm.Machine {
		cfg.SessionID = newSessionID(t)
		m, err := fsm.NewAuthen(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	t.Run("PAP pass", func(t *testing.T) {
		e, _ := d.run(authen(fsm.AuthenConfig{Type: tacplus.AuthenTypePAP, User: "alice", Password: []byte("alice-pw"), Port: "tty1"}))
		if e.Err != nil || e.Authen.Status != tacplus.AuthenStatusPass {
			t.Fatalf("got %v (%v), want PASS", e.Authen, e.Err)
		}
	})
	t.Run("PAP fail", func(t *testing.T) {
		e, _ := d.run(authen(fsm.AuthenConfig{Type: tacplus.AuthenTypePAP, User: "alice", Password: []byte("wrong"), Port: "tty1"}))
		if !errors.Is(e.Err, tacplus.ErrAuthenticationFailed) || e.Authen.Status != tacplus.AuthenStatusFail {
			t.Fatalf("got %v (%v), want FAIL", e.Authen, e.Err)
		}
	})
	t.Run("ASCII login", func(t *testing.T) {
		e, prompts := d.run(authen(fsm.AuthenConfig{Type: tacplus.AuthenTypeASCII, Port: "tty1"}), "alice", "alice-pw")
		if e.Err != nil || e.Authen.User != "alice" {
			t.Fatalf("got %v (%v), want PASS for alice", e.Authen, e.Err)
		}
		if len(prompts) != 2 || prompts[0].Status != tacplus.AuthenStatusGetUser || prompts[0].NoEcho ||
			prompts[1].Status != tacplus.AuthenStatusGetPass || !prompts[1].NoEcho {
			t.Fatalf("prompts %+v, want GETUSER (echo) then GETPASS (NOECHO)", prompts)
		}
	})

	author := func(args ...string) fsm.Effect {
		m, err := fsm.NewAuthor(fsm.AuthorConfig{SessionID: newSessionID(t), Method: tacplus.MethodTACACSPlus, PrivLvl: 1,
			Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin, User: "alice", Port: "tty1", Args: args})
		if err != nil {
			t.Fatal(err)
		}
		e, _ := d.run(m)
		return e
	}
	t.Run("authorization permit with AV pairs", func(t *testing.T) {
		e := author("service=shell", "cmd=")
		if e.Err != nil {
			t.Fatalf("session authorization: %v", e.Err)
		}
		if a, ok := e.Author.Returned.Get("priv-lvl"); !ok || a.Value != "15" {
			t.Fatalf("returned %v, want priv-lvl=15", e.Author.Returned)
		}
		if e := author("service=shell", "cmd=show", "cmd-arg=version"); e.Err != nil {
			t.Fatalf("command authorization: %v", e.Err)
		}
	})
	t.Run("authorization deny", func(t *testing.T) {
		e := author("service=shell", "cmd=reload")
		if !errors.Is(e.Err, tacplus.ErrDenied) || e.Author.Status != tacplus.AuthorStatusFail {
			t.Fatalf("got %v (%v), want FAIL", e.Author, e.Err)
		}
	})
	t.Run("accounting start and stop", func(t *testing.T) {
		for _, f := range []tacplus.AcctFlag{tacplus.AcctFlagStart, tacplus.AcctFlagStop} {
			m, err := fsm.NewAcct(fsm.AcctConfig{SessionID: newSessionID(t), Flags: f, Method: tacplus.MethodTACACSPlus,
				PrivLvl: 1, Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin, User: "alice", Port: "tty1",
				Args: []string{"task_id=31", "service=shell", "start_time=1700000000"}})
			if err != nil {
				t.Fatal(err)
			}
			if e, _ := d.run(m); e.Err != nil || e.Acct.Status != tacplus.AcctStatusSuccess {
				t.Fatalf("%s: got %v (%v), want SUCCESS", f, e.Acct, e.Err)
			}
		}
		recs := srv.Accounting()
		if len(recs) != 2 || recs[0].Flags != uint8(tacplus.AcctFlagStart) || recs[1].Flags != uint8(tacplus.AcctFlagStop) {
			t.Fatalf("tacquito recorded %+v, want START then STOP", recs)
		}
	})
}
