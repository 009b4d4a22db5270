package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// childEnv makes the test binary act as a peer process of another uid (see runAsPeer): it sends one
// request to the socket and prints "status body" on stdout.
const childEnv = "LOCALAPI_TEST_PEER"

func TestMain(m *testing.M) {
	if sock := os.Getenv(fakeAgentEnv); sock != "" {
		os.Exit(fakeAgent(sock))
	}
	if os.Getenv(childEnv) != "" {
		if os.Getenv(keptFDEnv) != "" {
			os.Exit(keptFDChild())
		}
		if os.Getenv(childClientEnv) != "" {
			os.Exit(clientChild())
		}
		os.Exit(peerChild())
	}
	goleak.VerifyTestMain(m)
}

// peerChild runs in the child: LOCALAPI_TEST_PEER=socket, LOCALAPI_TEST_PATH=/v1/..., LOCALAPI_TEST_BODY.
func peerChild() int {
	sock, path, body := os.Getenv(childEnv), os.Getenv("LOCALAPI_TEST_PATH"), os.Getenv("LOCALAPI_TEST_BODY")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}, Timeout: 10 * time.Second}
	method := http.MethodGet
	var rd io.Reader
	if body != "" {
		method, rd = http.MethodPost, bytes.NewBufferString(body)
	}
	req, err := http.NewRequest(method, "http://tacagent"+path, rd)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	resp, err := hc.Do(req)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %s", resp.StatusCode, b)
	return 0
}

// childClientEnv makes the peer child use the Client (GET /v1/status) and print its error.
const childClientEnv = "LOCALAPI_TEST_CLIENT"

func clientChild() int {
	_, err := NewClient(os.Getenv(childEnv)).Status(context.Background())
	if err == nil {
		fmt.Print("200 {}")
		return 0
	}
	b, _ := json.Marshal(map[string]string{"error": err.Error(), "forbidden": fmt.Sprint(errors.Is(err, ErrForbidden))})
	fmt.Printf("0 %s", b)
	return 0
}

// fakeAgentEnv makes the test binary a fake agent (run as another uid): it listens on the socket, prints
// "ready", answers every request with an empty status, reports on stdout every byte it receives, and
// exits when its stdin closes.
const fakeAgentEnv = "LOCALAPI_TEST_FAKE_AGENT"

func fakeAgent(sock string) int {
	l, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = l.Close()
	}()
	fmt.Println("ready")
	_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Printf("got %s %s %d bytes\n", r.Method, r.URL.Path, len(b))
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"version":"fake","api_version":"v1","servers":[]}`)
	}))
	return 0
}
