package chaos

// The scenarios of issue 12: callers that give up while servers are killed, the only server restarted,
// and a server that misroutes its replies. (The blackholed primary's p99 bound is in TestBlackholedServer.)

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// arrivalSlack is how much later than its caller's give-up a request may be received by a server.
// The servers stamp a record when their handler runs (time.Now() before the reply), not when its bytes
// reached the kernel: a request the agent wrote just before the give-up is stamped after it by the
// loopback delivery plus the server's accept, read, decode and scheduling. On a loaded 2-core machine
// under the race detector that is not "a few ms": a server just restarted after its kill, working off
// its backlog, stamped records of both front ends, given up 20 ms apart, within 5 ms of each other 116
// and 131 ms after their give-ups, after a 155 ms gap in its stamps (2026-12-05, load average 10). So the
// chaos check bounds the gross failure the issue names (a request queued, retried after a backoff or
// failed over long after the give-up: a minute, in the bug it was written for), and the exact rule —
// nothing is written once the caller gave up — is proven where time can be controlled:
// actors/connection TestCancelledRequestNeverSent and TestExpiredRequestNeverSent (every packet passes
// through one check of the request's deadline and Gone channel just before it is written). The servers
// run at nice -10 (as root) to keep the stamps close; the test logs the latest arrival per front end.
const arrivalSlack = 250 * time.Millisecond

// cancelSlack replaces arrivalSlack for local API callers that cancel: the daemon learns of such a
// give-up only when the closed connection reaches it (a deadline it knows in advance, from the
// Tacagent-Timeout-Ms header).
const cancelSlack = 400 * time.Millisecond

// acctArrival is one accounting record as a server's log holds it.
type acctArrival struct {
	TaskID   string    `json:"task_id"`
	Received time.Time `json:"received"`
}

// arrivals reads the task_id and receive time of every record in the server's accounting log.
func (s *server) arrivals() ([]acctArrival, error) {
	f, err := os.Open(s.acctLog)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []acctArrival
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		var a acctArrival
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", s.acctLog, n, err)
		}
		if a.Received.IsZero() {
			return nil, fmt.Errorf("%s line %d: no receive time", s.acctLog, n)
		}
		out = append(out, a)
	}
	return out, sc.Err()
}

