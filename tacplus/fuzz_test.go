package tacplus_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tacagent/tacagent/tacplus"
)

// Fuzz targets: one per decoder (each body's Unmarshal, ParseHeader, Codec.Decode, Reader.Next). Besides
// "no panic", each asserts properties:
//   - a refused input is a *DecodeError with a known Reason, of class ErrProtocol or ErrBadSecret;
//   - whatever decodes re-encodes to the very same bytes (every encoding in RFC 8907 is canonical, save the
//     deprecated accounting MORE bit, which is accepted on receipt and never sent: section 7.2);
//   - decoding again into a reused body gives the same value;
//   - Codec.Decode and Reader.Next + DecodeBody agree, whatever the slicing of the stream.
//
// The seed corpus lives in testdata/fuzz/<FuzzName>/seed-*; `go test -run TestFuzzCorpus -update-corpus`
// rewrites it from the samples below, and TestFuzzCorpus checks it is current.

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed files under testdata/fuzz")

// checkCodecError asserts the shape every codec error must have.
func checkCodecError(t *testing.T, err error, keyed bool) {
	t.Helper()
	var de *tacplus.DecodeError
	if !errors.As(err, &de) || !slices.Contains(tacplus.Reasons(), de.Reason) {
		t.Fatalf("untyped error %T: %v", err, err)
	}
	switch tacplus.ClassOf(err) {
	case tacplus.ErrProtocol:
	case tacplus.ErrBadSecret:
		if !keyed {
			t.Fatalf("bad secret without a key: %v", err)
		}
	default:
		t.Fatalf("error %v has class %v", err, tacplus.ClassOf(err))
	}
}

// reencode checks that a decoded body encodes back to wire. It returns wire as the encoder must produce it:
// unchanged, except that a MORE bit is cleared (and removed from b).
func reencode(t *testing.T, b tacplus.Body, wire []byte, encode func() ([]byte, error), moreAt int) {
	t.Helper()
	if a, ok := b.(*tacplus.AcctRequest); ok && a.Flags&tacplus.AcctFlagMore != 0 {
		if _, err := encode(); tacplus.ReasonOf(err) != tacplus.ReasonEnum {
			t.Fatalf("MORE was sent: %v", err)
		}
		a.Flags &^= tacplus.AcctFlagMore
		wire = slices.Clone(wire)
		wire[moreAt] &^= byte(tacplus.AcctFlagMore)
	}
	out, err := encode()
	if err != nil {
		t.Fatalf("decoded %#v but cannot re-encode it: %v", b, err)
	}
	if !bytes.Equal(out, wire) {
		t.Fatalf("re-encoding differs:\n got %x\nwant %x", out, wire)
	}
}

func fuzzBody(f *testing.F, proto tacplus.Body) {
	f.Fuzz(func(t *testing.T, data []byte) {
		b := freshBody(proto)
		if err := b.Unmarshal(data); err != nil {
			checkCodecError(t, err, false)
			if tacplus.ReasonOf(err) == tacplus.ReasonBadSecret {
				t.Fatalf("Unmarshal cannot know about keys: %v", err)
			}
			return
		}
		_ = fmt.Sprintf("%v %+v %#v %d %s", b, b, b, b, b)
		reencode(t, b, data, func() ([]byte, error) { return b.AppendBody(nil) }, 0)
		again := staleBody(b)
		if err := again.Unmarshal(mustAppendBody(t, b)); err != nil || !equalBodies(again, b) {
			t.Fatalf("second decode into a reused body: %#v, %v", again, err)
		}
	})
}

func FuzzAuthenStart(f *testing.F)    { fuzzBody(f, new(tacplus.AuthenStart)) }
func FuzzAuthenReply(f *testing.F)    { fuzzBody(f, new(tacplus.AuthenReply)) }
func FuzzAuthenContinue(f *testing.F) { fuzzBody(f, new(tacplus.AuthenContinue)) }
func FuzzAuthorRequest(f *testing.F)  { fuzzBody(f, new(tacplus.AuthorRequest)) }
func FuzzAuthorResponse(f *testing.F) { fuzzBody(f, new(tacplus.AuthorResponse)) }
func FuzzAcctRequest(f *testing.F)    { fuzzBody(f, new(tacplus.AcctRequest)) }
func FuzzAcctReply(f *testing.F)      { fuzzBody(f, new(tacplus.AcctReply)) }

