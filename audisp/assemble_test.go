package audisp

import (
	"fmt"
	"testing"
	"time"
)

func rec(t *testing.T, line string) Record {
	t.Helper()
	r, err := ParseLine(line)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAssemblerEOEAndInterleaving(t *testing.T) {
	var a Assembler
	var got []*Event
	emit := func(e *Event) { got = append(got, e) }
	t0 := time.Unix(1000, 0)
	a.Add(rec(t, "type=SYSCALL msg=audit(1.000:1): pid=1"), t0, emit)
	a.Add(rec(t, "type=SYSCALL msg=audit(1.000:2): pid=2"), t0, emit)
	a.Add(rec(t, "type=EXECVE msg=audit(1.000:1): argc=1 a0=\"x\""), t0, emit)
	a.Add(rec(t, "type=USER_END msg=audit(1.000:3): pid=3 msg='op=x'"), t0, emit)
	if len(got) != 1 || got[0].ID.Serial != 3 || !got[0].Complete {
		t.Fatalf("a user-space record is an event by itself: %+v", got)
	}
	a.Add(rec(t, "type=EOE msg=audit(1.000:1):"), t0, emit)
	if len(got) != 2 || got[1].ID.Serial != 1 || len(got[1].Records) != 2 || !got[1].Complete {
		t.Fatalf("EOE ends event 1: %+v", got)
	}
	a.Add(rec(t, "type=EOE msg=audit(1.000:9):"), t0, emit)
	if a.LateEOE != 1 {
		t.Fatal("EOE of an unknown event is counted")
	}
	// Event 2 never gets its EOE: the timeout ends it, not before.
	a.Flush(t0.Add(DefaultEOETimeout-time.Millisecond), emit)
	if len(got) != 2 {
		t.Fatal("flushed before the timeout")
	}
	a.Flush(t0.Add(DefaultEOETimeout), emit)
	if len(got) != 3 || got[2].ID.Serial != 2 || got[2].Complete || a.TimedOut != 1 || a.Pending() != 0 {
		t.Fatalf("timeout: %+v", got)
	}
}

func TestAssemblerBounds(t *testing.T) {
	a := Assembler{MaxPending: 4, MaxRecords: 3}
	var got []*Event
	emit := func(e *Event) { got = append(got, e) }
	now := time.Unix(0, 0)
	for i := 1; i <= 10; i++ {
		a.Add(rec(t, fmt.Sprintf("type=SYSCALL msg=audit(1.000:%d): pid=1", i)), now, emit)
	}
	if a.Pending() != 4 || len(got) != 6 || got[0].ID.Serial != 1 || a.Overflowed != 6 {
		t.Fatalf("pending %d, ended %d, overflowed %d", a.Pending(), len(got), a.Overflowed)
	}
	for i := 0; i < 5; i++ {
		a.Add(rec(t, "type=PATH msg=audit(1.000:10): item=0"), now, emit)
	}
	a.FlushAll(emit)
	last := got[len(got)-1]
	if last.ID.Serial != 10 || len(last.Records) != 3 || !last.Truncated || a.RecordsDrop != 3 {
		t.Fatalf("records bound: %+v", last)
	}
	// A long run of completed events keeps the order slice small.
	var b Assembler
	for i := 1; i <= 100000; i++ {
		b.Add(rec(t, fmt.Sprintf("type=SYSCALL msg=audit(1.000:%d): pid=1", i)), now, emit)
		b.Add(rec(t, fmt.Sprintf("type=EOE msg=audit(1.000:%d):", i)), now, emit)
	}
	if len(b.order) > 4*DefaultMaxPending+1025 {
		t.Fatalf("order grew to %d", len(b.order))
	}
}

// facts runs lines through the assembler and Interpret, ending with FlushAll.
func facts(t testing.TB, lines []string) ([]Fact, map[string]int) {
	t.Helper()
	var a Assembler
	var out []Fact
	bad := map[string]int{}
	emit := func(e *Event) {
		f, reason := Interpret(e)
		if reason != "" {
			bad[reason]++
		}
		if f.Kind != FactNone {
			out = append(out, f)
		}
	}
	now := time.Unix(0, 0)
	for _, l := range lines {
		r, err := ParseLine(l)
		if err != nil {
			bad["parse"]++
			continue
		}
		a.Add(r, now, emit)
	}
	a.FlushAll(emit)
	return out, bad
}
