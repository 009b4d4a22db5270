package spool

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/tacplus"
)

// Record is one accounting record as the spool keeps it: the request the agent sends (section 7.1) and
// the server group it goes to.
type Record struct {
	// Seq is the record's place in the spool, assigned by Append: records are accepted, and within a task
	// sent, in Seq order.
	Seq uint64
	// Accepted is when the spool accepted the record (the age of the oldest record in status).
	Accepted time.Time
	// Group is the server group ("" is the default group).
	Group string
	Req   messages.AcctRequest
}

// Task returns the record's task_id (section 8.3), the key of its ordering: the records of one task are
// delivered in the order they were accepted. "" when the record has none (the spool refuses those).
func (r *Record) Task() string {
	for _, a := range r.Req.Args {
		if n, v, _, ok := tacplus.SplitArg(a); ok && n == "task_id" {
			return v
		}
	}
	return ""
}

// The record file format, one bbolt value per record, keyed by Seq as 8 bytes big-endian:
//
//	version  1 byte  (recordVersion)
//	accepted 8 bytes Unix nanoseconds, big-endian, signed
//	flags, method, priv_lvl, authen_type, authen_service: 1 byte each
//	group, user, port, rem_addr: each a string
//	arg count: 2 bytes, then each argument a string
//
// A string is a 2-byte big-endian length and that many bytes. Nothing may follow the last argument.
// The decoder checks every length before it slices, and refuses anything else (decodeError).
const (
	recordVersion = 1
	fixedLen      = 1 + 8 + 5
	// maxField bounds one string; RFC 8907 fields are at most 255 bytes, the group name is ours.
	maxField = math.MaxUint16
	maxArgs  = 255 // section 6.1: arg_cnt is one byte
)

// DecodeError is a record the spool cannot read back from its own file: a corrupt value, or one written by
// a future version. Reason is a short fixed phrase; Offset is where decoding stopped.
type DecodeError struct {
	Reason string
	Offset int
}

func (e *DecodeError) Error() string {
	return "spool: undecodable record: " + e.Reason + " at byte " + strconv.Itoa(e.Offset)
}

// encodeRecord appends r's value (everything but Seq, which is the key) to b.
func encodeRecord(b []byte, r *Record) ([]byte, error) {
	q := &r.Req
	if len(q.Args) > maxArgs {
		return b, fmt.Errorf("spool: %d arguments, at most %d (RFC 8907 section 6.1)", len(q.Args), maxArgs)
	}
	b = append(b, recordVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Accepted.UnixNano()))
	b = append(b, byte(q.Flags), byte(q.Method), q.PrivLvl, byte(q.Type), byte(q.Service))
	var err error
	for _, s := range [...]string{r.Group, q.User, q.Port, q.RemAddr} {
		if b, err = appendString(b, s); err != nil {
			return b, err
		}
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(q.Args)))
	for _, a := range q.Args {
		if b, err = appendString(b, a); err != nil {
			return b, err
		}
	}
	return b, nil
}

func appendString(b []byte, s string) ([]byte, error) {
	if len(s) > maxField {
		return b, fmt.Errorf("spool: a field of %d bytes, at most %d", len(s), maxField)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...), nil
}

// decodeRecord reads a value written by encodeRecord. The strings are copied out of v (bbolt's memory is
// only valid inside its transaction), in one allocation.
func decodeRecord(seq uint64, v []byte) (*Record, error) {
	if len(v) < fixedLen {
		return nil, &DecodeError{Reason: "short record", Offset: len(v)}
	}
	if v[0] != recordVersion {
		return nil, &DecodeError{Reason: "unknown version " + strconv.Itoa(int(v[0]))}
	}
	s := string(v) // one copy; every string below points into it
	r := &Record{Seq: seq, Accepted: time.Unix(0, int64(binary.BigEndian.Uint64(v[1:9])))}
	q := &r.Req
	q.Flags, q.Method, q.PrivLvl = tacplus.AcctFlag(v[9]), tacplus.AuthenMethod(v[10]), v[11]
	q.Type, q.Service = tacplus.AuthenType(v[12]), tacplus.AuthenService(v[13])
	off := fixedLen
	str := func() (string, error) {
		if len(s)-off < 2 {
			return "", &DecodeError{Reason: "short length", Offset: off}
		}
		n := int(binary.BigEndian.Uint16(v[off:]))
		off += 2
		if len(s)-off < n {
			return "", &DecodeError{Reason: "string past the end", Offset: off}
		}
		out := s[off : off+n]
		off += n
		return out, nil
	}
	var err error
	for _, f := range [...]*string{&r.Group, &q.User, &q.Port, &q.RemAddr} {
		if *f, err = str(); err != nil {
			return nil, err
		}
	}
	if len(s)-off < 2 {
		return nil, &DecodeError{Reason: "short argument count", Offset: off}
	}
	n := int(binary.BigEndian.Uint16(v[off:]))
	off += 2
	if n > maxArgs {
		return nil, &DecodeError{Reason: "too many arguments", Offset: off - 2}
	}
	// Each argument needs at least its 2-byte length: a count the rest cannot hold is refused before the
	// slice is made, so a corrupt count cannot make a large allocation.
	if n > (len(s)-off)/2 {
		return nil, &DecodeError{Reason: "argument count past the end", Offset: off - 2}
	}
	if n > 0 {
		q.Args = make([]string, n)
		for i := range q.Args {
			if q.Args[i], err = str(); err != nil {
				return nil, err
			}
		}
	}
	if off != len(s) {
		return nil, &DecodeError{Reason: "trailing bytes", Offset: off}
	}
	return r, nil
}

// The dead-letter value: the reason as a string (same encoding), then the record's value.
func encodeDead(reason string, rec []byte) []byte {
	if len(reason) > 1024 {
		reason = reason[:1024]
	}
	b, _ := appendString(make([]byte, 0, 2+len(reason)+len(rec)), reason)
	return append(b, rec...)
}

// decodeDead splits a dead-letter value into its reason and record.
func decodeDead(seq uint64, v []byte) (string, *Record, error) {
	if len(v) < 2 {
		return "", nil, &DecodeError{Reason: "short dead letter", Offset: len(v)}
	}
	n := int(binary.BigEndian.Uint16(v))
	if len(v)-2 < n {
		return "", nil, &DecodeError{Reason: "dead letter reason past the end", Offset: 2}
	}
	r, err := decodeRecord(seq, v[2+n:])
	if err != nil {
		return "", nil, err
	}
	return string(v[2 : 2+n]), r, nil
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq) }

func keySeq(k []byte) (uint64, bool) {
	if len(k) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(k), true
}
