package audisp

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestRunEndsEventsWithoutEOE: an event whose EOE never comes is ended by the timeout while the input
// stays open, and a too-long line is counted, not fatal.
func TestRunEndsEventsWithoutEOE(t *testing.T) {
	p := deadAgentPlugin(t)
	p.cfg.FlushEvery = 10 * time.Millisecond
	p.asm.Timeout = 50 * time.Millisecond
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, r) }()
	long := make([]byte, readBuffer+10)
	for i := range long {
		long[i] = 'x'
	}
	long[len(long)-1] = '\n'
	if _, err := w.Write(long); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString("type=SYSCALL msg=audit(5.000:7): arch=c000003e syscall=59 success=yes pid=9 auid=1000 ses=2 exe=\"/bin/x\"\n" +
		"type=EXECVE msg=audit(5.000:7): argc=1 a0=\"x\"\nnot a record\n"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for p.Stats.Events.Load() < 1 || p.Stats.Facts.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the event without EOE was never ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m := p.Stats.Malformed()
	if m[ReasonTooLong] != 1 || m[ReasonNoType] != 1 || p.Stats.Lines.Load() != 4 {
		t.Fatalf("lines %d, malformed %v", p.Stats.Lines.Load(), m)
	}
}

// TestRunStopsOnContext: SIGTERM (the context) stops the plugin while auditd keeps the pipe open.
func TestRunStopsOnContext(t *testing.T) {
	p := deadAgentPlugin(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, r) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	w.Close() // ends the reader goroutine, which Run left blocked on the pipe
	if p.Stats.Lines.Load() != 0 {
		t.Fatal("nothing was read")
	}
}

// TestQueueBoundedInBytes: queued facts hold their strings cut to what can be sent, and the queue is full
// at QueueBytes as well as at QueueSize.
func TestQueueBoundedInBytes(t *testing.T) {
	p := deadAgentPlugin(t)
	p.cfg.QueueBytes = 4096
	lines := readLines(t, "real/enriched-args-pam.log")
	for _, l := range lines {
		p.Line(l)
	}
	p.mu.Lock()
	p.asm.FlushAll(p.emit)
	p.mu.Unlock()
	if p.Stats.Dropped.Load() == 0 || p.bytes.Load() > 4096 {
		t.Fatalf("dropped %d, queued bytes %d", p.Stats.Dropped.Load(), p.bytes.Load())
	}
	var long *Fact
	for len(p.queue) > 0 {
		f := <-p.queue
		for _, a := range f.Argv {
			if len(a) > maxArgBytes {
				t.Fatalf("a queued argument of %d bytes", len(a))
			}
			if len(a) == maxArgBytes {
				long = &f
			}
		}
	}
	if long == nil {
		// The 9000-byte argument's fact may have been dropped; check Detach directly.
		f := Fact{Argv: []string{"x", string(make([]byte, 9000))}}
		f.Detach()
		if len(f.Argv[1]) != maxArgBytes {
			t.Fatal("Detach cuts arguments")
		}
		long = &f
	}
	st := NewTracker(TrackerConfig{BootID: "b"}).Exec(long, alice)
	if v := av(st[len(st)-1], "args_truncated*"); len(v) != 1 {
		t.Fatalf("a cut argument is still reported as truncated: %q", st[len(st)-1].AV)
	}
}
