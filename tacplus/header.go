package tacplus

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
)

// Header sizes and versions, RFC 8907 section 4.1.
const (
	HeaderLen           = 12
	MajorVersion        = 0xc
	MinorVersionDefault = 0x0
	MinorVersionOne     = 0x1

	// DefaultMaxBodyLen is the largest body accepted unless configured otherwise. Section 4.1 asks that
	// implementations let the maximum be controlled and recommends 2^16.
	DefaultMaxBodyLen = 64 << 10
)

// Header is the 12-byte packet header (section 4.1). Version holds the whole version byte
// (major << 4 | minor).
type Header struct {
	Version   uint8
	Type      PacketType
	SeqNo     uint8
	Flags     HeaderFlag
	SessionID uint32
	Length    uint32 // body length; the encoder fills it in
}

// MinorVersion returns the low nibble of the version byte.
func (h Header) MinorVersion() uint8 { return h.Version & 0x0f }

// VersionByte builds the version byte for a minor version.
func VersionByte(minor uint8) uint8 { return MajorVersion<<4 | minor&0x0f }

func (h Header) String() string {
	return fmt.Sprintf("%s v%d.%d seq=%d flags=%s session=0x%08x len=%d",
		h.Type, h.Version>>4, h.Version&0x0f, h.SeqNo, h.Flags, h.SessionID, h.Length)
}

// appendHeader writes h in wire order.
func appendHeader(b []byte, h Header) []byte {
	b = append(b, h.Version, byte(h.Type), h.SeqNo, byte(h.Flags))
	b = binary.BigEndian.AppendUint32(b, h.SessionID)
	return binary.BigEndian.AppendUint32(b, h.Length)
}

// ParseHeader decodes and validates a header: the major version must be 0xc and the minor 0 or 1
// (section 4.1), the type must be one the RFC defines, and seq_no must not be 0 (it starts at 1,
// section 4.1). Length is returned as read; the caller checks it against its maximum.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, errf(ReasonShort, "header", "%d of %d bytes", len(b), HeaderLen)
	}
	h := Header{
		Version:   b[0],
		Type:      PacketType(b[1]),
		SeqNo:     b[2],
		Flags:     HeaderFlag(b[3]),
		SessionID: binary.BigEndian.Uint32(b[4:8]),
		Length:    binary.BigEndian.Uint32(b[8:12]),
	}
	if h.Version>>4 != MajorVersion {
		return h, errf(ReasonVersion, "major_version", "0x%x, want 0x%x", h.Version>>4, MajorVersion)
	}
	if m := h.MinorVersion(); m > MinorVersionOne {
		return h, errf(ReasonVersion, "minor_version", "0x%x is not defined", m)
	}
	if !h.Type.Valid() {
		return h, errf(ReasonType, "type", "%s", h.Type)
	}
	if h.SeqNo == 0 {
		return h, errf(ReasonSeq, "seq_no", "0 is never sent: sessions start at 1")
	}
	return h, nil
}

// FromClient reports whether a packet with this header was sent by a client: clients send odd sequence
// numbers and servers even ones (section 4.1).
func (h Header) FromClient() bool { return h.SeqNo%2 == 1 }

// StartMinorVersion returns the minor version a START with this action and type must carry, from the
// table of section 5.4.1; ok is false for combinations the table marks invalid ("-").
func StartMinorVersion(action AuthenAction, t AuthenType) (minor uint8, ok bool) {
	switch t {
	case AuthenTypeASCII:
		if action == ActionLogin || action == ActionChPass {
			return MinorVersionDefault, true
		}
	case AuthenTypePAP, AuthenTypeCHAP, AuthenTypeMSCHAP, AuthenTypeMSCHAPv2:
		if action == ActionLogin || action == ActionSendAuth {
			return MinorVersionOne, true
		}
	}
	return 0, false
}

// NewSessionID returns a random non-zero session_id from crypto/rand (section 4.1: "the session_id
// SHOULD be cryptographically random").
func NewSessionID() (uint32, error) {
	var b [4]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("tacplus: session id: %w", err)
		}
		if id := binary.BigEndian.Uint32(b[:]); id != 0 {
			return id, nil
		}
	}
}
