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
