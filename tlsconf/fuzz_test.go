package tlsconf_test

import (
	"strings"
	"testing"

	"github.com/tacagent/tacagent/tlsconf"
)

// FuzzMatchDNSID checks the wildcard rules as invariants over arbitrary names: a match means the same
// number of labels, every label but a wildcard's equal (case-folded), and a wildcard only as the whole
// leftmost label with at least two labels after it.
func FuzzMatchDNSID(f *testing.F) {
	for _, s := range [][2]string{{"*.example.net", "a.example.net"}, {"a*.example.net", "ab.example.net"},
		{"*.net", "a.net"}, {"EXAMPLE.net.", "example.net"}, {"*.*.net", "a.b.net"}, {"*", "a"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, presented, refRaw string) {
		ref, err := tlsconf.ParseReferenceID(refRaw)
		if err != nil || ref.DNS == "" {
			return
		}
		if !tlsconf.MatchDNSID(presented, ref.DNS) {
			return
		}
		p := strings.ToLower(strings.TrimSuffix(presented, "."))
		pl, rl := strings.Split(p, "."), strings.Split(ref.DNS, ".")
		if len(pl) != len(rl) {
			t.Fatalf("%q matched %q with a different number of labels", presented, ref.DNS)
		}
		for i := range pl {
			if i == 0 && pl[0] == "*" {
				if len(pl) < 3 {
					t.Fatalf("wildcard %q matched with fewer than two labels after it", presented)
				}
				continue
			}
			if strings.Contains(pl[i], "*") || pl[i] != rl[i] {
				t.Fatalf("%q matched %q: label %d %q vs %q", presented, ref.DNS, i, pl[i], rl[i])
			}
		}
	})
}
