package tacplus_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/tacagent/tacagent/tacplus"
)

// stream is the samples one role receives, encoded back to back as they would arrive on one connection
// (section 4.3: single-connection mode puts many sessions on one stream).
type stream struct {
	role   tacplus.Role
	wire   []byte
	bodies []tacplus.Body
	ends   []int // offset just past each packet
}

func streams(t testing.TB, opts tacplus.Options) []stream {
	t.Helper()
	out := []stream{{role: tacplus.RoleServer}, {role: tacplus.RoleClient}}
	for _, s := range samples() {
		st := &out[0]
		if roleFor(s.seq) == tacplus.RoleClient {
			st = &out[1]
		}
		o := opts
		o.Role = tacplus.RoleClient // the sender; AppendPacket does not depend on the role
		var err error
		if st.wire, err = newCodec(t, o).AppendPacket(st.wire, s.header(), s.body); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		st.bodies = append(st.bodies, s.body)
		st.ends = append(st.ends, len(st.wire))
	}
	return out
}

// chunkReader returns the stream in random slices of 1 to 40 bytes: the TCP segmentation a reader must
// survive (pam_tacplus once assumed one read returned a whole packet).
type chunkReader struct {
	r   io.Reader
	rng *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if n := 1 + c.rng.IntN(40); len(p) > n {
		p = p[:n]
	}
	return c.r.Read(p)
}

var slicings = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"one_byte", iotest.OneByteReader},
	{"half", iotest.HalfReader},
	{"data_err", iotest.DataErrReader},
	{"data_err_one_byte", func(r io.Reader) io.Reader { return iotest.DataErrReader(iotest.OneByteReader(r)) }},
	{"random_chunks", func(r io.Reader) io.Reader { return &chunkReader{r, rand.New(rand.NewPCG(1, 2))} }},
}

// readAll reads packets until an error, decoding each into a fresh body of the expected type.
func readAll(t *testing.T, c *tacplus.Codec, r io.Reader, want []tacplus.Body) (n int, err error) {
	t.Helper()
	rd := c.NewReader(r)
	for {
		h, raw, err := rd.Next()
		if err != nil {
			return n, err
		}
		if n >= len(want) {
			t.Fatalf("packet %d beyond the %d sent", n, len(want))
		}
		b := freshBody(want[n])
		if err := c.DecodeBody(h, raw, b); err != nil {
			t.Fatalf("packet %d: DecodeBody: %v", n, err)
		}
		if !equalBodies(b, want[n]) {
			t.Fatalf("packet %d: got %#v, want %#v", n, b, want[n])
		}
		n++
	}
}

// TestReaderSlicing reads every stream, in both modes, under every slicing: each packet must come out
// whole and in order, followed by a clean io.EOF.
func TestReaderSlicing(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts tacplus.Options
	}{
		{"obfuscated", tacplus.Options{Key: testKey}},
		{"unencrypted", tacplus.Options{Unencrypted: true, AllowUnencrypted: true}},
	} {
		for _, st := range streams(t, mode.opts) {
			o := mode.opts
			o.Role = st.role
			c := newCodec(t, o)
			for _, sl := range slicings {
				t.Run(mode.name+"/"+st.role.String()+"/"+sl.name, func(t *testing.T) {
					n, err := readAll(t, c, sl.wrap(bytes.NewReader(st.wire)), st.bodies)
					if err != io.EOF || n != len(st.bodies) {
						t.Fatalf("read %d of %d packets, then %v (want io.EOF)", n, len(st.bodies), err)
					}
				})
			}
		}
	}
}

// TestReaderTruncated cuts a stream at every byte: packets before the cut decode; a cut between packets is a
// clean io.EOF, a cut inside one is a ReasonShort protocol error that also matches io.ErrUnexpectedEOF.
func TestReaderTruncated(t *testing.T) {
	st := streams(t, tacplus.Options{Key: testKey})[0]
	c := keyedCodec(t, st.role)
	for cut := 0; cut < len(st.wire); cut++ {
		whole := 0
		for whole < len(st.ends) && st.ends[whole] <= cut {
			whole++
		}
		atBoundary := cut == 0 || (whole > 0 && st.ends[whole-1] == cut)
		for _, sl := range slicings[:2] {
			n, err := readAll(t, c, sl.wrap(bytes.NewReader(st.wire[:cut])), st.bodies)
			if n != whole {
				t.Fatalf("cut %d (%s): read %d packets, want %d", cut, sl.name, n, whole)
			}
			if atBoundary {
				if err != io.EOF {
					t.Fatalf("cut %d (%s) between packets: %v, want io.EOF", cut, sl.name, err)
				}
				continue
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, tacplus.ErrProtocol) || tacplus.ReasonOf(err) != tacplus.ReasonShort {
				t.Fatalf("cut %d (%s) inside a packet: %v", cut, sl.name, err)
			}
		}
	}
}

// TestReaderIOError passes an I/O error from the stream through unchanged: it is not a protocol error.
func TestReaderIOError(t *testing.T) {
	st := streams(t, tacplus.Options{Key: testKey})[0]
	c := keyedCodec(t, st.role)
	for _, cut := range []int{0, 5, tacplus.HeaderLen, tacplus.HeaderLen + 3} {
		r := io.MultiReader(bytes.NewReader(st.wire[:cut]), iotest.ErrReader(iotest.ErrTimeout))
		_, _, err := c.NewReader(iotest.OneByteReader(r)).Next()
		if !errors.Is(err, iotest.ErrTimeout) || errors.Is(err, tacplus.ErrProtocol) {
			t.Fatalf("error after %d bytes: %v", cut, err)
		}
	}
}

