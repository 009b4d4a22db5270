package spool

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

func TestRecordRoundTrip(t *testing.T) {
	recs := []*Record{
		{Seq: 1, Accepted: time.Unix(0, 1764900000123456789), Group: "core", Req: record("42", tacplus.AcctFlagStart, 1)},
		{Seq: 2, Accepted: time.Unix(0, 0), Req: record("", tacplus.AcctFlagStop, 0)},
		{Seq: 3, Accepted: time.Unix(-5, 0)},
	}
	long := record("big", tacplus.AcctFlagWatchdog, 0)
	long.Args = append(long.Args, "cmd-arg="+strings.Repeat("x", 250))
	recs = append(recs, &Record{Seq: 4, Accepted: time.Unix(1, 2), Req: long})
	for _, r := range recs {
		v, err := encodeRecord(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRecord(r.Seq, v)
		if err != nil {
			t.Fatalf("seq %d: %v", r.Seq, err)
		}
		if !got.Accepted.Equal(r.Accepted) {
			t.Errorf("accepted %v, want %v", got.Accepted, r.Accepted)
		}
		got.Accepted = r.Accepted
		if !reflect.DeepEqual(got, r) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
		}
		// Every strict prefix is refused, never read as a shorter record.
		for i := range len(v) {
			if _, err := decodeRecord(1, v[:i]); err == nil {
				t.Fatalf("seq %d: prefix of %d bytes decoded", r.Seq, i)
			}
		}
		if _, err := decodeRecord(1, append(bytes.Clone(v), 0)); err == nil {
			t.Errorf("trailing byte accepted")
		}
	}
}

func TestRecordRefusals(t *testing.T) {
	v, _ := encodeRecord(nil, &Record{Req: record("1", tacplus.AcctFlagStart, 0)})
	bad := bytes.Clone(v)
	bad[0] = 9
	var de *DecodeError
	if _, err := decodeRecord(1, bad); !errors.As(err, &de) || !strings.Contains(de.Reason, "version") {
		t.Errorf("version: %v", err)
	}
	r := &Record{Req: record("1", tacplus.AcctFlagStart, 0)}
	r.Req.Args = make([]string, 256)
	if _, err := encodeRecord(nil, r); err == nil {
		t.Error("256 arguments encoded")
	}
	r.Req.Args = []string{strings.Repeat("a", 70000)}
	if _, err := encodeRecord(nil, r); err == nil {
		t.Error("a 70000-byte field encoded")
	}
}

func TestDeadRoundTrip(t *testing.T) {
	v, _ := encodeRecord(nil, &Record{Accepted: time.Unix(7, 0), Req: record("1", tacplus.AcctFlagStart, 0)})
	reason, r, err := decodeDead(5, encodeDead("ERROR: malformed", v))
	if err != nil || reason != "ERROR: malformed" || r.Task() != "1" || r.Seq != 5 {
		t.Fatalf("%q %+v %v", reason, r, err)
	}
}

// FuzzDecodeRecord: the decoder reads what the spool finds in its own file, which a crash, a bad disk or
// another program may have damaged. It must never panic or allocate beyond the input, and what it accepts
// must encode back to the same bytes (one encoding per record).
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range []*Record{
		{Accepted: time.Unix(0, 1764900000123456789), Group: "core", Req: record("42", tacplus.AcctFlagStart, 1)},
		{Req: record("7", tacplus.AcctFlagStop, 0)},
		{},
	} {
		v, err := encodeRecord(nil, r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v)
		f.Add(v[:len(v)/2])
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := decodeRecord(1, v)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		back, err := encodeRecord(nil, r)
		if err != nil {
			t.Fatalf("decoded but cannot encode: %v", err)
		}
		if !bytes.Equal(back, v) {
			t.Fatalf("not canonical:\n in %x\nout %x", v, back)
		}
		_, _, _ = decodeDead(1, v)
	})
}
