package fsm_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/tacplus"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func arr8(t testing.TB, s string) (a [8]byte) {
	if n := copy(a[:], unhex(t, s)); n != 8 {
		t.Fatalf("%q is not 8 bytes", s)
	}
	return a
}

func arr16(t testing.TB, s string) (a [16]byte) {
	if n := copy(a[:], unhex(t, s)); n != 16 {
		t.Fatalf("%q is not 16 bytes", s)
	}
	return a
}

// The vectors of RFC 2433 appendix B.2 (MS-CHAP v1, password "MyPw") and RFC 2759 section 9.2 (MS-CHAP-V2,
// user "User", password "clientPass").
func TestMSCHAPVectors(t *testing.T) {
	t.Run("RFC2433", func(t *testing.T) {
		hash := fsm.NTPasswordHash("MyPw")
		if got, want := hex.EncodeToString(hash[:]), "fc156af7edcd6c0edde3337d427f4eac"; got != want {
			t.Errorf("NTPasswordHash = %s, want %s", got, want)
		}
		ch := arr8(t, "102DB5DF085D3041")
		nt := fsm.ChallengeResponse(ch, hash)
		if got, want := hex.EncodeToString(nt[:]), "4e9d3c8f9cfd385d5bf4d3246791956ca4c351ab409a3d61"; got != want {
			t.Errorf("NT response = %s, want %s", got, want)
		}
		resp := fsm.MSCHAPv1Response("MyPw", ch)
		if got, want := hex.EncodeToString(resp[24:48]), hex.EncodeToString(nt[:]); got != want {
			t.Errorf("response NT field = %s, want %s", got, want)
		}
		if resp[48] != 1 {
			t.Errorf("use-NT flag = %d, want 1", resp[48])
		}
		for i, b := range resp[:24] {
			if b != 0 {
				t.Fatalf("LM response byte %d = %#x, want the LM field left zero", i, b)
			}
		}
	})
	t.Run("RFC2759", func(t *testing.T) {
		auth := arr16(t, "5B5D7C7D7B3F2F3E3C2C602132262628")
		peer := arr16(t, "21402324255E262A28295F2B3A337C7E")
		ch := fsm.ChallengeHash(peer, auth, "User")
		if got, want := hex.EncodeToString(ch[:]), "d02e4386bce91226"; got != want {
			t.Errorf("ChallengeHash = %s, want %s", got, want)
		}
		hash := fsm.NTPasswordHash("clientPass")
		if got, want := hex.EncodeToString(hash[:]), "44ebba8d5312b8d611474411f56989ae"; got != want {
			t.Errorf("NTPasswordHash = %s, want %s", got, want)
		}
		nt := fsm.MSCHAPv2NTResponse(auth, peer, "User", "clientPass")
		if got, want := hex.EncodeToString(nt[:]), "82309ecd8d708b5ea08faa3981cd83544233114a3d85d6df"; got != want {
			t.Errorf("NT response = %s, want %s", got, want)
		}
		if got, want := fsm.MSCHAPv2AuthenticatorResponse("clientPass", nt, peer, auth, "User"),
			"S=407A5589115FD0D6209F510FE9C04566932CDA56"; got != want {
			t.Errorf("authenticator response = %s, want %s", got, want)
		}
		// Section 4 of RFC 2759: only the user name counts, not a "DOMAIN\" prefix.
		if d := fsm.MSCHAPv2NTResponse(auth, peer, `BIGCO\User`, "clientPass"); d != nt {
			t.Errorf("domain prefix changed the NT response")
		}
		resp := fsm.MSCHAPv2Response(auth, peer, "User", "clientPass")
		if got, want := hex.EncodeToString(resp[:]),
			hex.EncodeToString(peer[:])+strings.Repeat("00", 8)+hex.EncodeToString(nt[:])+"00"; got != want {
			t.Errorf("response = %s, want %s", got, want)
		}
	})
}

// RFC 1994 section 4.1: MD5 over identifier, secret and challenge. The expected value is MD5 of the
// bytes 01 "MyPw" 10 2d b5 df 08 5d 30 41, as computed by any MD5 tool.
func TestCHAPResponse(t *testing.T) {
	r := fsm.CHAPResponse(1, "MyPw", unhex(t, "102DB5DF085D3041"))
	if got, want := hex.EncodeToString(r[:]), "8f028814450d66d94c72331ef455a172"; got != want {
		t.Errorf("CHAPResponse = %s, want %s", got, want)
	}
}

