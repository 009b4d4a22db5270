package testkit

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	var n atomic.Int32
	if err := Poll(10*time.Second, time.Millisecond, func() bool { return n.Add(1) >= 3 }); err != nil {
		t.Fatalf("a condition that holds on the third check: %v", err)
	}
	if got := n.Load(); got != 3 {
		t.Fatalf("checked %d times, want 3", got)
	}
	if err := Poll(20*time.Millisecond, time.Millisecond, func() bool { return false }); !errors.Is(err, ErrTimeout) {
		t.Fatalf("a condition that never holds: %v, want ErrTimeout", err)
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			_, _ = b.Write([]byte("x"))
		}
	}()
	for range 100 {
		_ = b.String()
	}
	<-done
	if got := len(b.String()); got != 100 {
		t.Fatalf("%d bytes, want 100", got)
	}
}
