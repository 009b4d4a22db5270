package pam

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// TestModuleTimeoutVerdicts: what the module returns when time runs out (docs/pam.md, "Timeouts").
//
//   - The module sends the agent its timeout= less a margin (Tacagent-Timeout-Ms: 1500 for timeout=2s), so
//     the agent answers before the module stops reading: a silent server is the agent's "unavailable",
//     answered inside the module's timeout (PAM_AUTHINFO_UNAVAIL, a fallback line may run).
//   - A FAIL that reaches the agent before that deadline stays a FAIL: PAM_AUTH_ERR, the fallback line never
//     runs.
//   - An agent that answers 504 (its deadline passed and it could not say how the login ended) is
//     PAM_SYSTEM_ERR, never PAM_AUTHINFO_UNAVAIL: a fallback line does not run.
func TestModuleTimeoutVerdicts(t *testing.T) {
	b := requirePAM(t)
	silent, slowFail := testServer(t), testServer(t)
	if err := silent.SetFaults(tacplustest.Faults{DropReplies: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := slowFail.SetFaults(tacplustest.Faults{FailDelay: 500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	// The servers' own timeout (30 s) is far beyond the module's: only the caller's deadline can end the wait.
	dSilent := startDaemonTimeout(t, b, silent.Addr(), "30s", noLimit)
	dSlow := startDaemonTimeout(t, b, slowFail.Addr(), "30s", noLimit)
	const timeout = 2 * time.Second
	opts := "timeout=2s"
	fallback := func(socket string) string {
		return service(t, b, moduleLine("auth", "[success=done authinfo_unavail=ignore default=die]", socket, opts),
			"auth required pam_permit.so")
	}
	plain := func(socket string) string { return service(t, b, moduleLine("auth", "required", socket, opts)) }

	t.Run("silent server", func(t *testing.T) {
		r := pamtester(t, "bob-pw-K3\n", nil, plain(dSilent.Socket), "bob", "authenticate")
		if r.code == 0 || !strings.Contains(r.out, msgUnavailable) {
			t.Fatalf("want authinfo_unavail, got %s", r)
		}
		// The module read the agent's answer (HTTP 200) before its own timeout: it did not time out itself.
		if !strings.Contains(r.out, "HTTP 200") || strings.Contains(r.out, "did not answer in time") {
			t.Errorf("the answer did not come from the agent inside the module's timeout: %s", r)
		}
		if r.took >= timeout+returnSlack {
			t.Errorf("took %v", r.took)
		}
		if r := pamtester(t, "bob-pw-K3\n", nil, fallback(dSilent.Socket), "bob", "authenticate"); r.code != 0 {
			t.Errorf("no answer at all: the fallback line may run, got %s", r)
		}
	})
	t.Run("FAIL before the deadline", func(t *testing.T) {
		r := pamtester(t, "wrong-pw-0x\n", nil, fallback(dSlow.Socket), "bob", "authenticate")
		if r.code == 0 || !strings.Contains(r.out, msgAuthFail) || strings.Contains(r.out, msgAuthOK) {
			t.Fatalf("a FAIL must end the login, never reach the fallback line: %s", r)
		}
	})

	// A stand-in agent that answers every request 504 and records the deadline header it was sent.
	sock := filepath.Join(t.TempDir(), "agent504.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		headers []string
	)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // an unread body would make the close a reset, losing the answer
		mu.Lock()
		headers = append(headers, r.Header.Get("Tacagent-Timeout-Ms"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusGatewayTimeout)
		_, _ = w.Write([]byte(`{"error":{"code":"timeout","message":"the caller's deadline passed and the backend did not end in time"}}` + "\n"))
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("stand-in agent: %v", err)
		}
	})
	t.Run("agent answers 504", func(t *testing.T) {
		for _, svc := range []string{plain(sock), fallback(sock)} {
			r := pamtester(t, "bob-pw-K3\n", nil, svc, "bob", "authenticate")
			if r.code == 0 || strings.Contains(r.out, msgUnavailable) || !strings.Contains(r.out, "System error") {
				t.Errorf("504: want PAM_SYSTEM_ERR and no fallback, got %s", r)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(headers) == 0 {
			t.Fatal("the stand-in agent got no request")
		}
		for _, h := range headers {
			if h != "1500" {
				t.Errorf("Tacagent-Timeout-Ms %q, want 1500 for timeout=2s", h)
			}
		}
	})
}
