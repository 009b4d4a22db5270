package tacplus

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Role says which side of the protocol a Codec serves. It decides which sequence numbers are valid on
// receipt (clients send odd numbers, servers even ones: RFC 8907 section 4.1) and which body types
// arrive.
type Role uint8

// The two roles.
const (
	RoleClient Role = iota + 1 // receives REPLY and RESPONSE bodies
	RoleServer                 // receives START, CONTINUE and REQUEST bodies
)

func (r Role) String() string {
	switch r {
	case RoleClient:
		return "client"
	case RoleServer:
		return "server"
	}
	return unknown("role", uint8(r))
}

// Options configures a Codec. The zero value is not usable: set Key, or set Unencrypted with
// AllowUnencrypted.
type Options struct {
	// Role is the side this codec serves. Default RoleClient.
	Role Role
	// Key is the shared secret used for obfuscation (section 4.5). It is never logged or printed.
	Key []byte
	// Unencrypted sends and expects bodies in the clear, with TAC_PLUS_UNENCRYPTED_FLAG set. Section 10.5.2
	// forbids it in production; it is refused unless AllowUnencrypted is also set. TLS transports (RFC 9887)
	// set both, since obfuscation must not be used inside TLS.
	Unencrypted      bool
	AllowUnencrypted bool
	// MaxBodyLen bounds the body length accepted from the peer. Default DefaultMaxBodyLen (64 KiB).
	MaxBodyLen uint32
}

// Codec encodes and decodes packets for one peer: obfuscation, flags, limits. It is immutable and safe
// for concurrent use.
type Codec struct {
	role        Role
	key         []byte
	unencrypted bool
	maxBody     uint32
}

// NewCodec validates o and returns a Codec.
func NewCodec(o Options) (*Codec, error) {
	c := &Codec{role: o.Role, unencrypted: o.Unencrypted, maxBody: o.MaxBodyLen}
	if c.role == 0 {
		c.role = RoleClient
	}
	if c.role != RoleClient && c.role != RoleServer {
		return nil, &Error{Class: ErrConfig, Msg: "codec role " + c.role.String()}
	}
	if c.maxBody == 0 {
		c.maxBody = DefaultMaxBodyLen
	}
	switch {
	case o.Unencrypted && !o.AllowUnencrypted:
		return nil, &Error{Class: ErrConfig, Msg: "unencrypted TACACS+ is refused unless explicitly allowed (RFC 8907 section 10.5.2)"}
	case o.Unencrypted && len(o.Key) > 0:
		return nil, &Error{Class: ErrConfig, Msg: "a key and unencrypted mode are mutually exclusive"}
	case !o.Unencrypted && len(o.Key) == 0:
		return nil, &Error{Class: ErrConfig, Msg: "no shared key configured"}
	}
	c.key = append([]byte(nil), o.Key...)
	return c, nil
}

// Role returns the side the codec serves.
func (c *Codec) Role() Role { return c.role }

// Unencrypted reports whether bodies travel in the clear.
func (c *Codec) Unencrypted() bool { return c.unencrypted }

// MaxBodyLen returns the largest body accepted.
func (c *Codec) MaxBodyLen() uint32 { return c.maxBody }

// String never shows the key.
func (c *Codec) String() string {
	mode := "obfuscated"
	if c.unencrypted {
		mode = "unencrypted"
	}
	return fmt.Sprintf("tacplus.Codec{role=%s mode=%s max=%d}", c.role, mode, c.maxBody)
}

// DefaultVersion returns the version byte a packet carrying b must use: the section 5.4.1 table for a
// START, minor version 0 for everything else a client starts. Replies echo the request's version.
func DefaultVersion(b Body) uint8 {
	if s, ok := b.(*AuthenStart); ok {
		if m, ok := StartMinorVersion(s.Action, s.Type); ok {
			return VersionByte(m)
		}
	}
	return VersionByte(MinorVersionDefault)
}

// checkRequestVersion enforces section 5.4.1 on the bodies that fix a session's version: a START must
// carry the minor version of the table, authorization and accounting requests minor version 0.
func checkRequestVersion(h Header, b Body) error {
	var want uint8
	switch b := b.(type) {
	case *AuthenStart:
		m, ok := StartMinorVersion(b.Action, b.Type)
		if !ok {
			return nil // the body's own validation reports the combination
		}
		want = m
	case *AuthorRequest, *AcctRequest:
		want = MinorVersionDefault
	default:
		return nil
	}
	if h.MinorVersion() != want {
		return errf(ReasonVersion, "minor_version", "%d, RFC 8907 section 5.4.1 requires %d here", h.MinorVersion(), want)
	}
	return nil
}

