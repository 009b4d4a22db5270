package tacplustest

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMSCHAPv2Vectors checks every intermediate value of RFC 2759 section 9.2.
func TestMSCHAPv2Vectors(t *testing.T) {
	const user, password = "User", "clientPass"
	auth := unhex(t, "5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28")
	peer := unhex(t, "21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E")

	if got, want := challengeHash(peer, auth, user), unhex(t, "D0 2E 43 86 BC E9 12 26"); !bytes.Equal(got, want) {
		t.Errorf("ChallengeHash = %X, want %X", got, want)
	}
	hash := ntPasswordHash(password)
	if want := unhex(t, "44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE"); !bytes.Equal(hash[:], want) {
		t.Errorf("NtPasswordHash = %X, want %X", hash, want)
	}
	nt := mschapv2NTResponse(auth, peer, user, password)
	wantNT := unhex(t, "82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF")
	if !bytes.Equal(nt[:], wantNT) {
		t.Errorf("NT-Response = %X, want %X", nt, wantNT)
	}
	const wantAuth = "S=407A5589115FD0D6209F510FE9C04566932CDA56"
	if got := mschapv2AuthenticatorResponse(password, nt[:], peer, auth, user); got != wantAuth {
		t.Errorf("AuthenticatorResponse = %s, want %s", got, wantAuth)
	}

	data := MSCHAPv2Data(7, auth, peer, user, password)
	if v := verifyMSCHAPv2(data, user, password); !v.ok || v.data != wantAuth {
		t.Errorf("verify the RFC's own exchange: %+v", v)
	}
	for name, v := range map[string]chapVerdict{
		"wrong password": verifyMSCHAPv2(data, user, "clientPass2"),
		"wrong user":     verifyMSCHAPv2(data, "User2", password),
	} {
		if v.ok || v.malformed {
			t.Errorf("%s: %+v, want a plain failure", name, v)
		}
	}
	if v := verifyMSCHAPv2(data[:len(data)-1], user, password); !v.malformed {
		t.Errorf("short data: %+v, want malformed", v)
	}
}

// TestMSCHAPv1Vectors checks the NT values of the example in RFC 2433 appendix B (password "MyPw").
func TestMSCHAPv1Vectors(t *testing.T) {
	const password = "MyPw"
	challenge := unhex(t, "10 2D B5 DF 08 5D 30 41")
	hash := ntPasswordHash(password)
	if want := unhex(t, "FC 15 6A F7 ED CD 6C 0E DD E3 33 7D 42 7F 4E AC"); !bytes.Equal(hash[:], want) {
		t.Errorf("NtPasswordHash = %X, want %X", hash, want)
	}
	resp := challengeResponse(challenge, hash[:])
	want := unhex(t, "4E 9D 3C 8F 9C FD 38 5D 5B F4 D3 24 67 91 95 6C A4 C3 51 AB 40 9A 3D 61")
	if !bytes.Equal(resp[:], want) {
		t.Errorf("NT response = %X, want %X", resp, want)
	}

	data := MSCHAPv1Data(1, challenge, password)
	if v := verifyMSCHAPv1(data, password); !v.ok {
		t.Errorf("verify: %+v", v)
	}
	if v := verifyMSCHAPv1(data, "MyPw2"); v.ok || v.malformed {
		t.Errorf("wrong password: %+v", v)
	}
	lm := []byte(data)
	lm[len(lm)-1] = 0 // flags: use the LM response
	if v := verifyMSCHAPv1(string(lm), password); !v.lm || v.ok {
		t.Errorf("LM response: %+v, want refused", v)
	}
	if v := verifyMSCHAPv1(data+"x", password); !v.malformed {
		t.Errorf("long data: %+v, want malformed", v)
	}
}

// TestCHAP checks RFC 1994 section 4.1 against a direct MD5 of identifier, secret and challenge.
func TestCHAP(t *testing.T) {
	challenge := []byte("0123456789abcdef")
	data := CHAPData(42, challenge, "secret")
	sum := md5.Sum(append(append([]byte{42}, "secret"...), challenge...))
	if want := string([]byte{42}) + string(challenge) + string(sum[:]); data != want {
		t.Fatalf("CHAPData = %x, want %x", data, want)
	}
	tests := []struct {
		name     string
		data     string
		password string
		ok, bad  bool
	}{
		{"right", data, "secret", true, false},
		{"wrong password", data, "secreT", false, false},
		{"no challenge", data[:1] + data[len(data)-16:], "secret", false, true},
		{"empty", "", "secret", false, true},
	}
	for _, tt := range tests {
		v := verifyCHAP(tt.data, tt.password)
		if v.ok != tt.ok || v.malformed != tt.bad {
			t.Errorf("%s: %+v, want ok=%v malformed=%v", tt.name, v, tt.ok, tt.bad)
		}
	}
}
