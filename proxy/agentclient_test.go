package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
)

// clientAgent is the project's own client pointed at the front end with the local key.
func clientAgent(t testing.TB, addr string) *agent.Agent {
	t.Helper()
	a, err := agent.New(agent.Config{Servers: []agent.Server{{Addr: addr, Key: localKey, Timeout: 5 * time.Second, DialTimeout: time.Second, MaxInFlight: DefaultMaxSessionsPerClient}}},
		agent.WithRegisterer(prometheus.NewRegistry()), agent.WithLogger(testLog(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Close(ctx)
	})
	return a
}

// TestAgentClient runs every flow of the project's client, many at once on its multiplexed connection,
// through the front end, and checks what the client saw and what the upstream server received.
func TestAgentClient(t *testing.T) {
	srv := backend(t, nil)
	f := startFront(t, AgentBackend(newAgent(t, srv.Addr()), "", ""), nil)
	c := clientAgent(t, f.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, 5*n)
	for i := range n {
		wg.Add(5)
		go func() {
			defer wg.Done()
			_, err := c.Authenticate(ctx, agent.AuthenRequest{Type: tacplus.AuthenTypePAP, User: "alice", Password: []byte("alice-pw"), RemAddr: "10.0.0.1"}, nil)
			if err != nil {
				errs <- fmt.Errorf("pap %d: %w", i, err)
			}
		}()
		go func() {
			defer wg.Done()
			_, err := c.Authenticate(ctx, agent.AuthenRequest{Type: tacplus.AuthenTypePAP, User: "alice", Password: []byte("wrong"), RemAddr: fmt.Sprintf("10.0.1.%d", i)}, nil)
			if !errors.Is(err, tacplus.ErrAuthenticationFailed) {
				errs <- fmt.Errorf("wrong pap %d: %v, want FAIL", i, err)
			}
		}()
		go func() {
			defer wg.Done()
			var prompts []string
			conv := func(_ context.Context, p agent.Prompt) ([]byte, error) {
				prompts = append(prompts, fmt.Sprintf("%s:%v", p.Status, p.NoEcho))
				switch p.Status {
				case tacplus.AuthenStatusGetPass:
					return []byte("bob-pw"), nil
				case tacplus.AuthenStatusGetData:
					return []byte("123456"), nil
				}
				return nil, errors.New("unexpected prompt")
			}
			r, err := c.Authenticate(ctx, agent.AuthenRequest{Type: tacplus.AuthenTypeASCII, User: "bob"}, conv)
			if err != nil || r.User != "bob" || len(prompts) != 2 {
				errs <- fmt.Errorf("ascii %d: %v %v", i, err, prompts)
			}
		}()
		go func() {
			defer wg.Done()
			r, err := c.Authorize(ctx, agent.AuthorRequest{Method: tacplus.MethodTACACSPlus, Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin,
				User: "alice", Args: []string{"service=shell", "cmd=show", fmt.Sprintf("cmd-arg=%d", i)}})
			if err != nil || !slices.Equal(r.Returned.Strings(), []string{"priv-lvl=15"}) {
				errs <- fmt.Errorf("authorize %d: %v", i, err)
			}
		}()
		go func() {
			defer wg.Done()
			_, err := c.Account(ctx, agent.AcctRequest{Flags: tacplus.AcctFlagStart, Method: tacplus.MethodTACACSPlus, Type: tacplus.AuthenTypeASCII,
				Service: tacplus.ServiceLogin, User: "alice", Port: "pts/1", Args: []string{fmt.Sprintf("task_id=a-%d", i), "service=shell"}})
			if err != nil {
				errs <- fmt.Errorf("account %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := srv.Stats()
	if st.AuthenPass != 2*n || st.AuthenFail != n || st.AuthorPass != n || st.AcctRecords != n {
		t.Errorf("server saw %+v", st)
	}
	var tasks []string
	for _, r := range srv.Accounting() {
		if r.Port != "pts/1" || r.User != "alice" {
			t.Errorf("record %+v", r)
		}
		tasks = append(tasks, r.TaskID)
	}
	slices.Sort(tasks)
	if len(slices.Compact(tasks)) != n {
		t.Errorf("task ids %v", tasks)
	}
	if got := f.counter(f.m.Proxy.Sessions.WithLabelValues("acct", "SUCCESS")); got != n {
		t.Errorf("acct SUCCESS counted %v", got)
	}
}
