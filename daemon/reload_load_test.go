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

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var total, failed atomic.Int64
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
				if (w+i)%2 == 0 {
					err = login(ctx, b)
				} else {
					_, err = b.Authorize(ctx, localapi.Caller{}, localapi.AuthorRequest{User: "alice", Cmd: "show", Args: []string{"version"}})
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
			if ctx.Err() != nil {
				close(stop)
				wg.Wait()
				t.Fatalf("no request completed within the deadline (after %d reloads)", r)
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
	t.Logf("%d requests across %d reloads, %d failed", total.Load(), reloads, failed.Load())
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
