package tacplus_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tacagent/tacagent/tacplus"
)

// Edge values: the largest field each length byte or word can describe (sections 5.1-7.2 use 8-bit
// lengths for user, port, rem_addr, START data and each argument, 16-bit ones for messages and data),
// the largest argument count (255, sections 6.1, 7.1), and all-empty bodies (section 4.1: unused fields
// have length 0). The contents also stay inside what tacquito accepts, so the differential tests reuse them.
var (
	max8       = strings.Repeat("u", 255)
	printable8 = printableRun(255)
	bytes8     = byteRun(255, 0xff)
	ascii16    = byteRun(0xffff, 0x80) // every US-ASCII byte, controls included (user_msg is opaque)
	msg16      = printableRun(0xffff)
	arg255     = "a=" + printableRun(253)
	args255    = repeat(arg255, tacplus.MaxArgCount)
	shortArgs  = repeat("x*1", tacplus.MaxArgCount)
)

func printableRun(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(0x20 + i%0x5f)
	}
	return string(b)
}

// byteRun returns n bytes cycling through 0 .. mod-1.
func byteRun(n, mod int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % mod)
	}
	return string(b)
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// edgeCases returns bodies at the limits. big marks bodies above the default 64 KiB maximum.
func edgeCases() []struct {
	sample
	big bool
} {
	type e = struct {
		sample
		big bool
	}
	return []e{
		{sample{"authen_start_empty", 1, &tacplus.AuthenStart{Action: tacplus.ActionLogin, Type: tacplus.AuthenTypeASCII}}, false},
		{sample{"authen_start_max", 1, &tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: tacplus.MaxPrivLvl,
			Type: tacplus.AuthenTypeMSCHAPv2, Service: tacplus.ServiceFWProxy, User: max8, Port: printable8, RemAddr: printable8, Data: bytes8}}, false},
		{sample{"authen_reply_empty", 2, &tacplus.AuthenReply{Status: tacplus.AuthenStatusFail}}, false},
		{sample{"authen_reply_max_msg", 2, &tacplus.AuthenReply{Status: tacplus.AuthenStatusError, ServerMsg: msg16[:0xffff-6]}}, false},
		{sample{"authen_reply_max_both", 2, &tacplus.AuthenReply{Status: tacplus.AuthenStatusGetData, ServerMsg: msg16, Data: ascii16}}, true},
		{sample{"authen_continue_empty", 3, &tacplus.AuthenContinue{}}, false},
		{sample{"authen_continue_max", 3, &tacplus.AuthenContinue{UserMsg: ascii16[:0xffff-5]}}, false},
		{sample{"authen_continue_max_both", 3, &tacplus.AuthenContinue{UserMsg: ascii16, Data: ascii16}}, true},
		{sample{"author_request_empty", 1, &tacplus.AuthorRequest{}}, false},
		{sample{"author_request_255_short_args", 1, &tacplus.AuthorRequest{Method: tacplus.MethodLine, Type: tacplus.AuthenTypeNotSet,
			User: max8, Port: printable8, RemAddr: printable8, Args: shortArgs}}, false},
		{sample{"author_request_255_max_args", 1, &tacplus.AuthorRequest{Method: tacplus.MethodRADIUS, Args: args255}}, true},
		{sample{"author_response_empty", 2, &tacplus.AuthorResponse{Status: tacplus.AuthorStatusFail}}, false},
		{sample{"author_response_255_args", 2, &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassRepl, Args: args255[:250]}}, false},
		{sample{"author_response_max", 2, &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassRepl, Args: args255,
			ServerMsg: msg16, Data: msg16}}, true},
		{sample{"acct_request_minimal", 1, &tacplus.AcctRequest{Flags: tacplus.AcctFlagStop}}, false},
		{sample{"acct_request_255_args", 1, &tacplus.AcctRequest{Flags: tacplus.AcctFlagWatchdog, Method: tacplus.MethodGuest,
			User: max8, Port: printable8, RemAddr: printable8, Args: args255[:250]}}, false},
		{sample{"acct_reply_empty", 2, &tacplus.AcctReply{Status: tacplus.AcctStatusError}}, false},
		{sample{"acct_reply_max", 2, &tacplus.AcctReply{Status: tacplus.AcctStatusSuccess, ServerMsg: msg16, Data: msg16}}, true},
	}
}

// allCases is every sample and edge case.
func allCases() []struct {
	sample
	big bool
} {
	out := edgeCases()
	for _, s := range samples() {
		out = append(out, struct {
			sample
			big bool
		}{s, false})
	}
	return out
}

// TestRoundTripBody encodes every body, decodes it into a fresh body and into a reused one (whose Args
// storage is larger than needed and holds stale values), and re-encodes it to the same bytes.
func TestRoundTripBody(t *testing.T) {
	for _, c := range allCases() {
		t.Run(c.name, func(t *testing.T) {
			wire := mustAppendBody(t, c.body)
			fresh := freshBody(c.body)
			if err := fresh.Unmarshal(wire); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !equalBodies(fresh, c.body) {
				t.Fatalf("fresh decode differs:\n got %#v\nwant %#v", fresh, c.body)
			}
			reused := staleBody(c.body)
			if err := reused.Unmarshal(wire); err != nil {
				t.Fatalf("Unmarshal into reused body: %v", err)
			}
			if !equalBodies(reused, c.body) {
				t.Fatalf("reused decode differs:\n got %#v\nwant %#v", reused, c.body)
			}
			if again := mustAppendBody(t, fresh); !bytes.Equal(again, wire) {
				t.Fatalf("re-encoding differs")
			}
			// A prefix of the body must never decode: a short input is an error, not a zero value.
			for n := 0; n < len(wire) && n < 600; n++ {
				if err := freshBody(c.body).Unmarshal(wire[:n]); err == nil {
					t.Fatalf("a %d-byte prefix of a %d-byte body decoded", n, len(wire))
				}
			}
		})
	}
}

