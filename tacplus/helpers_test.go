package tacplus_test

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"github.com/tacagent/tacagent/tacplus"
)

// Fixed inputs shared by the golden, round-trip, fuzz-seed and benchmark tests.
const (
	testSession = uint32(0x5eed1234)
	testPass    = "s3cret-pw" // a password that must never show up in String() output
)

var testKey = []byte("tacagent-test-key")

// sample is one packet of every kind the codec handles, with the seq_no its sender would use.
type sample struct {
	name string
	seq  uint8
	body tacplus.Body
}

// samples returns fresh bodies (callers may mutate them): one per body type, plus the variants whose
// encoding rules differ (section 5.4.1 minor versions, abort, FOLLOW, watchdog).
func samples() []sample {
	return []sample{
		{"authen_start_pap", 1, &tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 1, Type: tacplus.AuthenTypePAP,
			Service: tacplus.ServiceLogin, User: "alice", Port: "tty1", RemAddr: "192.0.2.7", Data: testPass}},
		{"authen_start_ascii", 1, &tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 1, Type: tacplus.AuthenTypeASCII,
			Service: tacplus.ServiceLogin, Port: "tty1"}},
		{"authen_start_chpass", 1, &tacplus.AuthenStart{Action: tacplus.ActionChPass, PrivLvl: 1, Type: tacplus.AuthenTypeASCII,
			Service: tacplus.ServiceLogin, User: "alice"}},
		{"authen_start_chap", 1, &tacplus.AuthenStart{Action: tacplus.ActionSendAuth, PrivLvl: 0, Type: tacplus.AuthenTypeCHAP,
			Service: tacplus.ServicePPP, User: "bob", Data: "\x07challenge-bytes\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\xff"}},
		{"authen_reply_getpass", 2, &tacplus.AuthenReply{Status: tacplus.AuthenStatusGetPass, Flags: tacplus.FlagNoEcho, ServerMsg: "Password: "}},
		{"authen_reply_pass_banner", 2, &tacplus.AuthenReply{Status: tacplus.AuthenStatusPass, ServerMsg: "Welcome\r\n\tto the lab", Data: "\x00\x01"}},
		{"authen_continue", 3, &tacplus.AuthenContinue{UserMsg: testPass}},
		{"authen_continue_abort", 5, &tacplus.AuthenContinue{Flags: tacplus.FlagAbort, Data: "user hit ^C"}},
		{"author_request", 1, &tacplus.AuthorRequest{Method: tacplus.MethodTACACSPlus, PrivLvl: 15, Type: tacplus.AuthenTypePAP,
			Service: tacplus.ServiceLogin, User: "alice", Port: "tty1", RemAddr: "192.0.2.7",
			Args: []string{"service=shell", "cmd=show", "cmd-arg=version"}}},
		{"author_response", 2, &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassAdd, Args: []string{"priv-lvl=15", "idletime*30"}, ServerMsg: "ok"}},
		{"acct_request", 1, &tacplus.AcctRequest{Flags: tacplus.AcctFlagStart, Method: tacplus.MethodTACACSPlus, PrivLvl: 1,
			Type: tacplus.AuthenTypePAP, Service: tacplus.ServiceLogin, User: "alice", Port: "tty1", RemAddr: "192.0.2.7",
			Args: []string{"task_id=42", "service=shell"}}},
		{"acct_request_watchdog_update", 1, &tacplus.AcctRequest{Flags: tacplus.AcctFlagWatchdog | tacplus.AcctFlagStart,
			Method: tacplus.MethodLocal, Type: tacplus.AuthenTypeNotSet, Service: tacplus.ServiceNone, User: "alice"}},
		{"acct_reply", 2, &tacplus.AcctReply{Status: tacplus.AcctStatusSuccess, ServerMsg: "recorded"}},
	}
}

