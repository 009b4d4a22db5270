package tacplus

import (
	"crypto/md5"
	"encoding/binary"
)

// Obfuscate applies the body obfuscation of RFC 8907 section 4.5 in place. The operation is its own
// inverse, so the same call de-obfuscates. The pad is
//
//	MD5_1 = MD5{session_id, key, version, seq_no}
//	MD5_n = MD5{session_id, key, version, seq_no, MD5_n-1}
//
// concatenated and truncated to the body length, then XORed with the body. It allocates nothing for keys
// of up to 200 bytes.
func Obfuscate(h Header, key, body []byte) {
	if len(body) == 0 {
		return
	}
	const stackKey = 200
	var stack [4 + stackKey + 2 + md5.Size]byte
	var in []byte
	if n := 4 + len(key) + 2 + md5.Size; n <= len(stack) {
		in = stack[:n]
	} else {
		in = make([]byte, n)
	}
	binary.BigEndian.PutUint32(in[0:4], h.SessionID)
	copy(in[4:], key)
	in[4+len(key)] = h.Version
	in[5+len(key)] = h.SeqNo
	prefix := 6 + len(key)

	pad := md5.Sum(in[:prefix])
	for off := 0; off < len(body); off += md5.Size {
		if off > 0 {
			copy(in[prefix:], pad[:])
			pad = md5.Sum(in)
		}
		chunk := body[off:]
		if len(chunk) > md5.Size {
			chunk = chunk[:md5.Size]
		}
		for i := range chunk {
			chunk[i] ^= pad[i]
		}
	}
}
