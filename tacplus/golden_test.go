package tacplus_test

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/tacagent/tacagent/tacplus"
)

// goldens are wire bytes written by hand from the field diagrams of RFC 8907 (header: section 4.1;
// bodies: sections 5.1, 5.2, 5.3, 6.1, 6.2, 7.1, 7.2), for the samples of helpers_test.go. The header
// is shown with flags 0x00 (obfuscated mode) and session_id 0x5eed1234; the version byte follows the
// table of section 5.4.1 (0xc1 only for PAP/CHAP/MS-CHAP START).
var goldens = []struct {
	sample, section string
	header, body    string
}{
	{
		sample: "authen_start_pap", section: "5.1, 5.4.2.2",
		header: `c1 01 01 00  5eed1234  00000023   # v1.1 AUTHEN seq=1 flags=0, 35 body bytes`,
		body: `
			01 01 02 01   # action=LOGIN priv_lvl=1 authen_type=PAP authen_service=LOGIN
			05 04 09 09   # user_len port_len rem_addr_len data_len
			"alice" "tty1" "192.0.2.7" "s3cret-pw"`,
	},
	{
		sample: "authen_start_ascii", section: "5.1, 5.4.2.1",
		header: `c0 01 01 00  5eed1234  0000000c   # v1.0: ASCII login uses minor version 0`,
		body: `
			01 01 01 01   # action=LOGIN priv_lvl=1 authen_type=ASCII authen_service=LOGIN
			00 04 00 00   # no user (asked for with GETUSER), port only
			"tty1"`,
	},
	{
		sample: "authen_reply_getpass", section: "5.2",
		header: `c0 01 02 00  5eed1234  00000010`,
		body: `
			05 01         # status=GETPASS flags=NOECHO
			000a 0000     # server_msg_len=10 data_len=0
			"Password: "`,
	},
	{
		sample: "authen_continue", section: "5.3",
		header: `c0 01 03 00  5eed1234  0000000e`,
		body: `
			0009 0000 00  # user_msg_len=9 data_len=0 flags=0
			"s3cret-pw"`,
	},
	{
		sample: "author_request", section: "6.1",
		header: `c0 02 01 00  5eed1234  00000041   # 65 body bytes`,
		body: `
			06 0f 02 01   # authen_method=TACACSPLUS priv_lvl=15 authen_type=PAP authen_service=LOGIN
			05 04 09 03   # user_len port_len rem_addr_len arg_cnt=3
			0d 08 0f      # arg lengths 13, 8, 15
			"alice" "tty1" "192.0.2.7"
			"service=shell" "cmd=show" "cmd-arg=version"`,
	},
	{
		sample: "author_response", section: "6.2",
		header: `c0 02 02 00  5eed1234  00000020`,
		body: `
			01 02         # status=PASS_ADD arg_cnt=2
			0002 0000     # server_msg_len=2 data_len=0
			0b 0b         # arg lengths 11, 11
			"ok" "priv-lvl=15" "idletime*30"`,
	},
	{
		sample: "acct_request", section: "7.1",
		header: `c0 03 01 00  5eed1234  00000034   # 52 body bytes`,
		body: `
			02 06 01 02 01  # flags=START authen_method=TACACSPLUS priv_lvl=1 authen_type=PAP authen_service=LOGIN
			05 04 09 02     # user_len port_len rem_addr_len arg_cnt=2
			0a 0d           # arg lengths 10, 13
			"alice" "tty1" "192.0.2.7" "task_id=42" "service=shell"`,
	},
	{
		sample: "acct_reply", section: "7.2",
		header: `c0 03 02 00  5eed1234  0000000d`,
		body: `
			0008 0000 01  # server_msg_len=8 data_len=0 status=SUCCESS
			"recorded"`,
	},
}

// TestGoldenBody checks each body against hand-written bytes in both directions.
func TestGoldenBody(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.sample, func(t *testing.T) {
			s := sampleByName(t, g.sample)
			want := hx(t, g.body)
			if got := mustAppendBody(t, s.body); !bytes.Equal(got, want) {
				t.Fatalf("section %s: AppendBody\n got %x\nwant %x", g.section, got, want)
			}
			got := freshBody(s.body)
			if err := got.Unmarshal(want); err != nil {
				t.Fatalf("section %s: Unmarshal: %v", g.section, err)
			}
			if !equalBodies(got, s.body) {
				t.Fatalf("section %s: Unmarshal gave %#v, want %#v", g.section, got, s.body)
			}
		})
	}
}

