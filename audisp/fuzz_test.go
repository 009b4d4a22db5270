package audisp

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseLine: any line parses or fails with a ParseError of a known reason; never a panic. A parsed
// record's event, alone, interprets without panicking too.
func FuzzParseLine(f *testing.F) {
	for _, name := range realCaptures {
		for i, l := range readLines(f, name) {
			if i%7 == 0 {
				f.Add(l)
			}
		}
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseLine(line)
		if err != nil {
			pe, ok := err.(*ParseError)
			if !ok || pe.Reason == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if r.Type == "" {
			t.Fatal("a record without a type")
		}
		ev := &Event{ID: r.ID, Records: []Record{r}}
		Interpret(ev)
	})
}

// FuzzStream: any sequence of lines goes through the assembler, the interpreter and the tracker without
// a panic, and every record the tracker makes respects RFC 8907's limits (255 pairs with the daemon's,
// 255 bytes each, printable US-ASCII).
func FuzzStream(f *testing.F) {
	f.Add(strings.Join(readLines(f, "real/enriched-exec-exit-abend.log")[:30], "\n"))
	f.Add(strings.Join(readLines(f, "real/raw-exec-exit.log")[:20], "\n"))
	f.Add("type=SYSCALL msg=audit(1.000:1): arch=c000003e syscall=59 success=yes pid=1 auid=1 ses=1\ntype=EXECVE msg=audit(1.000:1): argc=2 a0=\"x\" a1_len=4 a1[0]=4142 a1[1]=4344\ntype=EOE msg=audit(1.000:1):\ntype=SYSCALL msg=audit(1.000:2): arch=c000003e syscall=231 a0=3 pid=1 auid=1 ses=1")
	m, err := NewMasker(DefaultSecretPatterns, DefaultSecretFlags)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, input string) {
		tr := NewTracker(TrackerConfig{BootID: "b", Masker: m, MaxOpen: 8})
		a := Assembler{MaxPending: 8, MaxRecords: 16}
		now := time.Unix(0, 0)
		check := func(recs ...[]string) {
			for _, av := range recs {
				if len(av)+daemonPairs+senderPairs > maxPairs {
					t.Fatalf("%d pairs", len(av))
				}
				for _, p := range av {
					if len(p) > maxPairLen {
						t.Fatalf("pair of %d bytes", len(p))
					}
					for i := 0; i < len(p); i++ {
						if p[i] < 0x20 || p[i] > 0x7e {
							t.Fatalf("byte %#x in a pair", p[i])
						}
					}
				}
			}
		}
		emit := func(ev *Event) {
			fact, _ := Interpret(ev)
			switch fact.Kind {
			case FactExec:
				for _, r := range tr.Exec(&fact, alice) {
					check(r.AV)
				}
			case FactExit, FactAbend:
				if r, ok := tr.Exit(&fact); ok {
					check(r.AV)
				}
			}
		}
		for _, l := range strings.Split(input, "\n") {
			r, err := ParseLine(l)
			if err != nil {
				continue
			}
			a.Add(r, now, emit)
			now = now.Add(time.Second)
			a.Flush(now, emit)
		}
		a.FlushAll(emit)
		for _, r := range tr.Reap(func(string, int) bool { return false }, now) {
			check(r.AV)
		}
	})
}
