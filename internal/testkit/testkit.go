// Package testkit holds what the project's tests share: waiting on a condition with a deadline, free
// loopback ports, a goroutine-safe log buffer, and a running `tacagent run` daemon. Only tests import it.
//
// Tests never sleep to wait for something: they poll a condition with a generous deadline, so that they
// hold on a loaded machine and fail with a message that says what never happened.
package testkit

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// DefaultPoll is how often Eventually re-checks its condition.
const DefaultPoll = time.Millisecond

// Eventually polls cond every DefaultPoll until it holds, and fails t when it still does not after within.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	EventuallyEvery(t, within, DefaultPoll, what, cond)
}

// EventuallyEvery is Eventually with its own poll interval, for conditions that cost something to check
// (an HTTP scrape, a process listing).
func EventuallyEvery(t testing.TB, within, every time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := Poll(within, every, cond); err != nil {
		t.Fatalf("timed out after %v waiting for %s", within, what)
	}
}

// ErrTimeout is what Poll returns when the condition never held.
var ErrTimeout = errTimeout{}

type errTimeout struct{}

func (errTimeout) Error() string { return "the condition did not hold before the deadline" }

// Poll checks cond every interval until it holds (nil) or within has passed (ErrTimeout). It is
// Eventually for callers that are not the test's goroutine, or that want to report the failure themselves.
func Poll(within, every time.Duration, cond func() bool) error {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			if cond() {
				return nil
			}
			return ErrTimeout
		case <-tick.C:
		}
	}
	return nil
}

// FreePort returns a loopback address ("127.0.0.1:port") that was free a moment ago. Another process
// can take it before the caller binds it; tests that must not race for a port hold a listener instead.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// SyncBuffer is a bytes.Buffer that a child process's output and the test can share.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// HTTPGet returns the body of a 200 answer, or "" for any error or other status.
func HTTPGet(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
}

// HTTPOK says whether url answers 200.
func HTTPOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}
