package proxy

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/tacplus"
)

// stubBackend answers at once: PASS after one password prompt for ASCII, PASS for PAP, PASS_ADD,
// SUCCESS. The fuzz target exercises the client-facing path, not the agent.
type stubBackend struct{}

func (stubBackend) Authenticate(ctx context.Context, req agent.AuthenRequest, conv agent.Conversation) (*agent.AuthenReply, error) {
	if req.Type == tacplus.AuthenTypeASCII {
		if _, err := conv(ctx, agent.Prompt{Message: "Password: ", NoEcho: true, Status: tacplus.AuthenStatusGetPass}); err != nil {
			return nil, &tacplus.Error{Class: tacplus.ErrAborted, Err: err}
		}
	}
	return &agent.AuthenReply{AuthenResult: fsm.AuthenResult{Status: tacplus.AuthenStatusPass, User: req.User}}, nil
}

func (stubBackend) Authorize(context.Context, agent.AuthorRequest) (*agent.AuthorReply, error) {
	return &agent.AuthorReply{AuthorResult: fsm.AuthorResult{Status: tacplus.AuthorStatusPassAdd, Returned: fsm.Args{}}}, nil
}

func (stubBackend) Account(context.Context, agent.AcctRequest) (string, error) { return "", nil }

// fuzzSeeds are whole client streams: valid sessions of every kind, and a few broken ones.
func fuzzSeeds(tb testing.TB) [][]byte {
	codec, err := tacplus.NewCodec(tacplus.Options{Role: tacplus.RoleClient, Key: localKey})
	if err != nil {
		tb.Fatal(err)
	}
	pkt := func(h tacplus.Header, b tacplus.Body) []byte {
		p, err := codec.Marshal(h, b)
		if err != nil {
			tb.Fatal(err)
		}
		return p
	}
	v0 := tacplus.VersionByte(0)
	sc := tacplus.FlagSingleConnect
	asciiStart := pkt(tacplus.Header{Version: v0, Type: tacplus.TypeAuthen, SeqNo: 1, SessionID: 7, Flags: sc},
		&tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 1, Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin, User: "alice"})
	asciiCont := pkt(tacplus.Header{Version: v0, Type: tacplus.TypeAuthen, SeqNo: 3, SessionID: 7, Flags: sc}, &tacplus.AuthenContinue{UserMsg: "pw"})
	abort := pkt(tacplus.Header{Version: v0, Type: tacplus.TypeAuthen, SeqNo: 3, SessionID: 7, Flags: sc}, &tacplus.AuthenContinue{Flags: tacplus.FlagAbort, Data: "bye"})
	pap := pkt(papHeader(8, sc), papStart("alice", "pw"))
	author := pkt(tacplus.Header{Version: v0, Type: tacplus.TypeAuthor, SeqNo: 1, SessionID: 9, Flags: sc},
		&tacplus.AuthorRequest{Method: tacplus.MethodTACACSPlus, PrivLvl: 1, Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin, User: "alice", Args: []string{"service=shell", "cmd=show"}})
	acct := pkt(tacplus.Header{Version: v0, Type: tacplus.TypeAcct, SeqNo: 1, SessionID: 10, Flags: sc},
		&tacplus.AcctRequest{Flags: tacplus.AcctFlagStart, Method: tacplus.MethodTACACSPlus, PrivLvl: 1, Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin, User: "alice", Args: []string{"task_id=1"}})
	cat := func(ps ...[]byte) []byte {
		var b []byte
		for _, p := range ps {
			b = append(b, p...)
		}
		return b
	}
	return [][]byte{
		cat(asciiStart, asciiCont), cat(asciiStart, abort), cat(pap, author, acct), cat(asciiStart, pap, asciiCont, author),
		cat(pap, pap), pap[:len(pap)-3], cat(asciiCont), {0xc0}, []byte("GET / HTTP/1.0\r\n\r\n"),
	}
}

// FuzzClientStream feeds arbitrary bytes to one client connection of the front end, as a client would
// send them, and requires that the connection ends (no hang, no panic) and that every goroutine it
// started exits.
func FuzzClientStream(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	s, err := New(Config{Key: localKey, Backend: stubBackend{}, Log: zerolog.Nop(), IdleTimeout: 200 * time.Millisecond,
		ConversationTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, MaxSessionsPerClient: 4})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		cli, srv := net.Pipe()
		c := newClient(s, srv, peer{known: true})
		done := make(chan struct{})
		go func() {
			c.serve()
			close(done)
		}()
		go func() { _, _ = io.Copy(io.Discard, cli) }() // the client reads every reply
		_ = cli.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = cli.Write(stream)
		// The stream ends here: the client closes, as a real one would after its last packet.
		_ = cli.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("the client connection did not end after its stream (%d bytes)", len(stream))
		}
	})
}
