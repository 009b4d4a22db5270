package tacplus_test

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/tacagent/tacagent/tacplus"
)

// invalid is one input the codec must refuse, with the RFC 8907 rule it breaks and the Reason and field
// the error must carry.
type invalid struct {
	name, section string
	reason        tacplus.Reason
	field         string
	err           func(t *testing.T) error
}

// encodeBody returns the error of encoding b.
func encodeBody(b tacplus.Body) func(*testing.T) error {
	return func(*testing.T) error { _, err := b.AppendBody(nil); return err }
}

// decodeBody returns the error of decoding the hx spec into a zero body of b's type.
func decodeBody(b tacplus.Body, spec string) func(*testing.T) error {
	return func(t *testing.T) error { return freshBody(b).Unmarshal(hx(t, spec)) }
}

// encodePacket returns the error of encoding a whole packet with header h.
func encodePacket(o tacplus.Options, h tacplus.Header, b tacplus.Body) func(*testing.T) error {
	return func(t *testing.T) error { _, err := newCodec(t, o).Marshal(h, b); return err }
}

// decodePacket returns the error of Codec.Decode on a crafted packet.
func decodePacket(o tacplus.Options, pkt func(*testing.T) []byte) func(*testing.T) error {
	return func(t *testing.T) error { _, _, err := newCodec(t, o).Decode(pkt(t)); return err }
}

// craft builds a packet by hand: the header from its fields with the true body length, the body obfuscated
// with key by the reference pad (section 4.5) unless key is nil, in which case the UNENCRYPTED flag is set.
func craft(version uint8, typ tacplus.PacketType, seq uint8, key []byte, body []byte) []byte {
	flags := byte(0)
	if key == nil {
		flags = byte(tacplus.FlagUnencrypted)
	} else {
		body = refObfuscate(testSession, key, version, seq, body)
	}
	pkt := []byte{version, byte(typ), seq, flags}
	pkt = binary.BigEndian.AppendUint32(pkt, testSession)
	pkt = binary.BigEndian.AppendUint32(pkt, uint32(len(body)))
	return append(pkt, body...)
}

// crafted returns a craft of a sample's clear body, after edit.
func crafted(name string, version uint8, key []byte, edit func([]byte) []byte) func(*testing.T) []byte {
	return func(t *testing.T) []byte {
		s := sampleByName(t, name)
		return craft(version, s.body.PacketType(), s.seq, key, edit(mustAppendBody(t, s.body)))
	}
}

func same(b []byte) []byte { return b }

var (
	serverKeyed = tacplus.Options{Role: tacplus.RoleServer, Key: testKey}
	clientKeyed = tacplus.Options{Role: tacplus.RoleClient, Key: testKey}
	serverClear = tacplus.Options{Role: tacplus.RoleServer, Unencrypted: true, AllowUnencrypted: true}
)

const esc = "\x1b[2J" // a terminal escape: the control characters section 3.7 excludes

