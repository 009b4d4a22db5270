package tacplustest

import (
	"crypto/des"
	"crypto/md5"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"strings"
	"unicode/utf16"

	//lint:ignore SA1019 MS-CHAP v1 and v2 are defined on MD4 (RFC 2433, RFC 2759); there is no substitute.
	"golang.org/x/crypto/md4"
)

// Field sizes of the CHAP and MS-CHAP data of RFC 8907 sections 5.4.2.3 - 5.4.2.5: the data field is the
// PPP identifier (1 octet), the challenge, then the response.
const (
	chapResponseLen     = md5.Size // RFC 1994 section 4.1: an MD5 value
	mschapResponseLen   = 49       // RFC 2433 section 5 / RFC 2759 section 4: the Response packet's Value
	mschapv1Challenge   = 8        // RFC 2433 section 5
	mschapv2Challenge   = 16       // RFC 2759 section 4
	ntResponseLen       = 24
	mschapv1NTOffset    = 24 // RFC 2433: 24 octets LM response, 24 octets NT response, 1 octet flags
	mschapv2PeerLen     = 16 // RFC 2759: 16 octets peer challenge, 8 reserved, 24 NT response, 1 flags
	mschapv2NTOffset    = 24
	mschapv1UseNT       = 0x01
	authenticatorPrefix = "S="
)

// RFC 2759 section 8.7 constants.
const (
	magic1 = "Magic server to client signing constant"
	magic2 = "Pad to make it do more than one iteration"
)

// chapVerdict is the result of checking one challenge/response.
type chapVerdict struct {
	ok        bool
	malformed bool   // the data field has the wrong shape
	lm        bool   // an MS-CHAPv1 response asking to use the LM hash
	data      string // PASS data: the MS-CHAPv2 authenticator response
}

// verifyCHAP checks CHAP data (section 5.4.2.3) against secret: the response must be
// MD5(identifier || secret || challenge) (RFC 1994 section 4.1).
func verifyCHAP(data, secret string) chapVerdict {
	if len(data) < 1+1+chapResponseLen {
		return chapVerdict{malformed: true}
	}
	challenge := data[1 : len(data)-chapResponseLen]
	want := chapResponse(data[0], secret, challenge)
	return chapVerdict{ok: subtle.ConstantTimeCompare(want[:], []byte(data[len(data)-chapResponseLen:])) == 1}
}

// verifyMSCHAPv1 checks MS-CHAP data (section 5.4.2.4): the NT response must be
// ChallengeResponse(challenge, NtPasswordHash(secret)) (RFC 2433 section A.5). LM responses are refused.
func verifyMSCHAPv1(data, secret string) chapVerdict {
	if len(data) != 1+mschapv1Challenge+mschapResponseLen {
		return chapVerdict{malformed: true}
	}
	challenge := []byte(data[1 : 1+mschapv1Challenge])
	resp := data[1+mschapv1Challenge:]
	if resp[mschapResponseLen-1]&mschapv1UseNT == 0 {
		return chapVerdict{lm: true}
	}
	hash := ntPasswordHash(secret)
	want := challengeResponse(challenge, hash[:])
	got := resp[mschapv1NTOffset : mschapv1NTOffset+ntResponseLen]
	return chapVerdict{ok: subtle.ConstantTimeCompare(want[:], []byte(got)) == 1}
}

// verifyMSCHAPv2 checks MS-CHAPv2 data (section 5.4.2.5) for user against secret (RFC 2759 section 8.1).
// On success data holds the authenticator response "S=<40 hex digits>" (RFC 2759 section 8.7), which lets
// the client authenticate the server.
func verifyMSCHAPv2(data, user, secret string) chapVerdict {
	if len(data) != 1+mschapv2Challenge+mschapResponseLen {
		return chapVerdict{malformed: true}
	}
	authChallenge := []byte(data[1 : 1+mschapv2Challenge])
	resp := []byte(data[1+mschapv2Challenge:])
	peer := resp[:mschapv2PeerLen]
	got := resp[mschapv2NTOffset : mschapv2NTOffset+ntResponseLen]
	want := mschapv2NTResponse(authChallenge, peer, user, secret)
	if subtle.ConstantTimeCompare(want[:], got) != 1 {
		return chapVerdict{}
	}
	return chapVerdict{ok: true, data: mschapv2AuthenticatorResponse(secret, got, peer, authChallenge, user)}
}

// chapResponse is RFC 1994 section 4.1: MD5 over the identifier, the secret and the challenge.
func chapResponse(id byte, secret, challenge string) [md5.Size]byte {
	h := md5.New()
	h.Write([]byte{id})
	h.Write([]byte(secret))
	h.Write([]byte(challenge))
	var out [md5.Size]byte
	h.Sum(out[:0])
	return out
}

