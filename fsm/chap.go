package fsm

import (
	"crypto/des"
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf16"

	//lint:ignore SA1019 MS-CHAP v1 and v2 are defined on MD4 (RFC 2433, RFC 2759); there is no substitute.
	"golang.org/x/crypto/md4"

	"github.com/tacagent/tacagent/tacplus"
)

// Lengths of the challenge/response data of RFC 8907 sections 5.4.2.3 to 5.4.2.5. The START's data is
// the PPP identifier (1 byte), the challenge, then the response.
const (
	CHAPResponseLen      = 16 // MD5 digest (RFC 1994)
	MSCHAPResponseLen    = 49 // MS-CHAP v1 and v2 responses (RFC 2433 section 4, RFC 2759 section 4)
	MSCHAPv1ChallengeLen = 8  // section 5.4.2.4: "MUST reject ... challenge deviates from 8 bytes"
	MSCHAPv2ChallengeLen = 16 // section 5.4.2.5: 16 bytes
	MSCHAPv2PeerLen      = 16 // RFC 2759 section 4: the peer challenge
	// maxStartData is the START data_len limit: a single byte (section 5.1).
	maxStartData = 255
)

// CHAPResponse computes the CHAP response of RFC 1994 section 4.1 with MD5, as section 5.4.2.3 requires:
// MD5(identifier || secret || challenge).
func CHAPResponse(id byte, password string, challenge []byte) [CHAPResponseLen]byte {
	h := md5.New()
	h.Write([]byte{id})
	h.Write([]byte(password))
	h.Write(challenge)
	var out [CHAPResponseLen]byte
	h.Sum(out[:0])
	return out
}

// NTPasswordHash is MD4 over the password in UTF-16LE (RFC 2759 section 8.3, RFC 2433 appendix A).
func NTPasswordHash(password string) [16]byte {
	h := md4.New()
	h.Write(utf16le(password))
	var out [16]byte
	h.Sum(out[:0])
	return out
}

// utf16le encodes s as the little-endian UTF-16 that Windows passwords use (RFC 2759 section 4: "Unicode").
func utf16le(s string) []byte {
	units := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(units))
	for i, u := range units {
		b[2*i] = byte(u)
		b[2*i+1] = byte(u >> 8)
	}
	return b
}

// ChallengeResponse is the DES construction of RFC 2759 section 8.5 (RFC 2433 appendix A.5): the 16-byte
// password hash, padded with zeros to 21 bytes, gives three 7-byte DES keys; each encrypts the 8-byte
// challenge.
func ChallengeResponse(challenge [8]byte, passwordHash [16]byte) [24]byte {
	var z [21]byte
	copy(z[:], passwordHash[:])
	var out [24]byte
	for i := 0; i < 3; i++ {
		key := desKey(z[7*i : 7*i+7])
		// des.NewCipher only fails on a key that is not 8 bytes.
		c, _ := des.NewCipher(key[:])
		c.Encrypt(out[8*i:8*i+8], challenge[:])
	}
	return out
}

// desKey spreads 56 key bits over 8 bytes, 7 bits per byte with the low (parity) bit set for odd parity
// (RFC 2759 section 8.6, DesEncrypt's MakeKey). crypto/des ignores the parity bits; they are set anyway so
// that the key is a well-formed DES key.
func desKey(k []byte) [8]byte {
	var out [8]byte
	out[0] = k[0]
	out[1] = k[0]<<7 | k[1]>>1
	out[2] = k[1]<<6 | k[2]>>2
	out[3] = k[2]<<5 | k[3]>>3
	out[4] = k[3]<<4 | k[4]>>4
	out[5] = k[4]<<3 | k[5]>>5
	out[6] = k[5]<<2 | k[6]>>6
	out[7] = k[6] << 1
	for i, b := range out {
		b &^= 1
		ones := 0
		for x := b; x != 0; x &= x - 1 {
			ones++
		}
		if ones%2 == 0 {
			b |= 1
		}
		out[i] = b
	}
	return out
}

// MSCHAPv1Response builds the 49-byte MS-CHAP response of RFC 2433 section 4: a LAN Manager response
// (left as zeros: the LM hash is too weak to send), the NT response, and the "use NT response" flag set
// to 1.
func MSCHAPv1Response(password string, challenge [MSCHAPv1ChallengeLen]byte) [MSCHAPResponseLen]byte {
	var out [MSCHAPResponseLen]byte
	nt := ChallengeResponse(challenge, NTPasswordHash(password))
	copy(out[24:48], nt[:])
	out[48] = 1
	return out
}

// ChallengeHash is RFC 2759 section 8.2: the first 8 bytes of SHA1(peer challenge || authenticator
// challenge || user name), where the user name is stripped of any "DOMAIN\" prefix (section 4).
func ChallengeHash(peerChallenge, authChallenge [16]byte, user string) [8]byte {
	if i := strings.LastIndexByte(user, '\\'); i >= 0 {
		user = user[i+1:]
	}
	h := sha1.New()
	h.Write(peerChallenge[:])
	h.Write(authChallenge[:])
	h.Write([]byte(user))
	var sum [sha1.Size]byte
	h.Sum(sum[:0])
	var out [8]byte
	copy(out[:], sum[:8])
	return out
}