// AppendPacket appends the whole wire packet (header, then obfuscated body) to dst, so that a caller can
// write it in one Write and coalesce several packets into one buffer. The header's Type, Length and
// UNENCRYPTED flag are set from body and the codec; a zero Version is replaced by DefaultVersion. On error
// dst is returned unchanged in length.
func (c *Codec) AppendPacket(dst []byte, h Header, body Body) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderLen)...)
	dst, err := body.AppendBody(dst)
	if err != nil {
		return dst[:start], err
	}
	n := len(dst) - start - HeaderLen
	if uint64(n) > uint64(c.maxBody) {
		return dst[:start], errf(ReasonTooLarge, "length", "body of %d bytes exceeds the maximum %d", n, c.maxBody)
	}
	h.Type = body.PacketType()
	h.Length = uint32(n)
	if h.Version == 0 {
		h.Version = DefaultVersion(body)
	}
	if err := checkRequestVersion(h, body); err != nil {
		return dst[:start], err
	}
	if h.SeqNo == 0 {
		return dst[:start], errf(ReasonSeq, "seq_no", "0 is never sent: sessions start at 1")
	}
	if c.unencrypted {
		h.Flags |= FlagUnencrypted
	} else {
		h.Flags &^= FlagUnencrypted
	}
	appendHeader(dst[start:start], h)
	if !c.unencrypted {
		Obfuscate(h, c.key, dst[start+HeaderLen:])
	}
	return dst, nil
}

// Marshal returns the wire packet for h and body in a new buffer.
func (c *Codec) Marshal(h Header, body Body) ([]byte, error) {
	return c.AppendPacket(make([]byte, 0, HeaderLen+64), h, body)
}

// checkHeader applies the checks that need the configuration: the body limit, the sequence parity of the
// peer's role and the UNENCRYPTED flag (sections 4.1, 4.5, 10.5.2).
func (c *Codec) checkHeader(h Header) error {
	if h.Length > c.maxBody {
		return errf(ReasonTooLarge, "length", "body of %d bytes exceeds the maximum %d", h.Length, c.maxBody)
	}
	if fromClient := h.FromClient(); fromClient != (c.role == RoleServer) {
		return errf(ReasonSeq, "seq_no", "%d has the wrong parity for a packet from the %s", h.SeqNo, peerOf(c.role))
	}
	if got := h.Flags&FlagUnencrypted != 0; got != c.unencrypted {
		if got {
			return errf(ReasonFlags, "flags", "peer sent an unencrypted packet but a key is configured (RFC 8907 section 10.5.2)")
		}
		return errf(ReasonFlags, "flags", "peer sent an obfuscated packet but unencrypted mode is configured")
	}
	return nil
}

func peerOf(r Role) string {
	if r == RoleServer {
		return "client"
	}
	return "server"
}

// NewBody returns an empty body of the type a packet with header h carries, as seen by this codec's role:
// a client receives REPLY and RESPONSE bodies; a server receives a START at seq_no 1, CONTINUEs after it,
// and REQUESTs.
func (c *Codec) NewBody(h Header) (Body, error) {
	switch h.Type {
	case TypeAuthen:
		switch {
		case c.role == RoleClient:
			return new(AuthenReply), nil
		case h.SeqNo == 1:
			return new(AuthenStart), nil
		default:
			return new(AuthenContinue), nil
		}
	case TypeAuthor:
		if c.role == RoleClient {
			return new(AuthorResponse), nil
		}
		return new(AuthorRequest), nil
	case TypeAcct:
		if c.role == RoleClient {
			return new(AcctReply), nil
		}
		return new(AcctRequest), nil
	}
	return nil, errf(ReasonType, "type", "%s", h.Type)
}

// DecodeBody decodes a clear-text body into dst. When the body had been obfuscated, field lengths that do
// not add up mean the keys differ, and the error's reason is ReasonBadSecret (class ErrBadSecret) instead of
// ReasonLength.
func (c *Codec) DecodeBody(h Header, body []byte, dst Body) error {
	if dst.PacketType() != h.Type {
		return errf(ReasonType, "type", "header says %s, body is %s", h.Type, dst.PacketType())
	}
	err := dst.Unmarshal(body)
	if err != nil {
		var de *DecodeError
		if errors.As(err, &de) && de.Reason == ReasonLength && h.Flags&FlagUnencrypted == 0 {
			return &DecodeError{Reason: ReasonBadSecret, Field: de.Field,
				Detail: "field lengths do not add up after de-obfuscation: the shared keys differ (" + de.Detail + ")"}
		}
		return err
	}
	return checkRequestVersion(h, dst)
}

