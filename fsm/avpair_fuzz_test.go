package fsm_test

import (
	"strings"
	"testing"

	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/tacplus"
)

// FuzzParseArgs checks the parsing of a server's AV pairs (fsm.ParseArgs, used on every authorization
// reply) on any list of up to 300 arguments (the text split at newlines): it succeeds exactly when every
// argument splits (tacplus.SplitArg), renders back to the same list, and Get, Values, Mandatory and
// OptionalArgs agree with the list. Seeds: testdata/fuzz/FuzzParseArgs.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{"service=shell\ncmd=\npriv-lvl=15", "acl*ops team\nacl*second\nacl=third", "", "=x", "a=1\n*b",
		"cmd-arg=show\ncmd-arg=running-config\ncmd=show", "x=\xff\x00\ny*z=w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		raw := strings.SplitN(data, "\n", 301)
		if len(raw) > 300 {
			raw = raw[:300]
		}
		args, err := fsm.ParseArgs(raw)
		allOK := true
		for _, r := range raw {
			if _, _, _, ok := tacplus.SplitArg(r); !ok {
				allOK = false
			}
		}
		if (err == nil) != allOK {
			t.Fatalf("ParseArgs(%q) err = %v, but every argument splits: %v", raw, err, allOK)
		}
		if err != nil {
			if args != nil {
				t.Fatalf("ParseArgs(%q) failed and returned pairs %v", raw, args)
			}
			return
		}
		got := args.Strings()
		if len(got) != len(raw) {
			t.Fatalf("ParseArgs(%q) gave %d pairs", raw, len(got))
		}
		for i := range raw {
			if got[i] != raw[i] {
				t.Fatalf("pair %d renders %q, was %q", i, got[i], raw[i])
			}
		}
		if len(args.Mandatory())+len(args.OptionalArgs()) != len(args) {
			t.Fatalf("%d mandatory + %d optional != %d pairs", len(args.Mandatory()), len(args.OptionalArgs()), len(args))
		}
		for i, a := range args {
			last, ok := args.Get(a.Name)
			if !ok {
				t.Fatalf("Get(%q) found nothing", a.Name)
			}
			for _, b := range args[i+1:] {
				if b.Name == a.Name {
					a = b
				}
			}
			if last != a {
				t.Fatalf("Get(%q) = %v, want the last such pair %v", a.Name, last, a)
			}
			n := 0
			for _, b := range args {
				if b.Name == a.Name {
					n++
				}
			}
			if len(args.Values(a.Name)) != n {
				t.Fatalf("Values(%q) has %d values, want %d", a.Name, len(args.Values(a.Name)), n)
			}
		}
	})
}