// staleBody returns a body of b's type that has already decoded something else, with room for 300 args.
func staleBody(b tacplus.Body) tacplus.Body {
	old := repeat("stale=1", 300)
	switch b.(type) {
	case *tacplus.AuthorRequest:
		return &tacplus.AuthorRequest{User: "stale", Args: old}
	case *tacplus.AuthorResponse:
		return &tacplus.AuthorResponse{ServerMsg: "stale", Args: old}
	case *tacplus.AcctRequest:
		return &tacplus.AcctRequest{User: "stale", Args: old}
	case *tacplus.AuthenStart:
		return &tacplus.AuthenStart{User: "stale", Data: "stale"}
	case *tacplus.AuthenReply:
		return &tacplus.AuthenReply{ServerMsg: "stale", Data: "stale"}
	case *tacplus.AuthenContinue:
		return &tacplus.AuthenContinue{UserMsg: "stale", Data: "stale"}
	case *tacplus.AcctReply:
		return &tacplus.AcctReply{ServerMsg: "stale", Data: "stale"}
	}
	panic("unknown body type")
}

// TestRoundTripPacket sends every body as a whole packet through both modes of section 4.5 and decodes it
// with the receiving role, with Codec.Decode and with Reader.Next + DecodeBody.
func TestRoundTripPacket(t *testing.T) {
	for _, c := range allCases() {
		for _, mode := range []struct {
			name string
			opts tacplus.Options
		}{
			{"obfuscated", tacplus.Options{Key: testKey}},
			{"unencrypted", tacplus.Options{Unencrypted: true, AllowUnencrypted: true}},
		} {
			t.Run(c.name+"/"+mode.name, func(t *testing.T) {
				o := mode.opts
				if c.big {
					o.MaxBodyLen = 1 << 20
				}
				o.Role = roleFor(c.seq)
				rx := newCodec(t, o)
				o.Role = tacplus.RoleClient
				if o.Role == rx.Role() {
					o.Role = tacplus.RoleServer
				}
				tx := newCodec(t, o)
				h := c.header()
				h.Flags = tacplus.FlagSingleConnect
				pkt := mustPacket(t, tx, h, c.body)
				if obf := mode.opts.Key != nil; obf && bytes.Contains(pkt[tacplus.HeaderLen:], wireFor(t, c.body)) {
					t.Fatalf("obfuscated packet carries the clear body")
				}
				gotH, gotB, err := rx.Decode(pkt)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if gotH.SeqNo != h.SeqNo || gotH.SessionID != h.SessionID || gotH.Type != c.body.PacketType() ||
					gotH.Flags&tacplus.FlagSingleConnect == 0 || gotH.Version != tacplus.DefaultVersion(c.body) {
					t.Fatalf("Decode header %v", gotH)
				}
				if !equalBodies(gotB, c.body) {
					t.Fatalf("Decode body differs")
				}
				rh, raw, err := rx.NewReader(bytes.NewReader(pkt)).Next()
				if err != nil {
					t.Fatalf("Reader.Next: %v", err)
				}
				nb := freshBody(c.body)
				if err := rx.DecodeBody(rh, raw, nb); err != nil || !equalBodies(nb, c.body) {
					t.Fatalf("Reader.Next + DecodeBody: %v", err)
				}
			})
		}
	}
}

func wireFor(t testing.TB, b tacplus.Body) []byte { return mustAppendBody(t, b) }

// TestMaxBodyLen checks the configurable limit of section 4.1 ("Implementations MUST allow control over
// maximum packet sizes"): 64 KiB by default, enforced on encode, on Decode and by the Reader before it reads
// the body.
func TestMaxBodyLen(t *testing.T) {
	if got := keyedCodec(t, tacplus.RoleClient).MaxBodyLen(); got != 1<<16 {
		t.Fatalf("default MaxBodyLen %d, want 65536", got)
	}
	reply := &tacplus.AuthenReply{Status: tacplus.AuthenStatusPass, ServerMsg: msg16[:100]}
	for _, limit := range []uint32{105, 106, 107} { // the body is 106 bytes
		small := newCodec(t, tacplus.Options{Role: tacplus.RoleClient, Key: testKey, MaxBodyLen: limit})
		wantOK := limit >= 106
		_, err := small.Marshal(tacplus.Header{SeqNo: 2}, reply)
		if (err == nil) != wantOK || (err != nil && tacplus.ReasonOf(err) != tacplus.ReasonTooLarge) {
			t.Fatalf("limit %d: Marshal err %v", limit, err)
		}
		pkt := mustPacket(t, keyedCodec(t, tacplus.RoleServer), tacplus.Header{SeqNo: 2}, reply)
		if _, _, err := small.Decode(pkt); (err == nil) != wantOK || (err != nil && tacplus.ReasonOf(err) != tacplus.ReasonTooLarge) {
			t.Fatalf("limit %d: Decode err %v", limit, err)
		}
		// The Reader refuses from the header alone: it must not consume the body.
		r := bytes.NewReader(pkt)
		if _, _, err := small.NewReader(r).Next(); (err == nil) != wantOK {
			t.Fatalf("limit %d: Next err %v", limit, err)
		} else if err != nil && (tacplus.ReasonOf(err) != tacplus.ReasonTooLarge || r.Len() != len(pkt)-tacplus.HeaderLen) {
			t.Fatalf("limit %d: Next err %v, %d bytes left unread", limit, err, r.Len())
		}
	}
}