// TestGoldenPacket checks whole packets, obfuscated (section 4.5, pad computed independently by refPad
// from crypto/md5) and unencrypted (TAC_PLUS_UNENCRYPTED_FLAG set, body in the clear), in both directions.
func TestGoldenPacket(t *testing.T) {
	for _, g := range goldens {
		s := sampleByName(t, g.sample)
		hdr, body := hx(t, g.header), hx(t, g.body)
		if len(hdr) != tacplus.HeaderLen {
			t.Fatalf("%s: golden header is %d bytes", g.sample, len(hdr))
		}
		obf := append(append([]byte(nil), hdr...), refObfuscate(testSession, testKey, hdr[0], hdr[2], body)...)
		clr := append(append([]byte(nil), hdr...), body...)
		clr[3] |= byte(tacplus.FlagUnencrypted)
		for _, mode := range []struct {
			name   string
			codecs func(testing.TB, tacplus.Role) *tacplus.Codec
			want   []byte
		}{{"obfuscated", keyedCodec, obf}, {"unencrypted", clearCodec, clr}} {
			t.Run(g.sample+"/"+mode.name, func(t *testing.T) {
				got := mustPacket(t, mode.codecs(t, roleFor(s.seq)), s.header(), s.body)
				if !bytes.Equal(got, mode.want) {
					t.Fatalf("AppendPacket\n got %x\nwant %x", got, mode.want)
				}
				h, b, err := mode.codecs(t, roleFor(s.seq)).Decode(mode.want)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if h.SessionID != testSession || h.SeqNo != s.seq || h.Version != hdr[0] || int(h.Length) != len(body) {
					t.Fatalf("Decode header %v", h)
				}
				if !equalBodies(b, s.body) {
					t.Fatalf("Decode body %#v, want %#v", b, s.body)
				}
			})
		}
	}
}

// TestGoldenLiteral pins one obfuscated packet as literal bytes computed outside Go (Python hashlib, per
// section 4.5), in case refPad and Obfuscate ever shared a misreading of the RFC.
func TestGoldenLiteral(t *testing.T) {
	const want = "c10101005eed123400000023" +
		"e027f44fd0353ba26a33a4d86748dc32b3d78b0a75bda6caf1be971812580e100dd8c7"
	s := sampleByName(t, "authen_start_pap")
	got := mustPacket(t, keyedCodec(t, tacplus.RoleClient), s.header(), s.body)
	if hex.EncodeToString(got) != want {
		t.Fatalf("got  %x\nwant %s", got, want)
	}
}

// TestObfuscateMatchesRFC compares Obfuscate with the reference pad for every body length around the
// 16-byte MD5 block edges and for keys on both sides of Obfuscate's stack buffer (section 4.5), and checks
// that applying it twice gives the input back.
func TestObfuscateMatchesRFC(t *testing.T) {
	keys := [][]byte{{'k'}, testKey, bytes.Repeat([]byte{0xa5}, 200), bytes.Repeat([]byte("long"), 100)}
	for _, key := range keys {
		for n := 0; n <= 100; n++ {
			body := make([]byte, n)
			for i := range body {
				body[i] = byte(i * 7)
			}
			h := tacplus.Header{Version: 0xc1, SeqNo: 3, SessionID: 0xfeedface}
			want := refObfuscate(h.SessionID, key, h.Version, h.SeqNo, body)
			got := append([]byte(nil), body...)
			tacplus.Obfuscate(h, key, got)
			if !bytes.Equal(got, want) {
				t.Fatalf("key %d bytes, body %d bytes:\n got %x\nwant %x", len(key), n, got, want)
			}
			tacplus.Obfuscate(h, key, got)
			if !bytes.Equal(got, body) {
				t.Fatalf("key %d bytes, body %d bytes: obfuscating twice is not the identity", len(key), n)
			}
		}
	}
}