// FuzzParseHeader: a header that parses reflects its bytes exactly; one that does not has a header reason.
func FuzzParseHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := tacplus.ParseHeader(data)
		if err != nil {
			checkCodecError(t, err, false)
			if r := tacplus.ReasonOf(err); !slices.Contains([]tacplus.Reason{tacplus.ReasonShort, tacplus.ReasonVersion, tacplus.ReasonType, tacplus.ReasonSeq}, r) ||
				(len(data) < tacplus.HeaderLen) != (r == tacplus.ReasonShort) {
				t.Fatalf("%d bytes: reason %s", len(data), r)
			}
			return
		}
		_ = h.String()
		if h.Version != data[0] || byte(h.Type) != data[1] || h.SeqNo != data[2] || byte(h.Flags) != data[3] ||
			h.SessionID != binary.BigEndian.Uint32(data[4:]) || h.Length != binary.BigEndian.Uint32(data[8:]) {
			t.Fatalf("header %v does not reflect %x", h, data[:tacplus.HeaderLen])
		}
		if h.Version>>4 != tacplus.MajorVersion || h.MinorVersion() > 1 || !h.Type.Valid() || h.SeqNo == 0 ||
			tacplus.VersionByte(h.MinorVersion()) != h.Version || h.FromClient() != (h.SeqNo%2 == 1) {
			t.Fatalf("accepted header %v breaks section 4.1", h)
		}
	})
}

// Fuzz modes for the codec targets: the receiving role, the section 4.5 mode, and (for FuzzDecode) whether
// the harness obfuscates the body first, so that the fuzzer can mutate clear text behind a key; (for
// FuzzReader) whether the stream arrives one byte per Read.
const (
	modeServer      = 1 << iota // receive as a server (odd seq_no), else as a client
	modeUnencrypted             // unencrypted codec, else keyed with testKey
	modeObfuscate               // FuzzDecode: obfuscate the body with testKey first; FuzzReader: one byte per Read
)

func fuzzCodec(t *testing.T, mode uint8) *tacplus.Codec {
	o := tacplus.Options{Role: tacplus.RoleClient, Key: testKey}
	if mode&modeServer != 0 {
		o.Role = tacplus.RoleServer
	}
	if mode&modeUnencrypted != 0 {
		o.Key, o.Unencrypted, o.AllowUnencrypted = nil, true, true
	}
	return newCodec(t, o)
}

// FuzzDecode: Codec.Decode on one packet; a packet that decodes re-encodes to the same bytes with the same
// codec, and a Reader over the same bytes yields the same header and body.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, pkt []byte, mode uint8) {
		c := fuzzCodec(t, mode)
		if mode&modeObfuscate != 0 && !c.Unencrypted() && len(pkt) >= tacplus.HeaderLen {
			pkt = slices.Clone(pkt)
			h := tacplus.Header{Version: pkt[0], SeqNo: pkt[2], SessionID: binary.BigEndian.Uint32(pkt[4:])}
			tacplus.Obfuscate(h, testKey, pkt[tacplus.HeaderLen:])
		}
		h, b, err := c.Decode(pkt)
		if err != nil {
			checkCodecError(t, err, !c.Unencrypted())
			return
		}
		rh, raw, err := c.NewReader(bytes.NewReader(pkt)).Next()
		if err != nil || rh != h {
			t.Fatalf("Decode gave %v but Reader.Next %v, %v", h, rh, err)
		}
		rb := freshBody(b)
		if err := c.DecodeBody(rh, raw, rb); err != nil || !equalBodies(rb, b) {
			t.Fatalf("Decode and Reader disagree: %#v vs %#v (%v)", b, rb, err)
		}
		_ = fmt.Sprintf("%v %+v %#v %d", b, b, b, b)
		// The encoder obfuscates with the clear MORE bit, so compare clear bytes when MORE was set.
		if a, ok := b.(*tacplus.AcctRequest); ok && a.Flags&tacplus.AcctFlagMore != 0 {
			clear := append(slices.Clone(pkt[:tacplus.HeaderLen]), raw...)
			reencode(t, b, clear, func() ([]byte, error) {
				out, err := c.AppendPacket(nil, h, b)
				if err == nil && !c.Unencrypted() {
					tacplus.Obfuscate(h, testKey, out[tacplus.HeaderLen:])
				}
				return out, err
			}, tacplus.HeaderLen)
			return
		}
		reencode(t, b, pkt, func() ([]byte, error) { return c.AppendPacket(nil, h, b) }, 0)
	})
}

