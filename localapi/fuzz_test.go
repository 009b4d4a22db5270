package localapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeRequest feeds arbitrary bodies to the decoder and validator of every request body (kind
// selects it: authenticate, authorize, account, conversation). It must never panic; a refusal is a 400 or
// 413 with a short message that quotes no secret; an accepted request holds only what a server can be
// sent, and survives a JSON round trip unchanged.
func FuzzDecodeRequest(f *testing.F) {
	seeds := []struct {
		kind uint8
		body string
	}{
		{0, `{"user":"alice","type":"pap","password":"hunter2","rem_addr":"192.0.2.9"}`},
		{0, `{"action":"chpass","user":"bob"}`},
		{0, `{"user":"al\u0001ice"}`},
		{0, `{"user":"alice","priv_lvl":16}`},
		{0, `{"user":"alice"}{"user":"bob"}`},
		{1, `{"user":"alice","cmd":"show","args":["run"]}`},
		{1, `{"user":"alice","av":["service=shell","caller_uid=0"]}`},
		{1, `{"user":"alice","cmd":"ls","start":{"task_id":"9.1","ack":"queued","av":["x=1"]}}`},
		{1, `{"user":"alice","cmd":"ls","start":{"task_id":"","av":["Caller_gid=1"]}}`},
		{2, `{"flags":"stop","user":"alice","task_id":"9.1","ack":"queued"}`},
		{2, `{"flags":"start","user":"alice","task_id":"1","av":["cmd=ls"]}`},
		{2, `{"flags":"stop","user":"alice","av":["CALLER_PID*1"]}`},
		{3, `{"answer":"hunter2"}`},
		{3, `{"abort":true}`},
		{3, `["x"]`},
	}
	for _, s := range seeds {
		f.Add(s.kind, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		switch kind % 4 {
		case 0:
			fuzzOne[AuthenRequest](t, body, func(r *AuthenRequest) *apiError { return r.validate() }, func(r AuthenRequest) {
				checkFuzzText(t, r.User, r.Port, r.RemAddr)
				if len(r.Password) > maxField || r.PrivLvl < 0 || r.PrivLvl > maxPriv {
					t.Fatalf("accepted %+v", r)
				}
			})
		case 1:
			fuzzOne[AuthorRequest](t, body, func(r *AuthorRequest) *apiError { return r.validate() }, func(r AuthorRequest) {
				checkFuzzText(t, r.User, r.Port, r.RemAddr)
				if r.User == "" || len(r.Pairs()) > maxArgs || checkReserved("av", r.AV) != nil {
					t.Fatalf("accepted %+v", r)
				}
				if st := r.Start; st != nil {
					checkFuzzText(t, st.TaskID)
					if st.TaskID == "" || !validAck(st.Ack) || checkReserved("start.av", st.AV) != nil ||
						len(r.startRecord().AV)+4 > maxArgs {
						t.Fatalf("accepted start %+v", st)
					}
				}
			})
		case 2:
			fuzzOne[AcctRequest](t, body, func(r *AcctRequest) *apiError { return r.validate() }, func(r AcctRequest) {
				checkFuzzText(t, r.User, r.Port, r.RemAddr, r.TaskID)
				if r.User == "" || len(r.AV) > maxArgs || checkReserved("av", r.AV) != nil || !validAck(r.Ack) {
					t.Fatalf("accepted %+v", r)
				}
			})
		default:
			fuzzOne[ConversationRequest](t, body, func(*ConversationRequest) *apiError { return nil }, func(ConversationRequest) {})
		}
	})
}

func fuzzOne[T any](t *testing.T, body []byte, validate func(*T) *apiError, accepted func(T)) {
	const limit = 4 << 10
	r := httptest.NewRequest(http.MethodPost, "/v1/x", bytes.NewReader(body))
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, limit)
	var v T
	e := decode(r, &v)
	if e == nil {
		e = validate(&v)
	}
	if e != nil {
		if e.status != http.StatusBadRequest && e.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d for %q", e.status, body)
		}
		if len(e.msg) > 512 || !utf8.ValidString(e.msg) {
			t.Fatalf("message %q", e.msg)
		}
		// A refusal never quotes a secret the body carried.
		var probe struct {
			Password string `json:"password"`
			Answer   string `json:"answer"`
		}
		if json.Unmarshal(body, &probe) == nil {
			for _, s := range []string{probe.Password, probe.Answer} {
				if len(s) >= 4 && strings.Contains(e.msg, s) {
					t.Fatalf("the message %q quotes a secret", e.msg)
				}
			}
		}
		return
	}
	if len(body) > limit {
		t.Fatalf("a body of %d bytes over the %d limit was accepted", len(body), limit)
	}
	accepted(v)
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("re-encoding an accepted request: %v", err)
	}
	var again T
	if e := decode(httptest.NewRequest(http.MethodPost, "/v1/x", bytes.NewReader(b)), &again); e != nil {
		t.Fatalf("an accepted request does not decode again: %v", e)
	}
	if e := validate(&again); e != nil {
		t.Fatalf("an accepted request does not validate again: %v", e)
	}
	// Compared as JSON: an empty array and no array are the same request.
	if b2, _ := json.Marshal(again); !bytes.Equal(b, b2) {
		t.Fatalf("round trip changed the request: %s -> %s", b, b2)
	}
}

func checkFuzzText(t *testing.T, fields ...string) {
	t.Helper()
	for _, s := range fields {
		if checkText("f", s, false) != nil {
			t.Fatalf("accepted field %q", s)
		}
	}
}