// sampleByName returns a fresh copy of one sample; it fails the test when the name is unknown.
func sampleByName(t testing.TB, name string) sample {
	t.Helper()
	for _, s := range samples() {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("no sample %q", name)
	return sample{}
}

// sampleBody returns a fresh copy of one sample's body, for building test tables; an unknown name is a
// mistake in the table and panics.
func sampleBody(name string) tacplus.Body {
	for _, s := range samples() {
		if s.name == name {
			return s.body
		}
	}
	panic("no sample " + name)
}

// roleFor is the role of the codec that receives a packet with this seq_no: clients send odd numbers,
// so a server decodes them (section 4.1).
func roleFor(seq uint8) tacplus.Role {
	if seq%2 == 1 {
		return tacplus.RoleServer
	}
	return tacplus.RoleClient
}

func newCodec(t testing.TB, o tacplus.Options) *tacplus.Codec {
	t.Helper()
	c, err := tacplus.NewCodec(o)
	if err != nil {
		t.Fatalf("NewCodec: %v", err)
	}
	return c
}

// keyedCodec and clearCodec are the two modes of section 4.5 for one role.
func keyedCodec(t testing.TB, r tacplus.Role) *tacplus.Codec {
	return newCodec(t, tacplus.Options{Role: r, Key: testKey})
}

func clearCodec(t testing.TB, r tacplus.Role) *tacplus.Codec {
	return newCodec(t, tacplus.Options{Role: r, Unencrypted: true, AllowUnencrypted: true})
}

// header is the header a sample travels with; the codec fills in type, length and flags.
func (s sample) header() tacplus.Header {
	return tacplus.Header{SeqNo: s.seq, SessionID: testSession}
}

// freshBody returns a zero body of the same concrete type as b.
func freshBody(b tacplus.Body) tacplus.Body {
	return reflect.New(reflect.TypeOf(b).Elem()).Interface().(tacplus.Body)
}

// normalized copies b with empty Args as nil, so that "no arguments" compares equal however it was built.
func normalized(b tacplus.Body) tacplus.Body {
	v := reflect.New(reflect.TypeOf(b).Elem())
	v.Elem().Set(reflect.ValueOf(b).Elem())
	if f := v.Elem().FieldByName("Args"); f.IsValid() && f.Len() == 0 {
		f.Set(reflect.Zero(f.Type()))
	}
	return v.Interface().(tacplus.Body)
}

func equalBodies(a, b tacplus.Body) bool {
	return reflect.DeepEqual(normalized(a), normalized(b))
}

// hx builds bytes from a readable spec: hex byte groups ("c1", "0023", "5eed1234"), quoted strings taken
// byte for byte ("alice"), and comments from '#' to the end of the line. Quoted strings may hold spaces
// but neither '"' nor '#'.
func hx(t testing.TB, spec string) []byte {
	t.Helper()
	var out []byte
	for _, line := range strings.Split(spec, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for line = strings.TrimSpace(line); line != ""; line = strings.TrimSpace(line) {
			if line[0] == '"' {
				end := strings.IndexByte(line[1:], '"')
				if end < 0 {
					t.Fatalf("hx: unterminated string in %q", line)
				}
				out = append(out, line[1:1+end]...)
				line = line[2+end:]
				continue
			}
			tok, rest, _ := strings.Cut(line, " ")
			b, err := hex.DecodeString(tok)
			if err != nil {
				t.Fatalf("hx: bad hex %q: %v", tok, err)
			}
			out = append(out, b...)
			line = rest
		}
	}
	return out
}

// refPad computes the pseudo pad of RFC 8907 section 4.5 the slow, obvious way, straight from crypto/md5,
// so that tests check Obfuscate against the RFC's definition rather than against itself:
//
//	MD5_1 = MD5{session_id, key, version, seq_no}
//	MD5_n = MD5{session_id, key, version, seq_no, MD5_n-1}
func refPad(session uint32, key []byte, version, seq uint8, n int) []byte {
	var base []byte
	base = binary.BigEndian.AppendUint32(base, session)
	base = append(base, key...)
	base = append(base, version, seq)
	var pad, prev []byte
	for len(pad) < n {
		in := append(append([]byte(nil), base...), prev...)
		sum := md5.Sum(in)
		prev = sum[:]
		pad = append(pad, prev...)
	}
	return pad[:n]
}

// refObfuscate returns body XOR refPad, leaving body untouched.
func refObfuscate(session uint32, key []byte, version, seq uint8, body []byte) []byte {
	pad := refPad(session, key, version, seq, len(body))
	out := make([]byte, len(body))
	for i := range body {
		out[i] = body[i] ^ pad[i]
	}
	return out
}

// mustAppendBody encodes a body or fails the test.
func mustAppendBody(t testing.TB, b tacplus.Body) []byte {
	t.Helper()
	out, err := b.AppendBody(nil)
	if err != nil {
		t.Fatalf("%T.AppendBody: %v", b, err)
	}
	return out
}

// mustPacket encodes a whole packet or fails the test.
func mustPacket(t testing.TB, c *tacplus.Codec, h tacplus.Header, b tacplus.Body) []byte {
	t.Helper()
	out, err := c.Marshal(h, b)
	if err != nil {
		t.Fatalf("Marshal %T: %v", b, err)
	}
	return out
}
