package policy

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"hash"
	"strconv"
	"strings"
)

// SHA-crypt: the "$5$" (SHA-256) and "$6$" (SHA-512) password hashes of glibc crypt(3), implemented from
// Ulrich Drepper's specification "Unix crypt using SHA-256 and SHA-512" (SHA-crypt.txt). The step numbers
// in the comments are the specification's.

const (
	shaCryptSaltMax       = 16        // "the salt string ... is truncated to 16 characters"
	shaCryptRoundsDefault = 5000      // used when no "rounds=" is given
	shaCryptRoundsMin     = 1000      // smaller values are raised to this
	shaCryptRoundsMax     = 999999999 // larger values are lowered to this
	cryptAlphabet         = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// shaVariant is one of the two SHA-crypt algorithms.
type shaVariant struct {
	id      string           // "5" or "6"
	newHash func() hash.Hash // sha256.New or sha512.New
	encLen  int              // length of the encoded digest: 43 or 86 characters
	// order lists the digest bytes in the order the specification's step 22 feeds them to the base-64
	// encoder, three at a time (B2, B1, B0); the last group is shorter.
	order []int
}

var (
	sha256Crypt = &shaVariant{id: "5", newHash: sha256.New, encLen: 43, order: []int{
		0, 10, 20, 21, 1, 11, 12, 22, 2, 3, 13, 23, 24, 4, 14,
		15, 25, 5, 6, 16, 26, 27, 7, 17, 18, 28, 8, 9, 19, 29,
		31, 30, // final group: 0, 31, 30 -> 3 characters
	}}
	sha512Crypt = &shaVariant{id: "6", newHash: sha512.New, encLen: 86, order: []int{
		0, 21, 42, 22, 43, 1, 44, 2, 23, 3, 24, 45, 25, 46, 4,
		47, 5, 26, 6, 27, 48, 28, 49, 7, 50, 8, 29, 9, 30, 51,
		31, 52, 10, 53, 11, 32, 12, 33, 54, 34, 55, 13, 56, 14, 35,
		15, 36, 57, 37, 58, 16, 59, 17, 38, 18, 39, 60, 40, 61, 19,
		62, 20, 41,
		63, // final group: 0, 0, 63 -> 2 characters
	}}
)

// shaCryptHash is a parsed "$5$" or "$6$" hash.
type shaCryptHash struct {
	v         *shaVariant
	rounds    int
	hasRounds bool   // "rounds=" was written; it is then part of the output even when it is 5000
	salt      string // at most 16 bytes
	digest    string // the encoded digest
}

var errShaCryptFormat = errors.New("malformed SHA-crypt hash")

// parseShaCrypt parses "$5$[rounds=N$]salt$digest" (or "$6$..."). It is strict: hashes written by crypt(3)
// never have rounds outside [1000, 999999999], leading zeros, salts longer than 16 characters or digests of
// the wrong length, so such strings are refused rather than silently normalised. Error messages never
// contain the hash.
func parseShaCrypt(s string) (*shaCryptHash, error) {
	var h shaCryptHash
	switch {
	case strings.HasPrefix(s, "$5$"):
		h.v = sha256Crypt
	case strings.HasPrefix(s, "$6$"):
		h.v = sha512Crypt
	default:
		return nil, errShaCryptFormat
	}
	rest := s[3:]
	if r, ok := strings.CutPrefix(rest, "rounds="); ok {
		num, after, found := strings.Cut(r, "$")
		if !found {
			return nil, errors.New("malformed SHA-crypt hash: rounds= without a salt")
		}
		n, err := strconv.Atoi(num)
		if err != nil || num == "" || num[0] < '1' || num[0] > '9' {
			return nil, errors.New("malformed SHA-crypt hash: rounds= is not a decimal number")
		}
		if n < shaCryptRoundsMin || n > shaCryptRoundsMax {
			return nil, errors.New("malformed SHA-crypt hash: rounds= outside [1000, 999999999]")
		}
		h.rounds, h.hasRounds, rest = n, true, after
	} else {
		h.rounds = shaCryptRoundsDefault
	}
	salt, digest, found := strings.Cut(rest, "$")
	if !found {
		return nil, errors.New("malformed SHA-crypt hash: no digest")
	}
	if len(salt) > shaCryptSaltMax {
		return nil, errors.New("malformed SHA-crypt hash: salt longer than 16 characters")
	}
	for i := 0; i < len(salt); i++ {
		if c := salt[i]; c <= ' ' || c == ':' || c >= 0x7f {
			return nil, errors.New("malformed SHA-crypt hash: salt holds a space, colon or control character")
		}
	}
	if len(digest) != h.v.encLen {
		return nil, errors.New("malformed SHA-crypt hash: digest has the wrong length")
	}
	for i := 0; i < len(digest); i++ {
		if strings.IndexByte(cryptAlphabet, digest[i]) < 0 {
			return nil, errors.New("malformed SHA-crypt hash: digest holds a character outside [./0-9A-Za-z]")
		}
	}
	h.salt, h.digest = salt, digest
	return &h, nil
}

// verify reports, in constant time with respect to the stored digest, whether password hashes to h.
func (h *shaCryptHash) verify(password []byte) bool {
	got := shaCryptDigest(h.v, password, []byte(h.salt), h.rounds)
	return subtle.ConstantTimeCompare(got, []byte(h.digest)) == 1
}

// shaCryptString runs crypt(3) for a "$5$"/"$6$" setting string ("$6$[rounds=N$]salt[$...]") as glibc
// does: the salt is cut at 16 characters and rounds are clamped into range. It exists for the
// specification's test vectors, whose settings are not valid stored hashes.
func shaCryptString(password, setting string) (string, error) {
	var v *shaVariant
	switch {
	case strings.HasPrefix(setting, "$5$"):
		v = sha256Crypt
	case strings.HasPrefix(setting, "$6$"):
		v = sha512Crypt
	default:
		return "", errShaCryptFormat
	}
	rest := setting[3:]
	rounds, hasRounds := shaCryptRoundsDefault, false
	if r, ok := strings.CutPrefix(rest, "rounds="); ok {
		num, after, found := strings.Cut(r, "$")
		n, err := strconv.ParseUint(num, 10, 64)
		if found && err == nil {
			rounds, hasRounds, rest = int(min(max(n, shaCryptRoundsMin), shaCryptRoundsMax)), true, after
		}
	}
	salt, _, _ := strings.Cut(rest, "$")
	if len(salt) > shaCryptSaltMax {
		salt = salt[:shaCryptSaltMax]
	}
	var b strings.Builder
	b.WriteString("$" + v.id + "$")
	if hasRounds {
		b.WriteString("rounds=" + strconv.Itoa(rounds) + "$")
	}
	b.WriteString(salt + "$")
	b.Write(shaCryptDigest(v, []byte(password), []byte(salt), rounds))
	return b.String(), nil
}

// shaCryptDigest computes the encoded digest (the part after the last "$").
func shaCryptDigest(v *shaVariant, key, salt []byte, rounds int) []byte {
	h := v.newHash()
	size := h.Size()

	// Steps 4-8: digest B = H(key salt key).
	h.Write(key)
	h.Write(salt)
	h.Write(key)
	b := h.Sum(nil)

	// Steps 1-3 and 9-12: digest A = H(key salt B-repeated-to-len(key) bits-of-len(key)).
	h.Reset()
	h.Write(key)
	h.Write(salt)
	n := len(key)
	for ; n > size; n -= size {
		h.Write(b)
	}
	h.Write(b[:n])
	for n = len(key); n > 0; n >>= 1 {
		if n&1 != 0 {
			h.Write(b)
		} else {
			h.Write(key)
		}
	}
	a := h.Sum(nil)

	// Steps 13-16: the P sequence, H(key repeated len(key) times) stretched to len(key) bytes.
	h.Reset()
	for range len(key) {
		h.Write(key)
	}
	p := stretch(h.Sum(nil), len(key))

	// Steps 17-20: the S sequence, H(salt repeated 16+A[0] times) stretched to len(salt) bytes.
	h.Reset()
	for range 16 + int(a[0]) {
		h.Write(salt)
	}
	s := stretch(h.Sum(nil), len(salt))

	// Step 21: the rounds.
	c := a
	for i := range rounds {
		h.Reset()
		if i&1 != 0 {
			h.Write(p)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(s)
		}
		if i%7 != 0 {
			h.Write(p)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(p)
		}
		c = h.Sum(c[:0])
	}

	// Step 22: the base-64 encoding, three bytes (B2 B1 B0) to four characters, least significant first.
	out := make([]byte, 0, v.encLen)
	o := v.order
	for len(o) >= 3 {
		out = enc24(out, c[o[0]], c[o[1]], c[o[2]], 4)
		o = o[3:]
	}
	switch len(o) {
	case 2: // SHA-256: B2=0, B1, B0
		out = enc24(out, 0, c[o[0]], c[o[1]], 3)
	case 1: // SHA-512: B2=0, B1=0, B0
		out = enc24(out, 0, 0, c[o[0]], 2)
	}
	return out
}

func stretch(d []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out)+len(d) <= n {
		out = append(out, d...)
	}
	return append(out, d[:n-len(out)]...)
}

func enc24(out []byte, b2, b1, b0 byte, n int) []byte {
	w := uint(b2)<<16 | uint(b1)<<8 | uint(b0)
	for range n {
		out = append(out, cryptAlphabet[w&0x3f])
		w >>= 6
	}
	return out
}