// FuzzReader: Reader.Next over a stream of packets; every packet it frames is exactly the bytes Decode
// accepts or refuses in the same way, and the stream ends in io.EOF only at a packet boundary.
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream []byte, mode uint8) {
		c := fuzzCodec(t, mode)
		var src io.Reader = bytes.NewReader(stream)
		if mode&modeObfuscate != 0 {
			src = iotest.OneByteReader(src)
		}
		rd := c.NewReader(src)
		// The same stream through a buffered Reader (a small buffer, so packets straddle reads): the same
		// packets and errors, and Ready only when the next packet is whole in the buffer.
		brd := c.NewBufferedReader(iotest.HalfReader(bytes.NewReader(stream)), 16+int(mode))
		for off := 0; ; {
			ready := brd.Ready()
			bh, braw, berr := brd.Next()
			h, raw, err := rd.Next()
			if (berr == nil) != (err == nil) || (err != nil && (errors.Is(berr, io.EOF) != errors.Is(err, io.EOF) ||
				tacplus.ReasonOf(berr) != tacplus.ReasonOf(err))) || (err == nil && (bh != h || !bytes.Equal(braw, raw))) {
				t.Fatalf("buffered Reader %v %v, Reader %v %v", bh, berr, h, err)
			}
			if ready && tacplus.ReasonOf(err) == tacplus.ReasonShort {
				t.Fatalf("Ready before a packet the stream cuts short: %v", err)
			}
			if err == io.EOF {
				if off != len(stream) {
					t.Fatalf("io.EOF with %d bytes left", len(stream)-off)
				}
				return
			}
			if err != nil {
				checkCodecError(t, err, false)
				return
			}
			pkt := stream[off : off+tacplus.HeaderLen+int(h.Length)]
			off += len(pkt)
			b, err := c.NewBody(h)
			if err != nil {
				t.Fatalf("NewBody for a framed header %v: %v", h, err)
			}
			bodyErr := c.DecodeBody(h, raw, b)
			dh, db, decErr := c.Decode(pkt)
			if (bodyErr == nil) != (decErr == nil) || tacplus.ReasonOf(bodyErr) != tacplus.ReasonOf(decErr) {
				t.Fatalf("Reader path %v, Decode %v", bodyErr, decErr)
			}
			if bodyErr != nil {
				checkCodecError(t, bodyErr, !c.Unencrypted())
				continue // a body error leaves the stream in step
			}
			if dh != h || !equalBodies(db, b) {
				t.Fatalf("Reader path %v %#v, Decode %v %#v", h, b, dh, db)
			}
		}
	})
}

// corpusEntry is one seed file: a name and the fuzz arguments.
type corpusEntry struct {
	name string
	args []any
}

