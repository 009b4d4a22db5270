package proxy

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// TestBackendKilledWhileClientsConnected: clients hold single-connect connections to the front end and
// run logins, authorizations and accounting records in a loop while the first of two servers is closed
// (every connection dropped, the port refused). Every client session gets an answer (PASS, or a clean
// ERROR) within its deadline, the client connections survive, the second server takes over, and every
// record acknowledged SUCCESS is at one of the servers.
func TestBackendKilledWhileClientsConnected(t *testing.T) {
	a, b := backend(t, nil), backend(t, nil)
	f := startFront(t, AgentBackend(newAgent(t, a.Addr(), b.Addr()), "", ""), nil)

	const clients, rounds = 6, 30
	var (
		answered, errorsSeen, acked atomic.Int64
		killOnce                    sync.Once
		killed                      = make(chan struct{})
		wg                          sync.WaitGroup
	)
	kill := func() {
		killOnce.Do(func() {
			a.Close()
			close(killed)
		})
	}
	failures := make(chan error, clients)
	for ci := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("tcp", f.addr)
			if err != nil {
				failures <- err
				return
			}
			defer nc.Close()
			codec, _ := tacplus.NewCodec(tacplus.Options{Role: tacplus.RoleClient, Key: localKey})
			c := &rawClient{t: t, nc: nc, codec: codec, rd: codec.NewReader(nc)}
			id := uint32(ci+1) << 16
			for r := range rounds {
				if ci == 0 && r == rounds/3 {
					kill()
				}
				for _, kind := range []tacplus.PacketType{tacplus.TypeAuthen, tacplus.TypeAuthor, tacplus.TypeAcct} {
					id++
					h := tacplus.Header{Version: tacplus.VersionByte(0), Type: kind, SeqNo: 1, SessionID: id, Flags: tacplus.FlagSingleConnect}
					var body tacplus.Body
					switch kind {
					case tacplus.TypeAuthen:
						h.Version = tacplus.VersionByte(1)
						body = papStart("alice", "alice-pw")
					case tacplus.TypeAuthor:
						body = &tacplus.AuthorRequest{Method: tacplus.MethodTACACSPlus, PrivLvl: 1, Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin,
							User: "alice", Args: []string{"service=shell", "cmd=show", "cmd-arg=x"}}
					case tacplus.TypeAcct:
						body = &tacplus.AcctRequest{Flags: tacplus.AcctFlagStart, Method: tacplus.MethodTACACSPlus, PrivLvl: 1, Type: tacplus.AuthenTypeASCII,
							Service: tacplus.ServiceLogin, User: "alice", Args: []string{fmt.Sprintf("task_id=%d", id), "service=shell"}}
					}
					start := time.Now()
					if err := c.trySend(h, body); err != nil {
						failures <- fmt.Errorf("client %d round %d %s: %v", ci, r, kind, err)
						return
					}
					rh, rb, err := c.recv() // 10 s at most: a hang fails here
					if err != nil {
						failures <- fmt.Errorf("client %d round %d %s: %v after %v", ci, r, kind, err, time.Since(start))
						return
					}
					if rh.SessionID != id || rh.SeqNo != 2 {
						failures <- fmt.Errorf("client %d: reply %v for session %#x", ci, rh, id)
						return
					}
					answered.Add(1)
					switch rep := rb.(type) {
					case *tacplus.AuthenReply:
						if rep.Status == tacplus.AuthenStatusError {
							errorsSeen.Add(1)
						} else if rep.Status != tacplus.AuthenStatusPass {
							failures <- fmt.Errorf("login %+v", rep)
							return
						}
					case *tacplus.AuthorResponse:
						if rep.Status == tacplus.AuthorStatusError {
							errorsSeen.Add(1)
						} else if rep.Status != tacplus.AuthorStatusPassAdd {
							failures <- fmt.Errorf("authorization %+v", rep)
							return
						}
					case *tacplus.AcctReply:
						if rep.Status == tacplus.AcctStatusSuccess {
							acked.Add(1)
						} else {
							errorsSeen.Add(1)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Error(err)
	}
	<-killed
	if got, want := answered.Load(), int64(clients*rounds*3); got != want {
		t.Fatalf("%d answers, want %d", got, want)
	}
	if n := b.Stats().AuthenPass; n == 0 {
		t.Error("the second server took no login after the first was killed")
	}
	if recs := int64(len(a.Accounting()) + len(b.Accounting())); recs < acked.Load() {
		t.Errorf("%d records acknowledged, %d at the servers", acked.Load(), recs)
	}
	if n := f.counter(f.m.Proxy.Connections); n != clients {
		t.Errorf("%v client connections, want %d (none dropped by the failover)", n, clients)
	}
	t.Logf("%d answers, %d clean ERRORs, %d records acknowledged", answered.Load(), errorsSeen.Load(), acked.Load())
}