// Decode decodes one whole packet held in pkt: the header's length must match the bytes that follow
// exactly. pkt is not modified.
func (c *Codec) Decode(pkt []byte) (Header, Body, error) {
	h, err := ParseHeader(pkt)
	if err != nil {
		return h, nil, err
	}
	if err := c.checkHeader(h); err != nil {
		return h, nil, err
	}
	if got := len(pkt) - HeaderLen; uint64(got) != uint64(h.Length) {
		return h, nil, errf(ReasonLength, "length", "header says %d body bytes, packet has %d", h.Length, got)
	}
	body := append([]byte(nil), pkt[HeaderLen:]...)
	if !c.unencrypted {
		Obfuscate(h, c.key, body)
	}
	b, err := c.NewBody(h)
	if err != nil {
		return h, nil, err
	}
	if err := c.DecodeBody(h, body, b); err != nil {
		return h, nil, err
	}
	return h, b, nil
}

// Reader reads framed packets from a byte stream. It copes with any slicing of the stream (one byte per
// Read included) because it reads exactly the header, then exactly the body the header announces. It is not
// safe for concurrent use; a connection has one reader goroutine.
type Reader struct {
	r   io.Reader
	br  *bufio.Reader // set by NewBufferedReader; r is br then
	c   *Codec
	hdr [HeaderLen]byte
	buf []byte
}

// NewReader returns a Reader of packets from r. It reads exactly what each packet needs, so r may be shared
// with other readers between packets.
func (c *Codec) NewReader(r io.Reader) *Reader { return &Reader{r: r, c: c} }

// NewBufferedReader returns a Reader that reads r through a buffer of size bytes: one Read system call
// brings in as many packets as the peer has sent, and Ready says whether the next one is already whole in
// the buffer. The Reader then owns r: it reads ahead.
func (c *Codec) NewBufferedReader(r io.Reader, size int) *Reader {
	br := bufio.NewReaderSize(r, size)
	return &Reader{r: br, br: br, c: c}
}

// Ready reports whether the next packet is entirely in the buffer, so that Next returns it without reading
// the stream (and without blocking). It is always false for a Reader made by NewReader.
func (r *Reader) Ready() bool {
	if r.br == nil || r.br.Buffered() < HeaderLen {
		return false
	}
	hdr, err := r.br.Peek(HeaderLen)
	if err != nil {
		return false
	}
	return uint64(r.br.Buffered()-HeaderLen) >= uint64(binary.BigEndian.Uint32(hdr[8:12]))
}

// Next reads the next packet and returns its header and de-obfuscated body. The body is valid until the
// next call to Next. At a clean end of stream between packets it returns io.EOF; a stream that ends inside
// a packet gives a ReasonShort error that wraps io.ErrUnexpectedEOF. After any error other than a body
// decode error the stream is out of step and must be closed.
func (r *Reader) Next() (Header, []byte, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Header{}, nil, &streamError{errf(ReasonShort, "header", "stream ended inside a packet header"), err}
		}
		return Header{}, nil, err
	}
	h, err := ParseHeader(r.hdr[:])
	if err != nil {
		return h, nil, err
	}
	if err := r.c.checkHeader(h); err != nil {
		return h, nil, err
	}
	if cap(r.buf) < int(h.Length) {
		r.buf = make([]byte, h.Length, max(int(h.Length), 1024))
	}
	body := r.buf[:h.Length]
	if n, err := io.ReadFull(r.r, body); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return h, nil, &streamError{errf(ReasonShort, "body", "stream ended after %d of %d body bytes", n, h.Length), io.ErrUnexpectedEOF}
		}
		return h, nil, err
	}
	if !r.c.unencrypted {
		Obfuscate(h, r.c.key, body)
	}
	return h, body, nil
}

// streamError is a codec error caused by the stream ending: it matches both its DecodeError (ErrProtocol,
// its Reason) and the I/O cause.
type streamError struct {
	*DecodeError
	cause error
}

func (e *streamError) Unwrap() []error { return []error{e.DecodeError, e.cause} }
