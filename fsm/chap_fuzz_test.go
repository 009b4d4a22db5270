package fsm_test

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/tacplus"
)

// respLen is the fixed response length of each challenge/response authen_type (RFC 8907 sections
// 5.4.2.3-5.4.2.5), and chalLen the fixed challenge length (0: any, at least 1).
func chapLens(t tacplus.AuthenType) (respLen, chalLen int, known bool) {
	switch t {
	case tacplus.AuthenTypeCHAP:
		return fsm.CHAPResponseLen, 0, true
	case tacplus.AuthenTypeMSCHAP:
		return fsm.MSCHAPResponseLen, fsm.MSCHAPv1ChallengeLen, true
	case tacplus.AuthenTypeMSCHAPv2:
		return fsm.MSCHAPResponseLen, fsm.MSCHAPv2ChallengeLen, true
	}
	return 0, 0, false
}

// FuzzSplitCHAPData checks the splitter of a CHAP / MS-CHAP / MS-CHAP-V2 START's data on any bytes and any
// authen_type: it accepts exactly the lengths the RFC fixes, and then the identifier, challenge and
// response are the data, in order, with the response of the type's length. Seeds:
// testdata/fuzz/FuzzSplitCHAPData.
func FuzzSplitCHAPData(f *testing.F) {
	f.Add(uint8(tacplus.AuthenTypeCHAP), append([]byte{7, 1, 2, 3, 4, 5, 6, 7, 8}, make([]byte, 16)...))
	f.Add(uint8(tacplus.AuthenTypeMSCHAP), append([]byte{1}, make([]byte, 8+49)...))
	f.Add(uint8(tacplus.AuthenTypeMSCHAPv2), append([]byte{1}, make([]byte, 16+49)...))
	f.Add(uint8(tacplus.AuthenTypeMSCHAPv2), make([]byte, 65))
	f.Add(uint8(tacplus.AuthenTypePAP), []byte("pw"))
	f.Add(uint8(tacplus.AuthenTypeCHAP), []byte{})
	f.Fuzz(func(t *testing.T, typ uint8, data []byte) {
		at := tacplus.AuthenType(typ)
		id, chal, resp, err := fsm.SplitCHAPData(at, string(data))
		respLen, chalLen, known := chapLens(at)
		n := len(data) - 1 - respLen
		wantOK := known && n >= 1 && (chalLen == 0 || n == chalLen)
		if (err == nil) != wantOK {
			t.Fatalf("SplitCHAPData(%v, %d bytes) err = %v, want ok %v", at, len(data), err, wantOK)
		}
		if err != nil {
			if id != 0 || chal != "" || resp != "" {
				t.Fatalf("SplitCHAPData failed and returned %d %q %q", id, chal, resp)
			}
			return
		}
		if len(resp) != respLen || len(chal) != n || id != data[0] || string([]byte{id})+chal+resp != string(data) {
			t.Fatalf("SplitCHAPData(%v, %x) = %d %x %x: not the data in order", at, data, id, chal, resp)
		}
	})
}

var authenticatorResponse = regexp.MustCompile(`^S=[0-9A-F]{40}$`)

// FuzzCHAPRoundTrip builds the START data of each type from any identifier, password, user and challenge
// (as the agent does), splits it again (as a server would) and checks that the pieces come back and the
// response is the one computed; MS-CHAP-V2's authenticator response has its RFC 2759 form. Any password or
// user (not UTF-8, NULs, long) must not panic the hash code. Seeds: testdata/fuzz/FuzzCHAPRoundTrip.
func FuzzCHAPRoundTrip(f *testing.F) {
	f.Add(byte(7), "secret", "bob", []byte("challenge-123456"), []byte("peer-challenge-1"))
	f.Add(byte(0), "", "", []byte{1}, []byte{})
	f.Add(byte(255), "p\xffw\x00\u00e9\U0001F600", "us\xfe", bytes.Repeat([]byte{0xAA}, 40), bytes.Repeat([]byte{0x55}, 16))
	f.Fuzz(func(t *testing.T, id byte, password, user string, challenge, peer []byte) {
		// CHAP: any challenge of 1 to 238 bytes.
		if len(challenge) >= 1 && 1+len(challenge)+fsm.CHAPResponseLen <= 255 {
			r := fsm.CHAPResponse(id, password, challenge)
			data := string([]byte{id}) + string(challenge) + string(r[:])
			gid, gch, gresp, err := fsm.SplitCHAPData(tacplus.AuthenTypeCHAP, data)
			if err != nil || gid != id || gch != string(challenge) || gresp != string(r[:]) {
				t.Fatalf("CHAP round trip: %v %d %x %x", err, gid, gch, gresp)
			}
		}
		var c8 [fsm.MSCHAPv1ChallengeLen]byte
		copy(c8[:], challenge)
		r1 := fsm.MSCHAPv1Response(password, c8)
		data := string([]byte{id}) + string(c8[:]) + string(r1[:])
		gid, gch, gresp, err := fsm.SplitCHAPData(tacplus.AuthenTypeMSCHAP, data)
		if err != nil || gid != id || gch != string(c8[:]) || gresp != string(r1[:]) {
			t.Fatalf("MS-CHAP round trip: %v %d %x %x", err, gid, gch, gresp)
		}
		var c16, p16 [fsm.MSCHAPv2ChallengeLen]byte
		copy(c16[:], challenge)
		copy(p16[:], peer)
		r2 := fsm.MSCHAPv2Response(c16, p16, user, password)
		data = string([]byte{id}) + string(c16[:]) + string(r2[:])
		gid, gch, gresp, err = fsm.SplitCHAPData(tacplus.AuthenTypeMSCHAPv2, data)
		if err != nil || gid != id || gch != string(c16[:]) || gresp != string(r2[:]) {
			t.Fatalf("MS-CHAP-V2 round trip: %v %d %x %x", err, gid, gch, gresp)
		}
		nt := fsm.MSCHAPv2NTResponse(c16, p16, user, password)
		if s := fsm.MSCHAPv2AuthenticatorResponse(password, nt, p16, c16, user); !authenticatorResponse.MatchString(s) {
			t.Fatalf("authenticator response %q is not S= and 40 upper-case hex digits", s)
		}
	})
}
