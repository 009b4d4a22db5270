package tacplus_test

import (
	"strings"
	"testing"

	"github.com/tacagent/tacagent/tacplus"
)

// FuzzSplitArg checks the AV-pair splitter of RFC 8907 section 6.1 on any text: a split argument has a
// non-empty name free of separators, the first separator decides mandatory ("=") or optional ("*"), and
// the pieces put together again give the argument back (Arg or OptionalArg). A refused argument has no
// separator or starts with one. Seeds: testdata/fuzz/FuzzSplitArg.
func FuzzSplitArg(f *testing.F) {
	for _, s := range []string{"service=shell", "cmd=", "acl*ops team", "priv-lvl=15", "=x", "*x", "noseparator", "",
		"a=b=c", "a*b=c", "a=b*c", "shell:roles=\"network-admin vdc-admin\"", "\x00=\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		name, value, mandatory, ok := tacplus.SplitArg(arg)
		i := strings.IndexAny(arg, "=*")
		if !ok {
			if i > 0 {
				t.Fatalf("SplitArg(%q) refused an argument with a name and a separator at %d", arg, i)
			}
			if name != "" || value != "" || mandatory {
				t.Fatalf("SplitArg(%q) refused but returned %q %q %v", arg, name, value, mandatory)
			}
			return
		}
		if name == "" || strings.ContainsAny(name, "=*") {
			t.Fatalf("SplitArg(%q): name %q is empty or holds a separator", arg, name)
		}
		if i != len(name) || mandatory != (arg[i] == '=') {
			t.Fatalf("SplitArg(%q) = %q %q mandatory=%v: not split at the first separator (%d)", arg, name, value, mandatory, i)
		}
		back := tacplus.OptionalArg(name, value)
		if mandatory {
			back = tacplus.Arg(name, value)
		}
		if back != arg {
			t.Fatalf("SplitArg(%q) = %q %q mandatory=%v, which builds %q", arg, name, value, mandatory, back)
		}
	})
}
