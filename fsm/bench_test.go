package fsm_test

import (
	"testing"

	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/tacplus"
)

// An exchange allocates only the bodies of the packets it sends and the copy of the password and of each
// answer (they are []byte their owners wipe, so the bodies hold strings of their own): the
// machine is reused with Reset, and the replies stand for the packets the codec decodes (the packets
// themselves).

type exchange struct {
	cfg     fsm.AuthenConfig
	replies []tacplus.AuthenReply
	inputs  [][]byte
	sends   int // packets the client sends in the exchange
	copies  int // secrets and answers copied from the caller's []byte into a body's string
}

var (
	papExchange = exchange{
		cfg:     fsm.AuthenConfig{SessionID: 0x1234, Type: tacplus.AuthenTypePAP, User: "alice", Password: []byte("s3cret-pw"), Port: "tty1"},
		replies: []tacplus.AuthenReply{{Status: tacplus.AuthenStatusPass}},
		sends:   1,
		copies:  1, // the password into the START's data
	}
	asciiExchange = exchange{
		cfg: fsm.AuthenConfig{SessionID: 0x1234, Port: "tty1"},
		replies: []tacplus.AuthenReply{
			{Status: tacplus.AuthenStatusGetUser, ServerMsg: "Username: "},
			{Status: tacplus.AuthenStatusGetPass, Flags: tacplus.FlagNoEcho, ServerMsg: "Password: "},
			{Status: tacplus.AuthenStatusPass},
		},
		inputs: [][]byte{[]byte("alice"), []byte("s3cret-pw")},
		sends:  3,
		copies: 2, // each answer into its CONTINUE's user_msg
	}
)

// run drives m through x once; it returns false when the exchange does not end in PASS.
func (x *exchange) run(m *fsm.Authen) bool {
	if m.Reset(x.cfg) != nil {
		return false
	}
	effs, err := m.Step(fsm.Start())
	for i := range x.replies {
		if err != nil || len(effs) != 1 || effs[0].Kind != fsm.EffectSend {
			return false
		}
		h := effs[0].Header
		h.SeqNo++
		effs, err = m.Step(fsm.Packet(h, &x.replies[i]))
		if err == nil && len(effs) == 1 && effs[0].Kind == fsm.EffectPrompt {
			effs, err = m.Step(fsm.Input(x.inputs[i]))
		}
	}
	return err == nil && len(effs) == 1 && effs[0].Kind == fsm.EffectComplete && effs[0].Err == nil
}

func TestExchangeAllocations(t *testing.T) {
	for name, x := range map[string]*exchange{"pap": &papExchange, "ascii": &asciiExchange} {
		t.Run(name, func(t *testing.T) {
			m := new(fsm.Authen)
			ok := true
			allocs := testing.AllocsPerRun(100, func() { ok = x.run(m) && ok })
			if !ok {
				t.Fatal("the exchange did not end in PASS")
			}
			if want := x.sends + x.copies; int(allocs) != want {
				t.Errorf("%v allocations per exchange, want %d: one per packet body sent and one per secret or answer copied", allocs, want)
			}
		})
	}
}

func benchExchange(b *testing.B, x *exchange) {
	m := new(fsm.Authen)
	b.ReportAllocs()
	for b.Loop() {
		if !x.run(m) {
			b.Fatal("the exchange did not end in PASS")
		}
	}
}

func BenchmarkPAPExchange(b *testing.B)   { benchExchange(b, &papExchange) }
func BenchmarkASCIIExchange(b *testing.B) { benchExchange(b, &asciiExchange) }

// BenchmarkPAPExchangeNew makes a machine per session instead of reusing one.
func BenchmarkPAPExchangeNew(b *testing.B) {
	b.ReportAllocs()
	reply := &tacplus.AuthenReply{Status: tacplus.AuthenStatusPass}
	for b.Loop() {
		m, err := fsm.NewAuthen(papExchange.cfg)
		if err != nil {
			b.Fatal(err)
		}
		effs, _ := m.Step(fsm.Start())
		h := effs[0].Header
		h.SeqNo++
		if effs, _ = m.Step(fsm.Packet(h, reply)); effs[0].Err != nil {
			b.Fatal(effs[0].Err)
		}
	}
}

func BenchmarkAuthorExchange(b *testing.B) {
	b.ReportAllocs()
	m := new(fsm.Author)
	cfg := fsm.AuthorConfig{SessionID: 0x99, User: "alice", Args: shellShow}
	reply := &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassAdd}
	for b.Loop() {
		if err := m.Reset(cfg); err != nil {
			b.Fatal(err)
		}
		effs, _ := m.Step(fsm.Start())
		h := effs[0].Header
		h.SeqNo++
		if effs, _ = m.Step(fsm.Packet(h, reply)); effs[0].Err != nil {
			b.Fatal(effs[0].Err)
		}
	}
}