func invalidCases() []invalid {
	start := func(f func(*tacplus.AuthenStart)) *tacplus.AuthenStart {
		s := sampleBody("authen_start_pap").(*tacplus.AuthenStart)
		f(s)
		return s
	}
	author := func(f func(*tacplus.AuthorRequest)) *tacplus.AuthorRequest {
		s := sampleBody("author_request").(*tacplus.AuthorRequest)
		f(s)
		return s
	}
	acct := func(f func(*tacplus.AcctRequest)) *tacplus.AcctRequest {
		s := sampleBody("acct_request").(*tacplus.AcctRequest)
		f(s)
		return s
	}
	long8, long16 := strings.Repeat("x", 256), strings.Repeat("x", 0x10000)
	pap := func(t *testing.T) []byte { return mustAppendBody(t, sampleByName(t, "authen_start_pap").body) }

	cases := []invalid{
		// Header, section 4.1.
		{"header 11 bytes", "4.1", tacplus.ReasonShort, "header",
			func(*testing.T) error { _, err := tacplus.ParseHeader(make([]byte, 11)); return err }},
		{"header major version 0xb", "4.1", tacplus.ReasonVersion, "major_version",
			decodePacket(serverClear, crafted("authen_start_ascii", 0xb0, nil, same))},
		{"header minor version 2", "4.1", tacplus.ReasonVersion, "minor_version",
			decodePacket(serverClear, crafted("authen_start_ascii", 0xc2, nil, same))},
		{"header type 0", "4.1", tacplus.ReasonType, "type",
			decodePacket(serverClear, func(t *testing.T) []byte { return craft(0xc0, 0, 1, nil, []byte{1}) })},
		{"header type 4", "4.1", tacplus.ReasonType, "type",
			decodePacket(serverClear, func(t *testing.T) []byte { return craft(0xc0, 4, 1, nil, []byte{1}) })},
		{"header seq_no 0", "4.1", tacplus.ReasonSeq, "seq_no",
			decodePacket(serverClear, func(t *testing.T) []byte { return craft(0xc1, tacplus.TypeAuthen, 0, nil, pap(t)) })},
		{"client receives odd seq_no", "4.1", tacplus.ReasonSeq, "seq_no",
			decodePacket(clientKeyed, crafted("authen_start_pap", 0xc1, testKey, same))},
		{"server receives even seq_no", "4.1", tacplus.ReasonSeq, "seq_no",
			decodePacket(serverKeyed, crafted("acct_reply", 0xc0, testKey, same))},
		{"header length above maximum", "4.1", tacplus.ReasonTooLarge, "length",
			decodePacket(tacplus.Options{Role: tacplus.RoleServer, Key: testKey, MaxBodyLen: 34}, crafted("authen_start_pap", 0xc1, testKey, same))},
		{"header length beyond the bytes", "4.1", tacplus.ReasonLength, "length",
			decodePacket(serverKeyed, func(t *testing.T) []byte {
				p := crafted("authen_start_pap", 0xc1, testKey, same)(t)
				return p[:len(p)-1]
			})},
		{"bytes beyond the header length", "4.1", tacplus.ReasonLength, "length",
			decodePacket(serverKeyed, func(t *testing.T) []byte { return append(crafted("authen_start_pap", 0xc1, testKey, same)(t), 0) })},
		{"encode seq_no 0", "4.1", tacplus.ReasonSeq, "seq_no",
			encodePacket(clientKeyed, tacplus.Header{}, sampleBody("authen_start_pap"))},
		{"encode body above maximum", "4.1", tacplus.ReasonTooLarge, "length",
			encodePacket(tacplus.Options{Key: testKey, MaxBodyLen: 34}, tacplus.Header{SeqNo: 1}, sampleBody("authen_start_pap"))},

		// UNENCRYPTED flag, sections 4.5 and 10.5.2: it must match the configuration both ways.
		{"unencrypted packet to a keyed codec", "4.5, 10.5.2", tacplus.ReasonFlags, "flags",
			decodePacket(serverKeyed, crafted("authen_start_pap", 0xc1, nil, same))},
		{"obfuscated packet to an unencrypted codec", "4.5", tacplus.ReasonFlags, "flags",
			decodePacket(serverClear, crafted("authen_start_pap", 0xc1, testKey, same))},

		// Minor versions, section 5.4.1.
		{"PAP START with minor version 0", "5.4.1", tacplus.ReasonVersion, "minor_version",
			decodePacket(serverKeyed, crafted("authen_start_pap", 0xc0, testKey, same))},
		{"CHAP START with minor version 0", "5.4.1", tacplus.ReasonVersion, "minor_version",
			decodePacket(serverClear, crafted("authen_start_chap", 0xc0, nil, same))},
		{"ASCII START with minor version 1", "5.4.1", tacplus.ReasonVersion, "minor_version",
			decodePacket(serverKeyed, crafted("authen_start_ascii", 0xc1, testKey, same))},
		{"CHPASS START with minor version 1", "5.4.1", tacplus.ReasonVersion, "minor_version",
			decodePacket(serverKeyed, crafted("authen_start_chpass", 0xc1, testKey, same))},
		{"authorization REQUEST with minor version 1", "5.4.1", tacplus.ReasonVersion, "minor_version",
			decodePacket(serverKeyed, crafted("author_request", 0xc1, testKey, same))},
		{"accounting REQUEST with minor version 1", "5.4.1", tacplus.ReasonVersion, "minor_version",
			decodePacket(serverClear, crafted("acct_request", 0xc1, nil, same))},
		{"encode PAP START as minor version 0", "5.4.1", tacplus.ReasonVersion, "minor_version",
			encodePacket(clientKeyed, tacplus.Header{Version: 0xc0, SeqNo: 1}, sampleBody("authen_start_pap"))},
		{"encode authorization REQUEST as minor version 1", "5.4.1", tacplus.ReasonVersion, "minor_version",
			encodePacket(clientKeyed, tacplus.Header{Version: 0xc1, SeqNo: 1}, sampleBody("author_request"))},
		{"START CHPASS with PAP", "5.4.1", tacplus.ReasonEnum, "authen_type",
			encodeBody(start(func(s *tacplus.AuthenStart) { s.Action = tacplus.ActionChPass }))},
		{"START SENDAUTH with ASCII", "5.4.1", tacplus.ReasonEnum, "authen_type",
			encodeBody(start(func(s *tacplus.AuthenStart) { s.Action, s.Type = tacplus.ActionSendAuth, tacplus.AuthenTypeASCII }))},
		{"START with deprecated ARAP", "5.1, 10.5.3", tacplus.ReasonEnum, "authen_type",
			encodeBody(start(func(s *tacplus.AuthenStart) { s.Type = tacplus.AuthenTypeARAP }))},
		{"START with NOT_SET type", "5.1", tacplus.ReasonEnum, "authen_type",
			decodeBody(&tacplus.AuthenStart{}, `01 01 00 01 00 00 00 00`)},

		// Field lengths after de-obfuscation, section 4.5: a distinct bad-secret error when obfuscated, a
		// length error in the clear.
		{"START lengths overrun, obfuscated", "4.5", tacplus.ReasonBadSecret, "authen_start",
			decodePacket(serverKeyed, crafted("authen_start_pap", 0xc1, testKey, func(b []byte) []byte { b[7]++; return b }))},
		{"START lengths overrun, unencrypted", "4.5", tacplus.ReasonLength, "authen_start",
			decodePacket(serverClear, crafted("authen_start_pap", 0xc1, nil, func(b []byte) []byte { b[7]++; return b }))},
		{"author REQUEST arg_cnt beyond the body, obfuscated", "4.5", tacplus.ReasonBadSecret, "author_request",
			decodePacket(serverKeyed, crafted("author_request", 0xc0, testKey, func(b []byte) []byte { b[7] = 0xff; return b }))},
		{"REPLY lengths short of the body, obfuscated", "4.5", tacplus.ReasonBadSecret, "authen_reply",
			decodePacket(clientKeyed, crafted("authen_reply_getpass", 0xc0, testKey, func(b []byte) []byte { return append(b, 0) }))},
		{"REPLY decoded with the wrong key", "4.5", tacplus.ReasonBadSecret, "authen_reply",
			decodePacket(clientKeyed, crafted("authen_reply_getpass", 0xc0, []byte("other-key"), same))},

		// Short bodies: every body has a fixed part (sections 5.1-7.2); fewer bytes is an error, never zeros.
		{"START 7 bytes", "5.1", tacplus.ReasonShort, "authen_start", decodeBody(&tacplus.AuthenStart{}, `01 01 02 01 00 00 00`)},
		{"REPLY 5 bytes", "5.2", tacplus.ReasonShort, "authen_reply", decodeBody(&tacplus.AuthenReply{}, `01 00 0000 00`)},
		{"CONTINUE 4 bytes", "5.3", tacplus.ReasonShort, "authen_continue", decodeBody(&tacplus.AuthenContinue{}, `0000 0000`)},
		{"author REQUEST 7 bytes", "6.1", tacplus.ReasonShort, "author_request", decodeBody(&tacplus.AuthorRequest{}, `06 00 00 00 00 00 00`)},
		{"author RESPONSE 5 bytes", "6.2", tacplus.ReasonShort, "author_response", decodeBody(&tacplus.AuthorResponse{}, `01 00 0000 00`)},
		{"acct REQUEST 8 bytes", "7.1", tacplus.ReasonShort, "acct_request", decodeBody(&tacplus.AcctRequest{}, `02 06 00 00 00 00 00 00`)},
		{"acct REPLY 4 bytes", "7.2", tacplus.ReasonShort, "acct_reply", decodeBody(&tacplus.AcctReply{}, `0000 0000`)},
		{"empty body", "4.1", tacplus.ReasonShort, "authen_reply", decodeBody(&tacplus.AuthenReply{}, ``)},

		// Field lengths that do not add up (section 4.5), one per body layout.
		{"START trailing byte", "5.1", tacplus.ReasonLength, "authen_start", decodeBody(&tacplus.AuthenStart{}, `01 01 01 01 00 00 00 00 "x"`)},
		{"START field past the end", "5.1", tacplus.ReasonLength, "authen_start", decodeBody(&tacplus.AuthenStart{}, `01 01 01 01 02 00 00 00 "x"`)},
		{"REPLY message past the end", "5.2", tacplus.ReasonLength, "authen_reply", decodeBody(&tacplus.AuthenReply{}, `01 00 ffff 0000 "x"`)},
		{"CONTINUE trailing byte", "5.3", tacplus.ReasonLength, "authen_continue", decodeBody(&tacplus.AuthenContinue{}, `0000 0000 00 "x"`)},
		{"author REQUEST arg lengths missing", "6.1", tacplus.ReasonLength, "author_request", decodeBody(&tacplus.AuthorRequest{}, `06 00 00 00 00 00 00 02 01`)},
		{"author REQUEST arg past the end", "6.1", tacplus.ReasonLength, "author_request", decodeBody(&tacplus.AuthorRequest{}, `06 00 00 00 00 00 00 01 04 "a=b"`)},
		{"author RESPONSE arg lengths missing", "6.2", tacplus.ReasonLength, "author_response", decodeBody(&tacplus.AuthorResponse{}, `01 03 0000 0000 03`)},
		{"author RESPONSE trailing byte", "6.2", tacplus.ReasonLength, "author_response", decodeBody(&tacplus.AuthorResponse{}, `01 01 0000 0000 03 "a=b" 00`)},
		{"acct REQUEST arg lengths missing", "7.1", tacplus.ReasonLength, "acct_request", decodeBody(&tacplus.AcctRequest{}, `02 06 00 00 00 00 00 00 01`)},
		{"acct REQUEST trailing byte", "7.1", tacplus.ReasonLength, "acct_request", decodeBody(&tacplus.AcctRequest{}, `02 06 00 00 00 00 00 00 00 00`)},
		{"acct REPLY data past the end", "7.2", tacplus.ReasonLength, "acct_reply", decodeBody(&tacplus.AcctReply{}, `0000 0001 01`)},

		// Lengths that do not fit their length field, on encode.
		{"START user of 256 bytes", "5.1", tacplus.ReasonLength, "user", encodeBody(start(func(s *tacplus.AuthenStart) { s.User = long8 }))},
		{"START port of 256 bytes", "5.1", tacplus.ReasonLength, "port", encodeBody(start(func(s *tacplus.AuthenStart) { s.Port = long8 }))},
		{"START rem_addr of 256 bytes", "5.1", tacplus.ReasonLength, "rem_addr", encodeBody(start(func(s *tacplus.AuthenStart) { s.RemAddr = long8 }))},
		{"START data of 256 bytes", "5.1", tacplus.ReasonLength, "data", encodeBody(start(func(s *tacplus.AuthenStart) { s.Data = long8 }))},
		{"REPLY server_msg of 64 KiB", "5.2", tacplus.ReasonLength, "server_msg", encodeBody(&tacplus.AuthenReply{Status: tacplus.AuthenStatusPass, ServerMsg: long16})},
		{"REPLY data of 64 KiB", "5.2", tacplus.ReasonLength, "data", encodeBody(&tacplus.AuthenReply{Status: tacplus.AuthenStatusPass, Data: long16})},
		{"CONTINUE user_msg of 64 KiB", "5.3", tacplus.ReasonLength, "user_msg", encodeBody(&tacplus.AuthenContinue{UserMsg: long16})},
		{"CONTINUE data of 64 KiB", "5.3", tacplus.ReasonLength, "data", encodeBody(&tacplus.AuthenContinue{Data: long16})},
		{"author REQUEST user of 256 bytes", "6.1", tacplus.ReasonLength, "user", encodeBody(author(func(s *tacplus.AuthorRequest) { s.User = long8 }))},
		{"author REQUEST port of 256 bytes", "6.1", tacplus.ReasonLength, "port", encodeBody(author(func(s *tacplus.AuthorRequest) { s.Port = long8 }))},
		{"acct REQUEST rem_addr of 256 bytes", "7.1", tacplus.ReasonLength, "rem_addr", encodeBody(acct(func(s *tacplus.AcctRequest) { s.RemAddr = long8 }))},
		{"author RESPONSE server_msg of 64 KiB", "6.2", tacplus.ReasonLength, "server_msg", encodeBody(&tacplus.AuthorResponse{Status: tacplus.AuthorStatusFail, ServerMsg: long16})},
		{"author RESPONSE data of 64 KiB", "6.2", tacplus.ReasonLength, "data", encodeBody(&tacplus.AuthorResponse{Status: tacplus.AuthorStatusFail, Data: long16})},
		{"acct REPLY server_msg of 64 KiB", "7.2", tacplus.ReasonLength, "server_msg", encodeBody(&tacplus.AcctReply{Status: tacplus.AcctStatusError, ServerMsg: long16})},
		{"acct REPLY data of 64 KiB", "7.2", tacplus.ReasonLength, "data", encodeBody(&tacplus.AcctReply{Status: tacplus.AcctStatusError, Data: long16})},

		// Enumerations: values the RFC does not define (section 3.6 says to answer ERROR).
		{"START action 0x03 (SENDPASS, removed)", "5.1", tacplus.ReasonEnum, "action", decodeBody(&tacplus.AuthenStart{}, `03 01 01 01 00 00 00 00`)},
		{"START priv_lvl 16", "5.1, 9", tacplus.ReasonEnum, "priv_lvl", encodeBody(start(func(s *tacplus.AuthenStart) { s.PrivLvl = 16 }))},
		{"START authen_service 0x04", "5.1", tacplus.ReasonEnum, "authen_service", decodeBody(&tacplus.AuthenStart{}, `01 01 01 04 00 00 00 00`)},
		{"START authen_service 0x0a", "5.1", tacplus.ReasonEnum, "authen_service", encodeBody(start(func(s *tacplus.AuthenStart) { s.Service = 0x0a }))},
		{"REPLY status 0", "5.2", tacplus.ReasonEnum, "status", decodeBody(&tacplus.AuthenReply{}, `00 00 0000 0000`)},
		{"REPLY status 0x08", "5.2", tacplus.ReasonEnum, "status", encodeBody(&tacplus.AuthenReply{Status: 0x08})},
		{"REPLY flags 0x02", "5.2", tacplus.ReasonEnum, "flags", decodeBody(&tacplus.AuthenReply{}, `01 02 0000 0000`)},
		{"CONTINUE flags 0x80", "5.3", tacplus.ReasonEnum, "flags", decodeBody(&tacplus.AuthenContinue{}, `0000 0000 80`)},
		{"author REQUEST authen_method 0x07", "6.1", tacplus.ReasonEnum, "authen_method", encodeBody(author(func(s *tacplus.AuthorRequest) { s.Method = 0x07 }))},
		{"author REQUEST authen_method 0x21", "6.1", tacplus.ReasonEnum, "authen_method", decodeBody(&tacplus.AuthorRequest{}, `21 00 00 00 00 00 00 00`)},
		{"author REQUEST priv_lvl 0xff", "6.1", tacplus.ReasonEnum, "priv_lvl", decodeBody(&tacplus.AuthorRequest{}, `06 ff 00 00 00 00 00 00`)},
		{"author REQUEST authen_type 0x07", "6.1", tacplus.ReasonEnum, "authen_type", encodeBody(author(func(s *tacplus.AuthorRequest) { s.Type = 0x07 }))},
		{"author REQUEST authen_service 0x04", "6.1", tacplus.ReasonEnum, "authen_service", encodeBody(author(func(s *tacplus.AuthorRequest) { s.Service = 0x04 }))},
		{"author RESPONSE status 0x03", "6.2", tacplus.ReasonEnum, "status", decodeBody(&tacplus.AuthorResponse{}, `03 00 0000 0000`)},
		{"acct REQUEST flags 0 (INVALID row)", "7.2", tacplus.ReasonEnum, "flags", decodeBody(&tacplus.AcctRequest{}, `00 06 00 00 00 00 00 00 00`)},
		{"acct REQUEST START|STOP", "7.2", tacplus.ReasonEnum, "flags", encodeBody(acct(func(s *tacplus.AcctRequest) { s.Flags = tacplus.AcctFlagStart | tacplus.AcctFlagStop }))},
		{"acct REQUEST STOP|WATCHDOG", "7.2", tacplus.ReasonEnum, "flags", decodeBody(&tacplus.AcctRequest{}, `0c 06 00 00 00 00 00 00 00`)},
		{"acct REQUEST all three", "7.2", tacplus.ReasonEnum, "flags", decodeBody(&tacplus.AcctRequest{}, `0e 06 00 00 00 00 00 00 00`)},
		{"acct REQUEST undefined bit 0x10", "7.1", tacplus.ReasonEnum, "flags", decodeBody(&tacplus.AcctRequest{}, `12 06 00 00 00 00 00 00 00`)},
		{"acct REQUEST MORE is never sent", "7.1", tacplus.ReasonEnum, "flags", encodeBody(acct(func(s *tacplus.AcctRequest) { s.Flags |= tacplus.AcctFlagMore }))},
		{"acct REQUEST priv_lvl 16", "7.1", tacplus.ReasonEnum, "priv_lvl", encodeBody(acct(func(s *tacplus.AcctRequest) { s.PrivLvl = 16 }))},
		{"acct REPLY status 0x03", "7.2", tacplus.ReasonEnum, "status", decodeBody(&tacplus.AcctReply{}, `0000 0000 03`)},

		// Text, section 3.7: usernames per RFC 8265, everything else printable US-ASCII.
		{"user not UTF-8", "3.7", tacplus.ReasonText, "user", decodeBody(&tacplus.AuthenStart{}, `01 01 01 01 01 00 00 00 ff`)},
		{"user with a space", "3.7", tacplus.ReasonText, "user", encodeBody(start(func(s *tacplus.AuthenStart) { s.User = "al ice" }))},
		{"user with NO-BREAK SPACE", "3.7", tacplus.ReasonText, "user", encodeBody(start(func(s *tacplus.AuthenStart) { s.User = "al\u00a0ice" }))},
		{"user with ESC", "3.7", tacplus.ReasonText, "user", encodeBody(author(func(s *tacplus.AuthorRequest) { s.User = "a" + esc }))},
		{"user with C1 control", "3.7", tacplus.ReasonText, "user", encodeBody(acct(func(s *tacplus.AcctRequest) { s.User = "a\u0085" }))},
		{"port with LF", "3.7", tacplus.ReasonText, "port", encodeBody(start(func(s *tacplus.AuthenStart) { s.Port = "tty\n" }))},
		{"rem_addr with DEL", "3.7", tacplus.ReasonText, "rem_addr", decodeBody(&tacplus.AuthenStart{}, `01 01 01 01 00 00 01 00 7f`)},
		{"rem_addr not ASCII", "3.7", tacplus.ReasonText, "rem_addr", encodeBody(author(func(s *tacplus.AuthorRequest) { s.RemAddr = "h\u00f4te" }))},
		{"acct REQUEST port with NUL", "3.7", tacplus.ReasonText, "port", encodeBody(acct(func(s *tacplus.AcctRequest) { s.Port = "\x00" }))},
		{"REPLY server_msg with ESC", "3.7", tacplus.ReasonText, "server_msg", decodeBody(&tacplus.AuthenReply{}, `01 00 0001 0000 1b`)},
		{"REPLY server_msg not ASCII", "3.7", tacplus.ReasonText, "server_msg", encodeBody(&tacplus.AuthenReply{Status: tacplus.AuthenStatusPass, ServerMsg: "caf\u00e9"})},
		{"FOLLOW data with ESC", "3.7, 5.4.3", tacplus.ReasonText, "data", encodeBody(&tacplus.AuthenReply{Status: tacplus.AuthenStatusFollow, Data: esc})},
		{"CONTINUE abort reason with ESC", "3.7, 5.4.3", tacplus.ReasonText, "data", decodeBody(&tacplus.AuthenContinue{}, `0000 0001 01 1b`)},
		{"author RESPONSE server_msg with BEL", "3.7", tacplus.ReasonText, "server_msg", encodeBody(&tacplus.AuthorResponse{Status: tacplus.AuthorStatusFail, ServerMsg: "\a"})},
		{"author RESPONSE data with ESC", "3.7", tacplus.ReasonText, "data", decodeBody(&tacplus.AuthorResponse{}, `10 00 0000 0001 1b`)},
		{"acct REPLY server_msg with ESC", "3.7", tacplus.ReasonText, "server_msg", encodeBody(&tacplus.AcctReply{Status: tacplus.AcctStatusSuccess, ServerMsg: esc})},
		{"acct REPLY data with NUL", "3.7", tacplus.ReasonText, "data", decodeBody(&tacplus.AcctReply{}, `0000 0001 01 00`)},
		{"argument with ESC", "3.7, 6.1", tacplus.ReasonText, "arg", encodeBody(author(func(s *tacplus.AuthorRequest) { s.Args = []string{"cmd=" + esc} }))},
		{"argument not ASCII", "3.7, 6.1", tacplus.ReasonText, "arg", decodeBody(&tacplus.AuthorResponse{}, `01 01 0000 0000 03 "a=" c3`)},
	}

	// Argument rules of section 6.1 (sections 6.2 and 7.1 use the same encoding), for every body with args.
	type argBody struct {
		name string
		with func([]string) tacplus.Body
	}
	for _, b := range []argBody{
		{"author REQUEST", func(a []string) tacplus.Body { return author(func(s *tacplus.AuthorRequest) { s.Args = a }) }},
		{"author RESPONSE", func(a []string) tacplus.Body {
			return &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassAdd, Args: a}
		}},
		{"acct REQUEST", func(a []string) tacplus.Body { return acct(func(s *tacplus.AcctRequest) { s.Args = a }) }},
	} {
		cases = append(cases,
			invalid{b.name + " argument of 256 bytes", "6.1", tacplus.ReasonAVPair, "arg", encodeBody(b.with([]string{"a=" + long8[:254]}))},
			invalid{b.name + " argument without separator", "6.1", tacplus.ReasonAVPair, "arg", encodeBody(b.with([]string{"service=shell", "cmd"}))},
			invalid{b.name + " argument without a name", "6.1", tacplus.ReasonAVPair, "arg", encodeBody(b.with([]string{"=shell"}))},
			invalid{b.name + " empty argument", "6.1", tacplus.ReasonAVPair, "arg", encodeBody(b.with([]string{""}))},
			invalid{b.name + " 256 arguments", "6.1", tacplus.ReasonAVPair, "arg_cnt", encodeBody(b.with(repeat("a=b", 256)))},
		)
	}
	cases = append(cases,
		invalid{"decode argument without separator", "6.1", tacplus.ReasonAVPair, "arg",
			decodeBody(&tacplus.AuthorRequest{}, `06 00 00 00 00 00 00 01 03 "abc"`)},
		invalid{"decode acct argument without a name", "6.1, 7.1", tacplus.ReasonAVPair, "arg",
			decodeBody(&tacplus.AcctRequest{}, `02 06 00 00 00 00 00 00 01 02 "*x"`)},
	)
	return cases
}

