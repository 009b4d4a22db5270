package tacplus_test

import (
	"crypto/md5"
	"io"
	"strconv"
	"testing"

	"github.com/tacagent/tacagent/tacplus"
)

// benchSamples is one sample per body type: the packets of a PAP login, an ASCII exchange, a command
// authorization and an accounting record.
var benchSamples = []string{"authen_start_pap", "authen_reply_getpass", "authen_continue", "author_request",
	"author_response", "acct_request", "acct_reply"}

// obfuscateSizes are body sizes from a PAP START (about 40 bytes) to the 64 KiB maximum.
var obfuscateSizes = []int{16, 64, 256, 1024, 4096, 65536}

// loopReader replays b forever, so that a benchmark can read the same packet again and again through one
// Reader, as a connection's reader goroutine does.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.b[l.off:])
	l.off = (l.off + n) % len(l.b)
	return n, nil
}

// BenchmarkEncode appends a whole obfuscated packet into a reused buffer (AppendPacket).
func BenchmarkEncode(b *testing.B) {
	for _, name := range benchSamples {
		s := sampleByName(b, name)
		c := keyedCodec(b, tacplus.RoleClient)
		h := s.header()
		buf := make([]byte, 0, 4096)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(mustPacket(b, c, h, s.body))))
			for b.Loop() {
				var err error
				if buf, err = c.AppendPacket(buf[:0], h, s.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecode frames one obfuscated packet from a stream (Reader.Next) and decodes it into a reused
// body (DecodeBody): the receive path of a connection.
func BenchmarkDecode(b *testing.B) { benchDecode(b, false) }

// BenchmarkDecodeFresh is BenchmarkDecode with a new body for every packet (Codec.NewBody), as a caller
// that keeps the decoded values would do.
func BenchmarkDecodeFresh(b *testing.B) { benchDecode(b, true) }

func benchDecode(b *testing.B, fresh bool) {
	for _, name := range benchSamples {
		s := sampleByName(b, name)
		pkt := mustPacket(b, keyedCodec(b, tacplus.RoleClient), s.header(), s.body)
		rx := keyedCodec(b, roleFor(s.seq))
		b.Run(name, func(b *testing.B) {
			rd := rx.NewReader(&loopReader{b: pkt})
			body := freshBody(s.body)
			b.ReportAllocs()
			b.SetBytes(int64(len(pkt)))
			for b.Loop() {
				h, raw, err := rd.Next()
				if err != nil {
					b.Fatal(err)
				}
				if fresh {
					if body, err = rx.NewBody(h); err != nil {
						b.Fatal(err)
					}
				}
				if err := rx.DecodeBody(h, raw, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkObfuscate runs the section 4.5 pad over bodies of each size, with testKey.
func BenchmarkObfuscate(b *testing.B) {
	h := tacplus.Header{Version: 0xc1, SeqNo: 1, SessionID: testSession}
	for _, n := range obfuscateSizes {
		body := make([]byte, n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				tacplus.Obfuscate(h, testKey, body)
			}
		})
	}
}

// BenchmarkBaselineMD5 is a bare crypto/md5.Sum over the same sizes: the floor Obfuscate is compared with
// in docs/perf.md (the pad needs one MD5 block per 16 body bytes, md5.Sum one per 64).
func BenchmarkBaselineMD5(b *testing.B) {
	for _, n := range obfuscateSizes {
		data := make([]byte, n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				_ = md5.Sum(data)
			}
		})
	}
}

// BenchmarkBaselineReadFull is a bare io.ReadFull of the same packet bytes from the same kind of stream: the
// floor BenchmarkDecode is compared with.
func BenchmarkBaselineReadFull(b *testing.B) {
	for _, name := range benchSamples {
		s := sampleByName(b, name)
		pkt := mustPacket(b, keyedCodec(b, tacplus.RoleClient), s.header(), s.body)
		buf := make([]byte, len(pkt))
		b.Run(name, func(b *testing.B) {
			r := &loopReader{b: pkt}
			b.ReportAllocs()
			b.SetBytes(int64(len(pkt)))
			for b.Loop() {
				if _, err := io.ReadFull(r, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