// MSCHAPv2NTResponse is GenerateNTResponse of RFC 2759 section 8.1.
func MSCHAPv2NTResponse(authChallenge, peerChallenge [16]byte, user, password string) [24]byte {
	return ChallengeResponse(ChallengeHash(peerChallenge, authChallenge, user), NTPasswordHash(password))
}

// MSCHAPv2Response builds the 49-byte MS-CHAP-V2 response of RFC 2759 section 4: the peer challenge, 8
// reserved zero bytes, the NT response and a zero flags byte.
func MSCHAPv2Response(authChallenge, peerChallenge [16]byte, user, password string) [MSCHAPResponseLen]byte {
	var out [MSCHAPResponseLen]byte
	copy(out[:16], peerChallenge[:])
	nt := MSCHAPv2NTResponse(authChallenge, peerChallenge, user, password)
	copy(out[24:48], nt[:])
	return out
}

// MSCHAPv2AuthenticatorResponse is GenerateAuthenticatorResponse of RFC 2759 section 8.7: the
// "S=<40 hex digits>" string an authenticator returns to prove it knows the password too.
func MSCHAPv2AuthenticatorResponse(password string, ntResponse [24]byte, peerChallenge, authChallenge [16]byte, user string) string {
	const (
		magic1 = "Magic server to client signing constant"
		magic2 = "Pad to make it do more than one iteration"
	)
	ph := NTPasswordHash(password)
	phh := md4.New()
	phh.Write(ph[:])
	h := sha1.New()
	h.Write(phh.Sum(nil))
	h.Write(ntResponse[:])
	h.Write([]byte(magic1))
	digest := h.Sum(nil)
	ch := ChallengeHash(peerChallenge, authChallenge, user)
	h.Reset()
	h.Write(digest)
	h.Write(ch[:])
	h.Write([]byte(magic2))
	return "S=" + strings.ToUpper(hex.EncodeToString(h.Sum(nil)))
}

// SplitCHAPData splits the data of a CHAP, MS-CHAP or MS-CHAP-V2 START into the PPP identifier, the
// challenge and the response, by the fixed response lengths of sections 5.4.2.3 to 5.4.2.5. It checks the
// challenge lengths those sections fix (8 bytes for MS-CHAP, 16 for MS-CHAP-V2; at least one for CHAP).
func SplitCHAPData(t tacplus.AuthenType, data string) (id byte, challenge, response string, err error) {
	respLen, chalLen := 0, 0
	switch t {
	case tacplus.AuthenTypeCHAP:
		respLen = CHAPResponseLen
	case tacplus.AuthenTypeMSCHAP:
		respLen, chalLen = MSCHAPResponseLen, MSCHAPv1ChallengeLen
	case tacplus.AuthenTypeMSCHAPv2:
		respLen, chalLen = MSCHAPResponseLen, MSCHAPv2ChallengeLen
	default:
		return 0, "", "", badPacket(tacplus.ReasonEnum, "authen_type", "%s carries no challenge", t)
	}
	n := len(data) - 1 - respLen
	switch {
	case n < 1:
		return 0, "", "", badPacket(tacplus.ReasonLength, "data", "%d bytes: too short for a %s identifier, challenge and response", len(data), t)
	case chalLen != 0 && n != chalLen:
		return 0, "", "", badPacket(tacplus.ReasonLength, "data", "%s challenge of %d bytes, want %d", t, n, chalLen)
	}
	return data[0], data[1 : 1+n], data[1+n:], nil
}

// chapData builds the START data of a challenge/response authen_type (sections 5.4.2.3 to 5.4.2.5).
func chapData(c *AuthenConfig) (string, error) {
	b := make([]byte, 0, maxStartData)
	b = append(b, c.ChallengeID)
	switch c.Type {
	case tacplus.AuthenTypeCHAP:
		if len(c.Challenge) == 0 || 1+len(c.Challenge)+CHAPResponseLen > maxStartData {
			return "", fmt.Errorf("CHAP needs a challenge of 1 to %d bytes, got %d", maxStartData-1-CHAPResponseLen, len(c.Challenge))
		}
		r := CHAPResponse(c.ChallengeID, string(c.Password), c.Challenge)
		b = append(append(b, c.Challenge...), r[:]...)
	case tacplus.AuthenTypeMSCHAP:
		var ch [MSCHAPv1ChallengeLen]byte
		if len(c.Challenge) != len(ch) {
			return "", fmt.Errorf("MS-CHAP needs a challenge of %d bytes (RFC 8907 section 5.4.2.4), got %d", len(ch), len(c.Challenge))
		}
		copy(ch[:], c.Challenge)
		r := MSCHAPv1Response(string(c.Password), ch)
		b = append(append(b, ch[:]...), r[:]...)
	case tacplus.AuthenTypeMSCHAPv2:
		var ch, peer [MSCHAPv2ChallengeLen]byte
		if len(c.Challenge) != len(ch) || len(c.PeerChallenge) != len(peer) {
			return "", fmt.Errorf("MS-CHAP-V2 needs a challenge and a peer challenge of %d bytes (RFC 8907 section 5.4.2.5), got %d and %d",
				len(ch), len(c.Challenge), len(c.PeerChallenge))
		}
		copy(ch[:], c.Challenge)
		copy(peer[:], c.PeerChallenge)
		r := MSCHAPv2Response(ch, peer, c.User, string(c.Password))
		b = append(append(b, ch[:]...), r[:]...)
	}
	return string(b), nil
}