// TestInvalid runs every rule. Each error must carry the expected Reason and field, belong to exactly one
// class (ErrBadSecret for ReasonBadSecret, ErrProtocol otherwise) and never quote the key or a password.
func TestInvalid(t *testing.T) {
	seen := map[tacplus.Reason]bool{}
	for _, c := range invalidCases() {
		t.Run(c.name, func(t *testing.T) {
			err := c.err(t)
			if err == nil {
				t.Fatalf("RFC 8907 section %s: accepted", c.section)
			}
			var de *tacplus.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("section %s: %T %v is not a *DecodeError", c.section, err, err)
			}
			if de.Reason != c.reason || de.Field != c.field {
				t.Fatalf("section %s: got reason %s field %q (%v), want %s %q", c.section, de.Reason, de.Field, err, c.reason, c.field)
			}
			wantClass := tacplus.ErrProtocol
			if c.reason == tacplus.ReasonBadSecret {
				wantClass = tacplus.ErrBadSecret
			}
			if tacplus.ClassOf(err) != wantClass || tacplus.ClassName(err) == "unknown" {
				t.Fatalf("section %s: class %v, want %v", c.section, tacplus.ClassOf(err), wantClass)
			}
			if msg := err.Error(); strings.Contains(msg, string(testKey)) || strings.Contains(msg, testPass) {
				t.Fatalf("error text leaks a secret: %q", msg)
			}
			seen[c.reason] = true
		})
	}
	// Every Reason the codec can produce has a case. ReasonSession is produced above the codec, by the
	// connection layer, when a reply names a session it does not have.
	for _, r := range tacplus.Reasons() {
		if !seen[r] && r != tacplus.ReasonSession {
			t.Errorf("no invalid case yields reason %s", r)
		}
	}
}

