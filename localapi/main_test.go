package localapi

import (
	"bytes"
	"context"
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
	if os.Getenv(childEnv) != "" {
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