// seedCorpus returns the seed files of every target: valid packets of every type and known-bad ones.
// Bodies above 2 KiB are left out to keep the repository small; the fuzzer grows lengths itself.
func seedCorpus(t testing.TB) map[string][]corpusEntry {
	out := map[string][]corpusEntry{}
	add := func(target, name string, args ...any) {
		out[target] = append(out[target], corpusEntry{name, args})
	}
	targets := map[string]string{"*tacplus.AuthenStart": "FuzzAuthenStart", "*tacplus.AuthenReply": "FuzzAuthenReply",
		"*tacplus.AuthenContinue": "FuzzAuthenContinue", "*tacplus.AuthorRequest": "FuzzAuthorRequest",
		"*tacplus.AuthorResponse": "FuzzAuthorResponse", "*tacplus.AcctRequest": "FuzzAcctRequest", "*tacplus.AcctReply": "FuzzAcctReply"}
	seenType := map[string]bool{}
	for _, c := range allCases() {
		wire := mustAppendBody(t, c.body)
		if len(wire) > 2048 {
			continue
		}
		target := targets[fmt.Sprintf("%T", c.body)]
		add(target, c.name, wire)
		add(target, c.name+"-short", wire[:len(wire)-1])
		// Whole packets, one per body type: keyed, unencrypted, and clear-then-obfuscated.
		role := uint8(0)
		if roleFor(c.seq) == tacplus.RoleServer {
			role = modeServer
		}
		h := c.header()
		keyed := mustPacket(t, keyedCodec(t, tacplus.RoleClient), h, c.body)
		clear := mustPacket(t, clearCodec(t, tacplus.RoleClient), h, c.body)
		if strings.Contains(c.name, "empty") || strings.Contains(c.name, "max") || strings.Contains(c.name, "255") {
			continue
		}
		typ := fmt.Sprintf("%T", c.body)
		if !seenType[typ] {
			seenType[typ] = true
			add("FuzzDecode", c.name+"-keyed", keyed, role)
			add("FuzzDecode", c.name+"-unencrypted", clear, role|modeUnencrypted)
			clear[3] &^= byte(tacplus.FlagUnencrypted)
			add("FuzzDecode", c.name+"-clear-then-obfuscated", clear, role|modeObfuscate)
			add("FuzzParseHeader", c.name, keyed[:tacplus.HeaderLen])
		}
	}
	// Known-bad bodies, one per rule family.
	for _, b := range []struct{ target, name, spec string }{
		{"FuzzAuthenStart", "bad-action", `03 01 01 01 00 00 00 00`},
		{"FuzzAuthenStart", "bad-user-utf8", `01 01 01 01 01 00 00 00 ff`},
		{"FuzzAuthenStart", "trailing", `01 01 01 01 00 00 00 00 00`},
		{"FuzzAuthenReply", "bad-server-msg", `01 00 0001 0000 1b`},
		{"FuzzAuthenReply", "overrun", `01 00 ffff ffff`},
		{"FuzzAuthenContinue", "abort-bad-reason", `0000 0001 01 07`},
		{"FuzzAuthorRequest", "arg-no-separator", `06 00 00 00 00 00 00 01 03 "cmd"`},
		{"FuzzAuthorRequest", "arg-cnt-overrun", `06 00 00 00 00 00 00 ff`},
		{"FuzzAuthorResponse", "follow", `21 01 0000 0000 03 "a=b"`},
		{"FuzzAcctRequest", "more-bit", `03 06 00 00 00 00 00 00 01 03 "a=b"`},
		{"FuzzAcctRequest", "start-stop", `06 06 00 00 00 00 00 00 00`},
		{"FuzzAcctReply", "bad-status", `0000 0000 09`},
	} {
		add(b.target, b.name, hx(t, b.spec))
	}
	for _, h := range []struct{ name, spec string }{
		{"bad-major", `b0 01 01 00 00000001 00000000`}, {"bad-minor", `c2 01 01 00 00000001 00000000`},
		{"type-0", `c0 00 01 00 00000001 00000000`}, {"seq-0", `c0 01 00 00 00000001 00000000`},
		{"short", `c0 01 01 00 00000001 0000`},
	} {
		add("FuzzParseHeader", h.name, hx(t, h.spec))
	}
	s := sampleByName(t, "authen_start_pap")
	good := mustPacket(t, keyedCodec(t, tacplus.RoleClient), s.header(), s.body)
	wrongKey := mustPacket(t, newCodec(t, tacplus.Options{Key: []byte("other")}), s.header(), s.body)
	add("FuzzDecode", "wrong-key", wrongKey, uint8(modeServer))
	add("FuzzDecode", "flag-mismatch", good, uint8(modeServer|modeUnencrypted))
	add("FuzzDecode", "truncated", good[:len(good)-3], uint8(modeServer))
	add("FuzzDecode", "length-mismatch", append(slices.Clone(good), 0), uint8(modeServer))

	for _, opts := range []tacplus.Options{{Key: testKey}, {Unencrypted: true, AllowUnencrypted: true}} {
		for _, st := range streams(t, opts) {
			mode := uint8(0)
			if st.role == tacplus.RoleServer {
				mode |= modeServer
			}
			if opts.Unencrypted {
				mode |= modeUnencrypted
			}
			name := st.role.String() + map[bool]string{true: "-unencrypted", false: "-keyed"}[opts.Unencrypted]
			add("FuzzReader", name, st.wire, mode)
			add("FuzzReader", name+"-one-byte", st.wire, mode|modeObfuscate)
			add("FuzzReader", name+"-truncated", st.wire[:len(st.wire)-5], mode)
		}
	}
	bad := craft(0xc0, tacplus.TypeAcct, 2, testKey, hx(t, `0000 0000 09`))
	add("FuzzReader", "bad-body-then-good", append(bad, mustPacket(t, keyedCodec(t, tacplus.RoleServer), sampleByName(t, "acct_reply").header(), sampleBody("acct_reply"))...), uint8(0))
	return out
}

// encodeCorpusFile renders fuzz arguments in the "go test fuzz v1" file format.
func encodeCorpusFile(args []any) []byte {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			b.WriteString("[]byte(" + strconv.Quote(string(v)) + ")\n")
		case uint8:
			b.WriteString("uint8(" + strconv.Itoa(int(v)) + ")\n")
		default:
			panic(fmt.Sprintf("corpus value of type %T", a))
		}
	}
	return []byte(b.String())
}

// TestFuzzCorpus checks that the checked-in seed files match seedCorpus (or rewrites them with
// -update-corpus), and that every target has seeds.
func TestFuzzCorpus(t *testing.T) {
	targets := []string{"FuzzAuthenStart", "FuzzAuthenReply", "FuzzAuthenContinue", "FuzzAuthorRequest", "FuzzAuthorResponse",
		"FuzzAcctRequest", "FuzzAcctReply", "FuzzParseHeader", "FuzzDecode", "FuzzReader"}
	corpus := seedCorpus(t)
	for _, target := range targets {
		entries := corpus[target]
		if len(entries) == 0 {
			t.Errorf("%s has no seeds", target)
		}
		dir := filepath.Join("testdata", "fuzz", target)
		if *updateCorpus {
			old, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
			for _, f := range old {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, e := range entries {
			path := filepath.Join(dir, "seed-"+e.name)
			want := encodeCorpusFile(e.args)
			if *updateCorpus {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s is missing or stale (run go test -run TestFuzzCorpus -update-corpus ./tacplus/): %v", path, err)
			}
		}
	}
	for target := range corpus {
		if !slices.Contains(targets, target) {
			t.Errorf("seeds for unknown target %s", target)
		}
	}
}