// TestReaderHeaderErrors: the Reader applies the header rules (sections 4.1, 4.5) before it reads a body.
func TestReaderHeaderErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		opts   tacplus.Options
		pkt    []byte
		reason tacplus.Reason
	}{
		{"wrong parity", clientKeyed, craft(0xc1, tacplus.TypeAuthen, 1, testKey, []byte{1, 2}), tacplus.ReasonSeq},
		{"unencrypted flag", serverKeyed, craft(0xc1, tacplus.TypeAuthen, 1, nil, []byte{1, 2}), tacplus.ReasonFlags},
		{"bad version", serverKeyed, craft(0xd1, tacplus.TypeAuthen, 1, testKey, []byte{1, 2}), tacplus.ReasonVersion},
	} {
		r := bytes.NewReader(c.pkt)
		_, _, err := newCodec(t, c.opts).NewReader(r).Next()
		if tacplus.ReasonOf(err) != c.reason || r.Len() != len(c.pkt)-tacplus.HeaderLen {
			t.Errorf("%s: %v, %d bytes unread", c.name, err, r.Len())
		}
	}
}

// TestReaderKeepsStepAfterBodyError: a body that fails validation leaves the stream in step, so the next
// packet on the connection still decodes.
func TestReaderKeepsStepAfterBodyError(t *testing.T) {
	bad := craft(0xc0, tacplus.TypeAcct, 2, testKey, hx(t, `0000 0000 09`)) // acct REPLY status 0x09
	good := sampleByName(t, "acct_reply")
	wire := append(bad, mustPacket(t, keyedCodec(t, tacplus.RoleServer), good.header(), good.body)...)
	c := keyedCodec(t, tacplus.RoleClient)
	rd := c.NewReader(iotest.OneByteReader(bytes.NewReader(wire)))
	for i, wantErr := range []bool{true, false} {
		h, raw, err := rd.Next()
		if err != nil {
			t.Fatalf("packet %d: Next: %v", i, err)
		}
		var b tacplus.AcctReply
		if err := c.DecodeBody(h, raw, &b); (err != nil) != wantErr {
			t.Fatalf("packet %d: DecodeBody: %v", i, err)
		}
	}
}

// writeCounter counts Write calls.
type writeCounter struct {
	bytes.Buffer
	writes int
}

func (w *writeCounter) Write(p []byte) (int, error) { w.writes++; return w.Buffer.Write(p) }

// TestAppendPacketCoalesces: packets append into one buffer that goes out in one Write (no header/body
// split that a slow peer could see separately), a failed append leaves the batch untouched, and the Reader
// takes the batch apart again.
func TestAppendPacketCoalesces(t *testing.T) {
	tx := keyedCodec(t, tacplus.RoleServer)
	var batch []byte
	var sent []tacplus.Body
	for _, s := range samples() {
		if roleFor(s.seq) != tacplus.RoleClient {
			continue
		}
		before := append([]byte(nil), batch...)
		bad := &tacplus.AuthenReply{Status: 0}
		if out, err := tx.AppendPacket(batch, s.header(), bad); err == nil || !bytes.Equal(out, before) {
			t.Fatalf("failed append changed the batch (err %v)", err)
		}
		var err error
		if batch, err = tx.AppendPacket(batch, s.header(), s.body); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		sent = append(sent, s.body)
	}
	var w writeCounter
	if _, err := w.Write(batch); err != nil || w.writes != 1 {
		t.Fatalf("writes %d", w.writes)
	}
	if n, err := readAll(t, keyedCodec(t, tacplus.RoleClient), &w.Buffer, sent); err != io.EOF || n != len(sent) {
		t.Fatalf("read back %d of %d: %v", n, len(sent), err)
	}
}

// TestBufferedReaderReady: a buffered Reader returns the same packets as an unbuffered one under every
// slicing, and Ready is true exactly when the next packet is whole in its buffer, so a caller that asks
// Ready before Next never blocks on a packet that has not arrived.
func TestBufferedReaderReady(t *testing.T) {
	for _, st := range streams(t, tacplus.Options{Key: testKey}) {
		c := keyedCodec(t, st.role)
		for _, sl := range slicings {
			r := c.NewBufferedReader(sl.wrap(bytes.NewReader(st.wire)), 64)
			for i, want := range st.bodies {
				h, body, err := r.Next()
				if err != nil {
					t.Fatalf("%s packet %d: %v", sl.name, i, err)
				}
				got, err := c.NewBody(h)
				if err == nil {
					err = c.DecodeBody(h, body, got)
				}
				if err != nil || !equalBodies(normalized(got), normalized(want)) {
					t.Fatalf("%s packet %d: %v %+v", sl.name, i, err, got)
				}
			}
			if r.Ready() {
				t.Fatalf("%s: Ready at the end of the stream", sl.name)
			}
			if _, _, err := r.Next(); !errors.Is(err, io.EOF) {
				t.Fatalf("%s: after the last packet: %v", sl.name, err)
			}
		}
		// Whole stream in one read: after the first Next every following packet is Ready; a partial
		// packet (the last one cut short) is not.
		cut := st.wire[:len(st.wire)-1]
		r := c.NewBufferedReader(bytes.NewReader(cut), len(cut)+1)
		for i := range st.bodies {
			if i > 0 {
				if ready, want := r.Ready(), i < len(st.bodies)-1; ready != want {
					t.Fatalf("packet %d: Ready %v, want %v", i, ready, want)
				}
			}
			if i == len(st.bodies)-1 {
				break
			}
			if _, _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
		}
		if c.NewReader(bytes.NewReader(st.wire)).Ready() {
			t.Fatal("an unbuffered Reader reports Ready")
		}
	}
}
