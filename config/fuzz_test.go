package config

import (
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary documents to the configuration decoder. It must never panic, never take
// unbounded time or memory (aliases are budgeted), and never echo the value of an inline key field (the
// fuzzer may put the same text elsewhere, as an anchor name say, where a syntax error rightly quotes it;
// so the check is on the value of a "key:" line only). The seed corpus is in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	f.Add([]byte("servers: [{address: 127.0.0.1, key: inline-secret-value}]\n"))
	f.Add([]byte("a: &a [x, x]\nb: &b [*a, *a]\nservers: *b\n"))
	f.Add([]byte("servers:\n  - address: \"[::1]:49\"\n    unencrypted: true\n    allow_unencrypted: true\nlog:\n  level: debug\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > MaxConfigSize {
			return
		}
		c, err := Parse(data, "fuzz.yaml")
		if err == nil && c == nil {
			t.Fatal("no configuration and no error")
		}
		if err == nil {
			return
		}
		for _, line := range strings.Split(string(data), "\n") {
			// Only a YAML field named exactly "key" holds a secret;
			// "00000000key: 00000000" is an unknown field whose name
			// the error rightly quotes.
			k, v, ok := strings.Cut(line, "key: ")
			k = strings.TrimLeft(k, " \t-")
			v = strings.TrimSpace(v)
			if ok && k == "" && len(v) >= 8 && !strings.ContainsAny(v, "{}[],&*!|>'\"#%@`") && strings.Contains(err.Error(), v) {
				t.Fatalf("an error echoes the inline key %q: %v", v, err)
			}
		}
	})
}