// ntPasswordHash is RFC 2759 section 8.3 (RFC 2433 section A.2): MD4 of the password in UTF-16LE.
func ntPasswordHash(password string) [md4.Size]byte {
	u := utf16.Encode([]rune(password))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		b[2*i], b[2*i+1] = byte(r), byte(r>>8)
	}
	h := md4.New()
	h.Write(b)
	var out [md4.Size]byte
	h.Sum(out[:0])
	return out
}

// challengeResponse is RFC 2759 section 8.5 (RFC 2433 section A.5): the 8-octet challenge DES-encrypted
// under three keys cut from the 16-octet hash padded with zeros to 21 octets.
func challengeResponse(challenge, hash []byte) [ntResponseLen]byte {
	var z [21]byte
	copy(z[:], hash)
	var out [ntResponseLen]byte
	for i := 0; i < 3; i++ {
		desEncrypt(out[8*i:8*i+8], challenge, z[7*i:7*i+7])
	}
	return out
}

// desEncrypt is RFC 2759 section 8.6: DES with a 56-bit key spread over 8 octets (the parity bits, the
// low bit of each octet, are ignored by DES).
func desEncrypt(dst, clear, key7 []byte) {
	var k [8]byte
	k[0] = key7[0]
	for i := 1; i < 7; i++ {
		k[i] = key7[i-1]<<(8-i) | key7[i]>>i
	}
	k[7] = key7[6] << 1
	block, err := des.NewCipher(k[:])
	if err != nil { // only for a key that is not 8 bytes long
		panic(err)
	}
	block.Encrypt(dst, clear)
}

// challengeHash is RFC 2759 section 8.2.
func challengeHash(peer, auth []byte, user string) []byte {
	h := sha1.New()
	h.Write(peer)
	h.Write(auth)
	h.Write([]byte(user))
	return h.Sum(nil)[:8]
}

// mschapv2NTResponse is RFC 2759 section 8.1, GenerateNTResponse.
func mschapv2NTResponse(auth, peer []byte, user, password string) [ntResponseLen]byte {
	hash := ntPasswordHash(password)
	return challengeResponse(challengeHash(peer, auth, user), hash[:])
}

// mschapv2AuthenticatorResponse is RFC 2759 section 8.7, GenerateAuthenticatorResponse.
func mschapv2AuthenticatorResponse(password string, ntResponse, peer, auth []byte, user string) string {
	hash := ntPasswordHash(password)
	hh := md4.New()
	hh.Write(hash[:])
	hashHash := hh.Sum(nil)
	d := sha1.New()
	d.Write(hashHash)
	d.Write(ntResponse)
	d.Write([]byte(magic1))
	digest := d.Sum(nil)
	d = sha1.New()
	d.Write(digest)
	d.Write(challengeHash(peer, auth, user))
	d.Write([]byte(magic2))
	return authenticatorPrefix + strings.ToUpper(hex.EncodeToString(d.Sum(nil)))
}

// CHAPData builds the data field of a CHAP START (RFC 8907 section 5.4.2.3) for a test client: the PPP
// identifier, the challenge and MD5(identifier || password || challenge).
func CHAPData(id byte, challenge []byte, password string) string {
	r := chapResponse(id, password, string(challenge))
	return string([]byte{id}) + string(challenge) + string(r[:])
}

// MSCHAPv1Data builds the data field of an MS-CHAPv1 START (section 5.4.2.4) for a test client: the PPP
// identifier, the 8-octet challenge and a 49-octet response carrying only the NT response (RFC 2433).
func MSCHAPv1Data(id byte, challenge []byte, password string) string {
	hash := ntPasswordHash(password)
	nt := challengeResponse(challenge, hash[:])
	resp := make([]byte, mschapResponseLen)
	copy(resp[mschapv1NTOffset:], nt[:])
	resp[mschapResponseLen-1] = mschapv1UseNT
	return string([]byte{id}) + string(challenge) + string(resp)
}

// MSCHAPv2Data builds the data field of an MS-CHAPv2 START (section 5.4.2.5) for a test client: the PPP
// identifier, the 16-octet authenticator challenge and a 49-octet response (RFC 2759 section 4).
func MSCHAPv2Data(id byte, authChallenge, peerChallenge []byte, user, password string) string {
	nt := mschapv2NTResponse(authChallenge, peerChallenge, user, password)
	resp := make([]byte, mschapResponseLen)
	copy(resp, peerChallenge)
	copy(resp[mschapv2NTOffset:], nt[:])
	return string([]byte{id}) + string(authChallenge) + string(resp)
}

// MSCHAPv2AuthenticatorResponse returns the "S=..." string the server puts in the data of its PASS to an
// MS-CHAPv2 START built by MSCHAPv2Data (RFC 2759 section 8.7).
func MSCHAPv2AuthenticatorResponse(authChallenge, peerChallenge []byte, user, password string) string {
	nt := mschapv2NTResponse(authChallenge, peerChallenge, user, password)
	return mschapv2AuthenticatorResponse(password, nt[:], peerChallenge, authChallenge, user)
}
