//go:build !race

package tacplus_test

import (
	"reflect"
	"testing"

	"github.com/tacagent/tacagent/tacplus"
)

// The race detector adds allocations of its own, so the budget is checked only without it.

// TestAllocs pins the allocation budget of the hot paths (issue 2: decode and encode allocate at most once
// per packet). Encoding into a reused buffer allocates nothing; framing plus decoding into a reused body
// allocates once, the string that every field of the body points into. A fresh body adds the body itself
// and, when it has arguments, the Args slice.
func TestAllocs(t *testing.T) {
	for _, name := range benchSamples {
		s := sampleByName(t, name)
		tx := keyedCodec(t, tacplus.RoleClient)
		h := s.header()
		buf := make([]byte, 0, 4096)
		encode := testing.AllocsPerRun(100, func() {
			var err error
			if buf, err = tx.AppendPacket(buf[:0], h, s.body); err != nil {
				t.Fatal(err)
			}
		})

		pkt := mustPacket(t, tx, h, s.body)
		rx := keyedCodec(t, roleFor(s.seq))
		rd := rx.NewReader(&loopReader{b: pkt})
		reused := freshBody(s.body)
		decode := testing.AllocsPerRun(100, func() {
			h, raw, err := rd.Next()
			if err != nil {
				t.Fatal(err)
			}
			if err := rx.DecodeBody(h, raw, reused); err != nil {
				t.Fatal(err)
			}
		})
		fresh := testing.AllocsPerRun(100, func() {
			h, raw, err := rd.Next()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := rx.NewBody(h)
			if err := rx.DecodeBody(h, raw, b); err != nil {
				t.Fatal(err)
			}
		})
		wantFresh := 2.0 // the body and its string
		if hasArgs(s.body) {
			wantFresh++ // the Args slice
		}
		if encode != 0 || decode != 1 || fresh != wantFresh {
			t.Errorf("%s: allocations per packet: encode %.0f (want 0), decode into a reused body %.0f (want 1), "+
				"into a fresh body %.0f (want %.0f)", name, encode, decode, fresh, wantFresh)
		}
	}
}

func hasArgs(b tacplus.Body) bool {
	f := reflect.ValueOf(b).Elem().FieldByName("Args")
	return f.IsValid() && f.Len() > 0
}