// valid pins the edges of the rules above from the accepting side, so that a rule cannot pass TestInvalid by
// refusing everything.
func TestValidEdges(t *testing.T) {
	start := func(f func(*tacplus.AuthenStart)) tacplus.Body {
		s := sampleByName(t, "authen_start_pap").body.(*tacplus.AuthenStart)
		f(s)
		return s
	}
	for _, c := range []struct {
		name, section string
		body          tacplus.Body
	}{
		{"UTF-8 username", "3.7", start(func(s *tacplus.AuthenStart) { s.User = "\u00e9mile" })},
		{"empty username (GETUSER follows)", "5.4.2.1", start(func(s *tacplus.AuthenStart) { s.User = "" })},
		{"START data with every byte value", "3.7", start(func(s *tacplus.AuthenStart) { s.Data = bytes8 })},
		{"priv_lvl 15", "9", start(func(s *tacplus.AuthenStart) { s.PrivLvl = 15 })},
		{"REPLY banner with TAB CR LF", "3.7", &tacplus.AuthenReply{Status: tacplus.AuthenStatusPass, ServerMsg: "a\tb\r\nc"}},
		{"REPLY data with controls", "5.2", &tacplus.AuthenReply{Status: tacplus.AuthenStatusGetData, Data: esc}},
		{"REPLY FOLLOW", "5.4.3", &tacplus.AuthenReply{Status: tacplus.AuthenStatusFollow, Data: "192.0.2.9"}},
		{"CONTINUE user_msg with every byte value", "5.3", &tacplus.AuthenContinue{UserMsg: bytes8}},
		{"CONTINUE data with controls, no abort", "5.3", &tacplus.AuthenContinue{Data: esc}},
		{"mandatory argument with empty value", "6.1", &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassAdd, Args: []string{"a="}}},
		{"optional argument", "6.1", &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassAdd, Args: []string{"a*b"}}},
		{"value containing separators", "6.1", &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassAdd, Args: []string{"a=b=c*d"}}},
		{"255-byte argument", "6.1", &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassAdd, Args: []string{arg255}}},
		{"255 arguments", "6.1", &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassAdd, Args: shortArgs}},
		{"acct WATCHDOG with update", "7.2", &tacplus.AcctRequest{Flags: tacplus.AcctFlagWatchdog | tacplus.AcctFlagStart}},
		{"author REQUEST NOT_SET type and method", "6.1", &tacplus.AuthorRequest{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			wire, err := c.body.AppendBody(nil)
			if err != nil {
				t.Fatalf("section %s: refused: %v", c.section, err)
			}
			if err := freshBody(c.body).Unmarshal(wire); err != nil {
				t.Fatalf("section %s: decode refused: %v", c.section, err)
			}
		})
	}
	// The deprecated MORE bit is masked out on receipt (section 7.2, "Flags & 0xE") but never sent.
	var more tacplus.AcctRequest
	if err := more.Unmarshal(hx(t, `03 06 00 00 00 00 00 00 00`)); err != nil || more.Flags != tacplus.AcctFlagStart|tacplus.AcctFlagMore {
		t.Fatalf("START|MORE on receipt: %v, flags %s", err, more.Flags)
	}
}

