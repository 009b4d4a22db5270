package daemon

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/localapi"
)

// TestReloadLoopUnderLoad replaces the agent in a tight loop (every reload changes the servers, so each one
// retires the running agent) while workers send logins and authorizations without pause. Not one request
// may fail: a request that meets a retired agent goes to the new runtime.
func TestReloadLoopUnderLoad(t *testing.T) {
	const workers, reloads = 6, 60
	srv := startServer(t)
	s := settingsFor(srv)
	s.DrainTimeout = 20 * time.Second
	d := startDaemon(t, s, zerolog.Nop())
	b := d.Backend()

	// The whole run has a generous budget; each request has its own deadline, so that a slow machine
	// ends the run early (a clear failure) instead of failing the requests in flight at the budget's end.
	budget, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	var total, failed, slowest atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				ctx, cancelReq := context.WithTimeout(context.Background(), 30*time.Second)
				began := time.Now()
				if (w+i)%2 == 0 {
					err = login(ctx, b)
				} else {
					_, err = b.Authorize(ctx, localapi.Caller{}, localapi.AuthorRequest{User: "alice", Cmd: "show", Args: []string{"version"}})
				}
				cancelReq()
				if d := int64(time.Since(began)); d > slowest.Load() {
					slowest.Store(d) // racy max, for the log only
				}
				total.Add(1)
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("worker %d request %d: %w", w, i, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	// Each reload waits until at least one request completed since the last, so that reloads and
	// requests interleave on a loaded machine instead of the reloads finishing before any request ran.
	for r := 0; r < reloads; r++ {
		seen := total.Load()
		for total.Load() == seen {
			if budget.Err() != nil {
				close(stop)
				wg.Wait()
				t.Fatalf("the run's 3-minute budget ended after %d of %d reloads (machine too slow?)", r, reloads)
			}
			time.Sleep(time.Millisecond)
		}
		s.ServersChanged = true
		if err := d.Reload(s); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("reload %d: %v", r, err)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d requests across %d reloads, %d failed, slowest %v", total.Load(), reloads, failed.Load(), time.Duration(slowest.Load()))
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during reloads; first: %v", failed.Load(), total.Load(), firstErr)
	}
}

// TestShutdownRefusalIsFinal: once the daemon shuts down, a request refused by its draining agent is not
// retried (there is no new runtime): it fails at once with a typed error.
func TestShutdownRefusalIsFinal(t *testing.T) {
	srv := startServer(t)
	d, err := New(settingsFor(srv), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	calls := 0
	_, err = onCurrent(backend{d}, func(rt *runtime) (localapi.AuthorResult, error) {
		calls++
		return backend{d}.authorize(ctx, rt, localapi.Caller{}, localapi.AuthorRequest{User: "alice", Cmd: "show"})
	})
	if !retryable(err) || calls != 1 {
		t.Fatalf("after shutdown: %v after %d calls, want the closed agent's refusal after exactly 1", err, calls)
	}
}