func TestSplitCHAPData(t *testing.T) {
	chal := strings.Repeat("c", 8)
	tests := []struct {
		name    string
		t       tacplus.AuthenType
		data    string
		chal    string
		wantErr bool
	}{
		{"chap", tacplus.AuthenTypeCHAP, "\x07" + chal + strings.Repeat("r", 16), chal, false},
		{"chap one-byte challenge", tacplus.AuthenTypeCHAP, "\x07c" + strings.Repeat("r", 16), "c", false},
		{"chap no challenge", tacplus.AuthenTypeCHAP, "\x07" + strings.Repeat("r", 16), "", true},
		{"mschap", tacplus.AuthenTypeMSCHAP, "\x07" + chal + strings.Repeat("r", 49), chal, false},
		{"mschap 9-byte challenge", tacplus.AuthenTypeMSCHAP, "\x07c" + chal + strings.Repeat("r", 49), "", true},
		{"mschapv2", tacplus.AuthenTypeMSCHAPv2, "\x07" + chal + chal + strings.Repeat("r", 49), chal + chal, false},
		{"mschapv2 8-byte challenge", tacplus.AuthenTypeMSCHAPv2, "\x07" + chal + strings.Repeat("r", 49), "", true},
		{"pap", tacplus.AuthenTypePAP, "password", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, c, r, err := fsm.SplitCHAPData(tt.t, tt.data)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if id != 7 || c != tt.chal || 1+len(c)+len(r) != len(tt.data) {
				t.Errorf("got id=%d challenge=%q response of %d bytes", id, c, len(r))
			}
		})
	}
}

// The START data the machine builds must verify with the exported computations, as the test server will.
func TestCHAPStartData(t *testing.T) {
	auth := arr16(t, "5B5D7C7D7B3F2F3E3C2C602132262628")
	peer := arr16(t, "21402324255E262A28295F2B3A337C7E")
	ch8 := arr8(t, "102DB5DF085D3041")
	tests := []struct {
		name string
		cfg  fsm.AuthenConfig
		want func(chal []byte) []byte
	}{
		{"chap", fsm.AuthenConfig{Type: tacplus.AuthenTypeCHAP, Challenge: ch8[:]},
			func(c []byte) []byte { r := fsm.CHAPResponse(9, "pw", c); return r[:] }},
		{"mschap", fsm.AuthenConfig{Type: tacplus.AuthenTypeMSCHAP, Challenge: ch8[:]},
			func(c []byte) []byte { r := fsm.MSCHAPv1Response("pw", [8]byte(c)); return r[:] }},
		{"mschapv2", fsm.AuthenConfig{Type: tacplus.AuthenTypeMSCHAPv2, Challenge: auth[:], PeerChallenge: peer[:]},
			func(c []byte) []byte { r := fsm.MSCHAPv2Response([16]byte(c), peer, "alice", "pw"); return r[:] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.SessionID, cfg.User, cfg.Password, cfg.ChallengeID = 0x1234, "alice", []byte("pw"), 9
			m, err := fsm.NewAuthen(cfg)
			if err != nil {
				t.Fatal(err)
			}
			effs, err := m.Step(fsm.Start())
			if err != nil || len(effs) != 1 {
				t.Fatalf("Start: %v %v", effs, err)
			}
			start := effs[0].Body.(*tacplus.AuthenStart)
			if effs[0].Header.Version != 0xc1 {
				t.Errorf("version 0x%02x, want 0xc1 (RFC 8907 section 5.4.1)", effs[0].Header.Version)
			}
			id, c, r, err := fsm.SplitCHAPData(cfg.Type, start.Data)
			if err != nil {
				t.Fatal(err)
			}
			if id != 9 || c != string(cfg.Challenge) || r != string(tt.want([]byte(c))) {
				t.Errorf("data does not verify: id=%d challenge=%x", id, c)
			}
		})
	}
}

// TestCHAPPreparedData: a START whose CHAP or MS-CHAP response was computed elsewhere (the loopback front
// end forwards a client's) is sent byte for byte; data that a server would refuse is refused here, and
// prepared data with another authen_type is a configuration error.
func TestCHAPPreparedData(t *testing.T) {
	ch8 := arr8(t, "102DB5DF085D3041")
	r1 := fsm.MSCHAPv1Response("pw", ch8)
	chap := fsm.CHAPResponse(7, "pw", ch8[:])
	tests := []struct {
		name    string
		typ     tacplus.AuthenType
		data    []byte
		wantErr bool
	}{
		{"chap", tacplus.AuthenTypeCHAP, append(append([]byte{7}, ch8[:]...), chap[:]...), false},
		{"mschap", tacplus.AuthenTypeMSCHAP, append(append([]byte{7}, ch8[:]...), r1[:]...), false},
		{"mschap short challenge", tacplus.AuthenTypeMSCHAP, append(append([]byte{7}, ch8[:4]...), r1[:]...), true},
		{"chap no challenge", tacplus.AuthenTypeCHAP, append([]byte{7}, chap[:]...), true},
		{"pap", tacplus.AuthenTypePAP, []byte("secret"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fsm.AuthenConfig{SessionID: 0x1234, User: "alice", Type: tt.typ, Prepared: tt.data}
			if tt.typ == tacplus.AuthenTypePAP {
				cfg.Password = []byte("pw")
			}
			m, err := fsm.NewAuthen(cfg)
			if tt.wantErr {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			effs, err := m.Step(fsm.Start())
			if err != nil || len(effs) != 1 {
				t.Fatalf("Start: %v %v", effs, err)
			}
			if got := effs[0].Body.(*tacplus.AuthenStart).Data; got != string(tt.data) {
				t.Fatalf("START data %x, want %x", got, tt.data)
			}
		})
	}
}
