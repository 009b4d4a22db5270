package tacplus

import "encoding/binary"

// Body is one packet body. AppendBody validates the fields and appends the clear-text body to dst;
// Unmarshal validates and decodes a clear-text body. Unmarshal keeps no reference to b: it copies b once
// into a string and points every field into that copy, so decoding costs one allocation (plus the Args
// slice when the receiver's is too small).
type Body interface {
	PacketType() PacketType
	AppendBody(dst []byte) ([]byte, error)
	Unmarshal(b []byte) error
}

// lenError reports field lengths that do not add up; Codec.DecodeBody turns it into a bad-secret error when
// the body had been obfuscated.
func lenError(field string, want, got int) error {
	return errf(ReasonLength, field, "fields add up to %d bytes, body has %d", want, got)
}

func shortError(field string, want, got int) error {
	return errf(ReasonShort, field, "need at least %d bytes, have %d", want, got)
}

func check8(field string, s string) error {
	if len(s) > 0xff {
		return errf(ReasonLength, field, "%d bytes, the limit is 255", len(s))
	}
	return nil
}

func check16(field string, s string) error {
	if len(s) > 0xffff {
		return errf(ReasonLength, field, "%d bytes, the limit is 65535", len(s))
	}
	return nil
}

func checkPriv(p uint8) error {
	if p > MaxPrivLvl {
		return errf(ReasonEnum, "priv_lvl", "%d, the maximum is %d", p, MaxPrivLvl)
	}
	return nil
}

// reuseArgs returns a slice of n strings, reusing old's storage when it is large enough.
func reuseArgs(old []string, n int) []string {
	if n == 0 {
		return old[:0]
	}
	if cap(old) >= n {
		return old[:n]
	}
	return make([]string, n)
}

// argsTotal sums n argument lengths starting at b[off].
func argsTotal(b []byte, off, n int) int {
	t := 0
	for i := 0; i < n; i++ {
		t += int(b[off+i])
	}
	return t
}

// splitArgs points out[i] at consecutive arguments of s starting at off, with lengths from lens.
func splitArgs(out []string, s string, off int, lens []byte) int {
	for i, l := range lens {
		out[i] = s[off : off+int(l)]
		off += int(l)
	}
	return off
}

func appendArgs(b []byte, args []string) []byte {
	for _, a := range args {
		b = append(b, a...)
	}
	return b
}

func appendArgLens(b []byte, args []string) []byte {
	for _, a := range args {
		b = append(b, byte(len(a)))
	}
	return b
}

func u16(b []byte, off int) int { return int(binary.BigEndian.Uint16(b[off:])) }