// TestSplitArg checks the separator rule of section 6.1: the first '=' or '*' splits name from value,
// '=' marks a mandatory argument and '*' an optional one.
func TestSplitArg(t *testing.T) {
	for _, c := range []struct {
		arg, name, value string
		mandatory, ok    bool
	}{
		{"service=shell", "service", "shell", true, true},
		{"idletime*30", "idletime", "30", false, true},
		{"a=b*c", "a", "b*c", true, true},
		{"a*b=c", "a", "b=c", false, true},
		{"a=", "a", "", true, true},
		{"=a", "", "", false, false},
		{"*", "", "", false, false},
		{"abc", "", "", false, false},
		{"", "", "", false, false},
	} {
		name, value, mandatory, ok := tacplus.SplitArg(c.arg)
		if name != c.name || value != c.value || mandatory != c.mandatory || ok != c.ok {
			t.Errorf("SplitArg(%q) = %q %q %v %v", c.arg, name, value, mandatory, ok)
		}
	}
	if got := tacplus.Arg("cmd", "show"); got != "cmd=show" {
		t.Errorf("Arg = %q", got)
	}
	if got := tacplus.OptionalArg("cmd", "show"); got != "cmd*show" {
		t.Errorf("OptionalArg = %q", got)
	}
}

// TestNewCodec checks the configuration rules: section 10.5.2 refuses unencrypted mode unless it is
// explicitly allowed, and a codec is keyed or unencrypted, never both or neither.
func TestNewCodec(t *testing.T) {
	for _, c := range []struct {
		name string
		o    tacplus.Options
		ok   bool
	}{
		{"keyed", tacplus.Options{Key: testKey}, true},
		{"unencrypted allowed", tacplus.Options{Unencrypted: true, AllowUnencrypted: true}, true},
		{"unencrypted not allowed", tacplus.Options{Unencrypted: true}, false},
		{"allowed but keyed", tacplus.Options{Key: testKey, AllowUnencrypted: true}, true},
		{"key and unencrypted", tacplus.Options{Key: testKey, Unencrypted: true, AllowUnencrypted: true}, false},
		{"no key", tacplus.Options{}, false},
		{"unknown role", tacplus.Options{Role: 3, Key: testKey}, false},
	} {
		got, err := tacplus.NewCodec(c.o)
		if c.ok != (err == nil) {
			t.Errorf("%s: err %v", c.name, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, tacplus.ErrConfig) || tacplus.ClassName(err) != "config" {
				t.Errorf("%s: %v is not ErrConfig", c.name, err)
			}
			continue
		}
		if got.Role() != tacplus.RoleClient || got.Unencrypted() != c.o.Unencrypted {
			t.Errorf("%s: role %s unencrypted %v", c.name, got.Role(), got.Unencrypted())
		}
	}
	// The codec keeps its own copy of the key: changing the caller's slice must not change the pad.
	key := append([]byte(nil), testKey...)
	c := newCodec(t, tacplus.Options{Key: key})
	key[0] ^= 0xff
	s := sampleByName(t, "authen_start_pap")
	if _, _, err := keyedCodec(t, tacplus.RoleServer).Decode(mustPacket(t, c, s.header(), s.body)); err != nil {
		t.Fatalf("codec follows the caller's key slice: %v", err)
	}
}