// TestCallersGiveUp kills the primary and the secondary in turn (direct connections) while 30% of the
// callers give up early: a deadline 0.5 to 25 ms away, or a cancellation that long after the call. A
// request whose caller gave up must never reach a server afterwards (no retry, no failover, no queued
// write after the give-up): each accounting record's receive time in the servers' logs is compared with
// its caller's give-up time.
func TestCallersGiveUp(t *testing.T) {
	const share = 0.35 // about 27-33 % of all requests once recovery and the clean phase are counted
	r := newRig(t, rigOptions{direct: true, giveUp: share})
	r.allowLostConversations()
	r.allow([]string{ClassGaveUp})
	kills := 0
	r.load(*flagDuration, func(ctx context.Context) {
		for i := 0; ctx.Err() == nil && i < 100; i++ {
			if !r.servedAgain(ctx, r.primary, 20) {
				return
			}
			s := r.primary
			if i%2 == 1 {
				s = r.secondary
			}
			s.kill()
			kills++
			phase(ctx, killDowntime)
			if err := s.start(serverMode{}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	r.opts.giveUp = 0 // the workers have stopped: recovery and the clean phase wait for their answers
	r.finish(finishOptions{checks: func() {
		total := r.ledger.Counts().Total(Key{})
		imp := r.impatient.Load()
		gave := r.ledger.Counts().Total(Key{Class: ClassGaveUp})
		t.Logf("%d kills; %d requests, %d impatient (%.0f%%), %d ended by their caller's give-up", kills, total, imp,
			100*float64(imp)/float64(max(total, 1)), gave)
		if float64(imp) < 0.2*float64(total) || gave == 0 || kills < 2 {
			t.Errorf("%d of %d requests impatient, %d given up, %d kills: the scenario did not run", imp, total, gave, kills)
		}
		gaveUp := r.ledger.GaveUp()
		checked, before, after := 0, 0, 0
		var excess []time.Duration                                  // received minus give-up, for records received after the give-up
		late, worst := map[string]int{}, map[string]time.Duration{} // per front end: beyond the slack, max excess
		worstID := map[string]string{}
		for _, s := range []*server{r.primary, r.secondary} {
			recs, err := s.arrivals()
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range recs {
				g, ok := gaveUp[a.TaskID]
				if !ok {
					continue
				}
				checked++
				d := a.Received.Sub(g)
				if d <= 0 {
					before++
					continue
				}
				after++
				excess = append(excess, d)
				front := "goapi"
				if strings.Contains(a.TaskID, "-localapi-") {
					front = "localapi"
				}
				if d > worst[front] {
					worst[front] = d
					worstID[front] = a.TaskID + " at " + s.name + ", gave up " + g.Format("15:04:05.000000") + ", received " + a.Received.Format("15:04:05.000000")
				}
				slack := arrivalSlack
				if front == "localapi" && r.ledger.Cancelled(a.TaskID) {
					slack = cancelSlack
				}
				if d > slack {
					late[front]++
					t.Errorf("GIVEN UP, THEN SENT: %s reached %s %s after its caller gave up (slack %s)", a.TaskID, s.name,
						d.Round(time.Microsecond), slack)
				}
			}
		}
		sort.Slice(excess, func(i, j int) bool { return excess[i] < excess[j] })
		t.Logf("%d accounting records given up by their callers; %d copies reached a server: %d before the give-up, %d after (max %s; slack %s)",
			len(gaveUp), checked, before, after, Percentile(excess, 1), arrivalSlack)
		for _, f := range frontNames {
			t.Logf("%s: %d records received later than their slack after their caller gave up; latest %s after (%s)", f, late[f],
				worst[f].Round(time.Microsecond), worstID[f])
		}
		if len(gaveUp) == 0 {
			t.Errorf("no accounting record was given up: the invariant was not exercised")
		}
	}})
}

// TestOnlyServerRestarted runs the agents with one server, which is SIGKILLed under load, kept down for
// 1.5 s, and started again. While it is down requests fail fast; every login that starts 1 s or more
// after it is back must succeed (dead-time and the restart backoff must not keep the only server away).
func TestOnlyServerRestarted(t *testing.T) {
	r := newRig(t, rigOptions{direct: true, only: true})
	r.allow([]string{"unreachable", "connection_lost"})
	d := *flagDuration
	var down, up time.Time
	r.load(d, func(ctx context.Context) {
		phase(ctx, d/5)
		down = time.Now()
		r.primary.kill()
		phase(ctx, 1500*time.Millisecond)
		if err := r.primary.start(serverMode{}); err != nil {
			t.Error(err)
			return
		}
		up = time.Now()
	})
	r.finish(finishOptions{checks: func() {
		if up.IsZero() {
			t.Fatalf("the server was not started again within the load")
		}
		w := r.ledger.Window(down.Add(100*time.Millisecond), up, "")
		t.Logf("outage: %d requests, %d failed, p99 %s", w.Total, w.NotOK, Percentile(w.Latencies, 0.99))
		if w.NotOK == 0 {
			t.Errorf("no request failed while the only server was down: the fault did not apply")
		}
		logins := []string{opPAP, opPAPBad, opASCII}
		late := r.ledger.OpsBetween(up.Add(time.Second), time.Time{}, logins...)
		failed := 0
		for _, op := range late {
			if op.Class != ClassOK {
				failed++
				if failed <= 5 {
					t.Errorf("%s %s started %s after the server was back ended %s", op.Frontend, op.Kind,
						op.Start.Sub(up).Round(time.Millisecond), op.Class)
				}
			}
		}
		if len(late) < 10 {
			t.Errorf("only %d logins started 1 s after the restart: the load ended too soon", len(late))
		}
		for _, f := range frontNames {
			first := r.ledger.Window(up, time.Time{}, f).FirstOK
			t.Logf("%s: first success %s after the restart", f, first.Sub(up).Round(time.Millisecond))
		}
		t.Logf("%d logins started 1 s or more after the restart, %d failed", len(late), failed)
	}})
}

// TestMisroutingServer restarts the primary so that it answers every reply under a session_id that is
// not the request's own, then restarts it sound. No session may take another session's outcome (the
// wrong-answer invariant: a PASS for the wrong password, a permit for reload); the agents count the bad
// packets; logins during the misrouting end with an error or are answered by the secondary.
func TestMisroutingServer(t *testing.T) {
	r := newRig(t, rigOptions{direct: true})
	r.allowLostConversations()
	r.allow([]string{"protocol", "timeout"})
	d := *flagDuration
	var from, to time.Time
	r.load(d, func(ctx context.Context) {
		phase(ctx, d/6)
		r.primary.kill()
		if err := r.primary.start(serverMode{misroute: true}); err != nil {
			t.Error(err)
			return
		}
		from = time.Now()
		phase(ctx, d/2)
		to = time.Now()
		r.primary.kill()
		if err := r.primary.start(serverMode{}); err != nil {
			t.Error(err)
		}
	})
	r.finish(finishOptions{checks: func() {
		for _, f := range frontNames {
			bad := r.perServer(f, "tacagent_bad_packets_total", r.primary)
			t.Logf("%s: %v bad packets from the misrouting primary", f, bad)
			if bad == 0 {
				t.Errorf("%s: no bad packet counted from a server that misroutes every reply", f)
			}
		}
		classes := map[string]int{}
		for _, op := range r.ledger.OpsBetween(from, to) {
			classes[op.Class]++
		}
		t.Logf("during the misrouting: %s", FormatOutcomes(classes))
		if classes[ClassWrong] != 0 {
			t.Errorf("%d sessions took another session's outcome", classes[ClassWrong])
		}
		if len(classes) == 0 {
			t.Errorf("no request during the misrouting: the scenario did not run")
		}
	}})
}
