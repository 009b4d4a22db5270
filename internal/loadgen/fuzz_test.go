package loadgen

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
)

// FuzzServeChild feeds the child's request reader arbitrary lines: it must answer or stop with an error,
// never panic or hang, and every answer is one JSON line.
func FuzzServeChild(f *testing.F) {
	f.Add([]byte(`{"op":"accepts"}` + "\n"))
	f.Add([]byte(`{"op":"start","servers":1,"key":"a2V5","user":"u","password":"p"}` + "\n" + `{"op":"kill","i":0}` + "\n" +
		`{"op":"kill","i":0}` + "\n" + `{"op":"restart","i":5}` + "\n" + `{"op":"accepts"}` + "\n"))
	f.Add([]byte(`{"op":"start","servers":1}` + "\n"))
	f.Add([]byte("not json\n"))
	f.Add([]byte(`{"op":"start","servers":100000,"key":"a2V5"}` + "\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		_ = serveChild(bytes.NewReader(in), &out)
		dec := json.NewDecoder(&out)
		for {
			var rep childReply
			if err := dec.Decode(&rep); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("an answer is not JSON: %v", err)
			}
		}
	})
}

// FuzzParseStatCPU: any /proc stat text gives CPU seconds or an error, never a panic.
func FuzzParseStatCPU(f *testing.F) {
	f.Add([]byte("4242 (tacagent) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 123\n"))
	f.Add([]byte("1 ((x) y)) R 0 0 0 0 0 0 0 0 0 0 18446744073709551615 1"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := parseStatCPU(b); err == nil && s < 0 {
			t.Fatalf("negative CPU time %v", s)
		}
	})
}
