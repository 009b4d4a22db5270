package chaos

// The scenarios of issue 8, one test each. Every one runs both front ends under load for -chaos.duration,
// injects its fault on a schedule, and ends with finish: recovery, a clean phase, and every invariant.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// killDowntime is how long a SIGKILLed server stays down before it is started again.
const killDowntime = 300 * time.Millisecond

// untilCtx polls cond until it holds (true) or ctx ends (false).
func untilCtx(ctx context.Context, cond func() bool) bool {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// samples scrapes one front end's agent.
func (r *rig) samples(front string) Samples {
	r.t.Helper()
	var s Samples
	var err error
	if front == "goapi" {
		s, err = GatherSamples(r.agentReg)
	} else {
		s, err = r.daemon.scrape()
	}
	if err != nil {
		r.t.Fatalf("%s metrics: %v", front, err)
	}
	return s
}

// perServer sums a per-server metric for one server, as addressed by the agents.
func (r *rig) perServer(front, metric string, s *server, more ...string) float64 {
	m := map[string]string{"server": s.addr()}
	for i := 0; i+1 < len(more); i += 2 {
		m[more[i]] = more[i+1]
	}
	return r.samples(front).Sum(metric, m)
}

// servedAgain waits until every front end has had n more requests answered by s (false when ctx ends).
func (r *rig) servedAgain(ctx context.Context, s *server, n int) bool {
	base := map[string]int{}
	for _, f := range r.fronts {
		base[f.name()] = r.ledger.ServedBy(f.name(), s.name)
	}
	return untilCtx(ctx, func() bool {
		for _, f := range r.fronts {
			if r.ledger.ServedBy(f.name(), s.name) < base[f.name()]+n {
				return false
			}
		}
		return true
	})
}

var frontNames = []string{"goapi", "localapi"}

// TestPrimaryKilledRepeatedly SIGKILLs the primary again and again while sessions are in flight on it
// (each of its replies is held back 10 ms), and starts it again 300 ms later. Sessions that had no reply
// are retried on the secondary; an ASCII login that already showed a prompt ends with ConnectionLost.
// Each kill must cost each agent exactly one reconnection, logins during the outage must not wait for a
// timeout (dead-time), and sessions must have been in flight at the kills.
func TestPrimaryKilledRepeatedly(t *testing.T) {
	r := newRig(t, rigOptions{direct: true})
	r.allowLostConversations()
	type outage struct{ from, to time.Time }
	var outages []outage
	lostBefore := map[string]float64{}
	midSession := map[string]int{}
	r.load(*flagDuration, func(ctx context.Context) {
		for ctx.Err() == nil {
			// Both agents use the primary again (it was restarted, revived after dead-time, reconnected).
			if !r.servedAgain(ctx, r.primary, 20) {
				return
			}
			for _, f := range frontNames {
				lostBefore[f] = r.perServer(f, "tacagent_connection_lost_broadcasts_total", r.primary)
			}
			from := time.Now()
			r.primary.kill()
			// The whole downtime even when the load ends meanwhile: a kill cut short could end before the
			// restarted connection's first connect fails, and so not dead-time the primary.
			phase(context.Background(), killDowntime)
			if err := r.primary.start(serverMode{}); err != nil {
				t.Error(err)
				return
			}
			outages = append(outages, outage{from, time.Now()})
			for _, f := range frontNames {
				if r.perServer(f, "tacagent_connection_lost_broadcasts_total", r.primary) > lostBefore[f] {
					midSession[f]++
				}
			}
		}
	})
	r.finish(finishOptions{checks: func() {
		_, kills := r.primary.counts()
		if kills < 2 {
			t.Errorf("only %d kills in %s: the scenario did not run", kills, *flagDuration)
		}
		for _, f := range frontNames {
			// Each kill costs each agent one reconnection of its connection to the primary, plus the
			// connection of the one background probe that revives it (issue 12 point 5: a dead server comes
			// back only through a real TACACS+ answer, on a connection of the probe's own). The primary is
			// dead-timed once per kill (the restarted connection's refused connect; "server marked dead" is
			// logged once per death) and never otherwise. Since issue 12 point 2 a request that waits more
			// than 50 ms behind the reconnected connection's single-connect negotiation takes a connection
			// of its own: on a loaded machine a few per kill, at most one per other caller of the front end.
			// So: first + kills (reconnections) + deaths (probes) ≤ opens ≤ that + kills × (callers - 1).
			// A second reconnection per kill beyond that, a spurious death, a probe per login or a
			// reconnection storm break it; a missing probe or reconnection too.
			var opens float64
			var deaths int
			if err := poll(waitLimit, func() (bool, string) {
				var err error
				if deaths, err = r.deadMarkings(f, r.primary); err != nil {
					return false, err.Error()
				}
				opens = r.perServer(f, "tacagent_connection_opens_total", r.primary)
				dead := r.perServer(f, "tacagent_server_dead", r.primary)
				return dead == 0 && opens >= float64(1+kills+deaths), fmt.Sprintf("%v opens, %d deaths, server_dead %v", opens, deaths, dead)
			}); err != nil {
				t.Errorf("%s: the primary was not reconnected and revived after the last kill: %v", f, err)
			}
			if deaths != kills {
				t.Errorf("%s: the primary was marked dead %d times for %d kills, want one death per kill", f, deaths, kills)
			}
			least := float64(1 + kills + deaths)
			most := least + float64(kills*(*flagWorkers-1))
			if opens < least || opens > most {
				t.Errorf("%s: %v connections opened to the primary for %d kills and %d deaths, want %v to %v (the first, one reconnection per kill, one probe per death, and up to %d requests per kill that skipped the negotiation)",
					f, opens, kills, deaths, least, most, *flagWorkers-1)
			}
			restarts := r.perServer(f, "tacagent_connection_restarts_total", r.primary)
			if midSession[f] == 0 || restarts < float64(midSession[f]) {
				t.Errorf("%s: %d of %d kills caught sessions in flight, %v connection restarts: want at least one restart per such kill",
					f, midSession[f], kills, restarts)
			}
			t.Logf("%s: %d kills, %d with sessions in flight; %d deaths; %v opens (%v beyond reconnections and probes), %v restarts",
				f, kills, midSession[f], deaths, opens, opens-least, restarts)
		}
		// Dead-time: logins during an outage go to the secondary without waiting for the dead primary.
		var during []time.Duration
		for _, o := range outages {
			during = append(during, r.ledger.LatenciesBetween(o.from, o.to)...)
		}
		sortDurations(during)
		p99 := Percentile(during, 0.99)
		t.Logf("latency during the outages: %d requests, p50 %s p99 %s max %s; overall p99 %s", len(during),
			Percentile(during, 0.5), p99, Percentile(during, 1), Percentile(r.ledger.Latencies(), 0.99))
		if p99 >= serverTimeout {
			t.Errorf("p99 during the outages is %s: requests waited for the dead primary's timeout (%s)", p99, serverTimeout)
		}
	}})
}

// deadMarkings counts the "server marked dead" lines a front end's agent logged for s: its serverfsm
// logs one per death (alive to dead), none while it stays dead or probes.
func (r *rig) deadMarkings(front string, s *server) (int, error) {
	if agentLogLevel() > zerolog.WarnLevel {
		return 0, fmt.Errorf("-chaos.loglevel %s hides the warn lines counted here", agentLogLevel())
	}
	path := r.daemon.logPath
	if front == "goapi" {
		path = filepath.Join(r.dir, "goapi.log")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range bytes.Split(raw, []byte("\n")) {
		var e struct{ Message, Server string }
		if json.Unmarshal(line, &e) == nil && e.Message == "server marked dead" && e.Server == s.addr() {
			n++
		}
	}
	return n, nil
}

// TestBothServersDown kills both servers under load, keeps them down, and starts them again. While both
// are down every request must fail fast with a typed error (never hang, never wait for a timeout), every
// accounting record must be reported failed to its caller, and the agents must recover by themselves.
func TestBothServersDown(t *testing.T) {
	r := newRig(t, rigOptions{direct: true})
	r.allow([]string{"unreachable", "connection_lost"})
	d := *flagDuration
	var down, up time.Time
	r.load(d, func(ctx context.Context) {
		phase(ctx, d/4)
		down = time.Now()
		r.primary.kill()
		r.secondary.kill()
		// Long enough for a window after the dead-time in which every request must fail fast.
		phase(ctx, max(d/3, deadTime+time.Second))
		for _, s := range []*server{r.primary, r.secondary} {
			if err := s.start(serverMode{}); err != nil {
				t.Error(err)
			}
		}
		up = time.Now()
	})
	r.finish(finishOptions{checks: func() {
		// Skip the first moment of the outage: requests in flight at the kill.
		w := r.ledger.Window(down.Add(deadTime), up, "")
		t.Logf("outage: %d requests, %d failed, p99 %s", w.Total, w.NotOK, Percentile(w.Latencies, 0.99))
		if w.Total == 0 || w.NotOK == 0 {
			t.Errorf("the outage window holds %d requests, %d failed: the scenario did not run", w.Total, w.NotOK)
		}
		if p99 := Percentile(w.Latencies, 0.99); p99 >= serverTimeout {
			t.Errorf("p99 with both servers down is %s: requests waited instead of failing fast", p99)
			for _, op := range r.ledger.OpsBetween(down.Add(deadTime), up) {
				if op.Latency >= serverTimeout/2 {
					t.Logf("slow: %s %s started %s after the kill, took %s, ended %s (server %q)", op.Frontend, op.Kind,
						op.Start.Sub(down).Round(time.Millisecond), op.Latency.Round(time.Millisecond), op.Class, op.Server)
				}
			}
		}
		for _, f := range frontNames {
			rec := r.ledger.Window(up, time.Time{}, f).FirstOK
			if rec.IsZero() || rec.Sub(up) > deadTime+backoffMax+time.Second {
				t.Errorf("%s: first success %v after the servers came back, want within %s", f, rec.Sub(up), deadTime+backoffMax+time.Second)
			} else {
				t.Logf("%s: recovered %s after the servers came back", f, rec.Sub(up).Round(time.Millisecond))
			}
		}
	}})
}

// TestBlackholedServer makes the primary accept and never answer (Toxiproxy's timeout toxic downstream).
// Requests waiting for it time out after the server timeout and move to the secondary, which is safe since
// no reply was seen; an ASCII login whose conversation the blackhole cut ends with a timeout. No request
// may wait for much more than one timeout. Once both agents have marked the primary dead (issue 12: "after
// first detection"), no login may wait on it while the secondary is alive (its probes get no answer, so
// it is never revived), and logins keep their latency (blackholeVerdict).
func TestBlackholedServer(t *testing.T) {
	r := newRig(t, rigOptions{})
	// An ASCII login whose conversation the blackhole cut times out; it already showed a prompt, so it is
	// not retried. The daemon's stack counts it as "unavailable" (code unreachable), like a lost one.
	r.allowFront("goapi", []string{"timeout"}, opASCII)
	r.allowFront("localapi", []string{"unreachable"}, opASCII)
	d := *flagDuration
	var start, from, detected, to time.Time
	r.load(d, func(ctx context.Context) {
		start = time.Now()
		phase(ctx, d/4) // the logins "before": enough of them for a p99
		from = time.Now()
		if err := r.primary.link.Add(Blackhole("downstream")); err != nil {
			t.Error(err)
			return
		}
		// Detection: both agents have marked the primary dead (the first request sent into the blackhole
		// timed out, one server timeout after it began). From then on every login must skip it.
		if untilCtx(ctx, func() bool {
			for _, f := range frontNames {
				if r.perServer(f, "tacagent_server_dead", r.primary) != 1 {
					return false
				}
			}
			return true
		}) {
			detected = time.Now()
		}
		phase(ctx, d-d/12-time.Since(start))
		r.primary.link.Clear()
		to = time.Now()
	})
	r.finish(finishOptions{checks: func() {
		w := r.ledger.Window(from, to, "")
		// The requests caught by the blackhole are those in flight when it began (each worker waits for its
		// own): they may all have started just before it, so they are counted by their end.
		paid := 0
		for _, op := range r.ledger.OpsBetween(start, to) {
			if op.Latency >= serverTimeout && op.Start.Add(op.Latency).After(from) {
				paid++
			}
		}
		t.Logf("blackhole: %d requests, %d waited for a timeout; p50 %s p99 %s max %s", w.Total, paid,
			Percentile(w.Latencies, 0.5), Percentile(w.Latencies, 0.99), Percentile(w.Latencies, 1))
		if paid == 0 {
			t.Errorf("no request waited for the blackholed primary: the fault did not apply")
		}
		if mx := Percentile(w.Latencies, 1); mx >= 2*serverTimeout+500*time.Millisecond {
			t.Errorf("a request took %s with one server blackholed: more than one timeout plus the failover", mx)
		}
		for _, f := range frontNames {
			if v := r.perServer(f, "tacagent_sessions_finished_total", r.primary, "outcome", "timeout"); v == 0 {
				t.Errorf("%s: no session on the primary timed out", f)
			}
		}
		if detected.IsZero() {
			t.Fatalf("the agents did not mark the blackholed primary dead within the load")
		}
		t.Logf("both agents marked the primary dead %s after the blackhole began", detected.Sub(from).Round(time.Millisecond))
		logins := []string{opPAP, opPAPBad, opASCII}
		// Before: the logins that started and ended before the blackhole (those in flight at its start
		// waited for it, and belong to neither side).
		var before []Brief
		for _, op := range r.ledger.OpsBetween(start, from, logins...) {
			if op.Start.Add(op.Latency).Before(from) {
				before = append(before, op)
			}
		}
		during := r.ledger.OpsBetween(detected, to, logins...)
		v := blackholeVerdict(before, during, r.primary.name)
		t.Logf("login p99 before the blackhole %s (%d logins), during it after detection %s (%d logins: %d waited a server timeout, %d ended on the primary)",
			v.before, len(before), v.during, len(during), v.waited, v.onDead)
		for _, e := range v.errs {
			t.Error(e)
		}
	}})
}

// loginLatencyFloor is the login p99 that blackholeVerdict accepts during an outage whatever the p99
// before it: three quarters of a server timeout. A login that waits on the dead server costs at least a
// whole server timeout, so the floor cannot hide one (and blackholeVerdict counts them one by one); it
// forgives the scheduling noise of a loaded 2-CPU machine, on which the p99 of some hundred logins (its
// top one or two samples) moved between 200 and 490 ms from run to run with every login answered by the
// live server (docs/chaos.md).
const loginLatencyFloor = 3 * serverTimeout / 4

type verdict struct {
	before, during time.Duration // login p99s
	waited, onDead int           // logins during the outage that waited a server timeout, that ended on the dead server
	errs           []string
}

// blackholeVerdict judges the logins after the agents detected a dead server (issue 12: no login waits on
// a dead server while another is alive; login p99 during the outage at most twice the p99 before it):
//   - none may wait a server timeout (a login sent to the dead server waits exactly that) and none may end
//     on it (Server names the server that answered, or the last one tried when the request failed);
//   - their p99 is at most max(2 × the p99 before, loginLatencyFloor);
//   - each side has at least 50 logins, or the p99s mean nothing.
func blackholeVerdict(before, during []Brief, dead string) verdict {
	p99 := func(ops []Brief) time.Duration {
		var l []time.Duration
		for _, op := range ops {
			if op.Class != ClassHung {
				l = append(l, op.Latency)
			} else {
				l = append(l, reqDeadline+hungGrace)
			}
		}
		sortDurations(l)
		return Percentile(l, 0.99)
	}
	v := verdict{before: p99(before), during: p99(during)}
	for _, op := range during {
		if op.Latency >= serverTimeout || op.Class == ClassHung {
			v.waited++
		}
		if op.Server == dead {
			v.onDead++
		}
	}
	const minLogins = 50
	if len(before) < minLogins || len(during) < minLogins {
		v.errs = append(v.errs, fmt.Sprintf("%d logins before the outage and %d during it: too few to compare (want %d each)",
			len(before), len(during), minLogins))
	}
	if v.waited != 0 {
		v.errs = append(v.errs, fmt.Sprintf("%d logins started after the dead server was detected waited a server timeout (%s): a login waited on it",
			v.waited, serverTimeout))
	}
	if v.onDead != 0 {
		v.errs = append(v.errs, fmt.Sprintf("%d logins started after detection ended on %s, the dead server", v.onDead, dead))
	}
	if bound := max(2*v.before, loginLatencyFloor); v.during > bound {
		v.errs = append(v.errs, fmt.Sprintf("login p99 during the outage (after detection) is %s, above max(2 × %s before it, %s)",
			v.during, v.before, loginLatencyFloor))
	}
	return v
}

// TestSlowServer delays every reply of the primary by 700 ms, just under the 1 s timeout, and limits the
// requests' bandwidth. Nothing may time out or fail over: slow is not dead.
func TestSlowServer(t *testing.T) {
	r := newRig(t, rigOptions{})
	d := *flagDuration
	var from, to time.Time
	r.load(d, func(ctx context.Context) {
		phase(ctx, d/6)
		from = time.Now()
		for _, tx := range []Toxic{Latency("downstream", 700, 0), Bandwidth("upstream", 64)} {
			if err := r.primary.link.Add(tx); err != nil {
				t.Error(err)
			}
		}
		<-ctx.Done()
		to = time.Now()
		r.primary.link.Clear()
	})
	r.finish(finishOptions{checks: func() {
		for _, f := range frontNames {
			s := r.samples(f)
			if v := s.Sum("tacagent_sessions_finished_total", map[string]string{"outcome": "timeout"}); v != 0 {
				t.Errorf("%s: %v sessions timed out on a server slower than, but within, the timeout", f, v)
			}
			if v := s.Sum("tacagent_failovers_total", nil); v != 0 {
				t.Errorf("%s: %v failovers away from a slow but live server", f, v)
			}
		}
		w := r.ledger.Window(from.Add(time.Second), to, "")
		t.Logf("slow primary: %d requests, p50 %s p99 %s max %s", w.Total, Percentile(w.Latencies, 0.5),
			Percentile(w.Latencies, 0.99), Percentile(w.Latencies, 1))
		if p50 := Percentile(w.Latencies, 0.5); p50 < 700*time.Millisecond {
			t.Errorf("p50 %s under a 700 ms latency: the toxic did not apply", p50)
		}
	}})
}

// TestResetPeerMidPacket slices the primary's replies into 4-byte pieces 300 µs apart, so that replies
// are in transit for a while, and alternately resets connections (TCP RST, reset_peer) and cuts them after
// 30 bytes (limit_data: inside the second packet). Requests whose reply was cut are retried (once on the
// primary, then on the secondary); nothing hangs, nothing is lost.
func TestResetPeerMidPacket(t *testing.T) {
	r := newRig(t, rigOptions{})
	r.allowLostConversations()
	d := *flagDuration
	const on, off = 400 * time.Millisecond, 400 * time.Millisecond
	cycles := 0
	r.load(d, func(ctx context.Context) {
		if err := r.primary.link.Add(Slicer("downstream", 4, 2, 300)); err != nil {
			t.Error(err)
			return
		}
		for i := 0; ctx.Err() == nil && i < 1000; i++ {
			tx := ResetPeer("upstream", 15)
			if i%2 == 1 {
				tx = LimitData("downstream", 30)
			}
			if err := r.primary.link.Add(tx); err != nil {
				t.Error(err)
				return
			}
			phase(ctx, on)
			if err := r.primary.link.Remove(tx.Name); err != nil {
				t.Error(err)
				return
			}
			cycles++
			phase(ctx, off)
		}
	})
	r.finish(finishOptions{checks: func() {
		for _, f := range frontNames {
			s := r.samples(f)
			closes := map[string]float64{}
			for _, x := range s {
				if x.Name == "tacagent_connection_closes_total" && x.Labels["server"] == r.primary.addr() {
					closes[x.Labels["reason"]] += x.Value
				}
			}
			t.Logf("%s: %d cycles; primary connection closes by reason %v; ConnectionLost broadcasts %v", f, cycles, closes,
				s.Sum("tacagent_connection_lost_broadcasts_total", nil))
			if closes["reset"]+closes["eof"]+closes["error"] == 0 {
				t.Errorf("%s: no connection to the primary was cut", f)
			}
		}
	}})
}

// TestSlicedToOneByte cuts every packet in both directions into 1-byte segments: the stream framing must
// reassemble them, so nothing at all may fail.
func TestSlicedToOneByte(t *testing.T) {
	r := newRig(t, rigOptions{})
	d := *flagDuration
	var from time.Time
	r.load(d, func(ctx context.Context) {
		for _, stream := range []string{"upstream", "downstream"} {
			if err := r.primary.link.Add(Slicer(stream, 1, 0, 0)); err != nil {
				t.Error(err)
			}
		}
		from = time.Now()
		<-ctx.Done()
	})
	r.finish(finishOptions{checks: func() {
		for _, f := range frontNames {
			if v := r.samples(f).Sum("tacagent_bad_packets_total", nil); v != 0 {
				t.Errorf("%s: %v bad packets from a stream cut into single bytes", f, v)
			}
			if n := r.ledger.ServedBy(f, r.primary.name); n < 10 {
				t.Errorf("%s: the primary answered only %d requests", f, n)
			}
		}
		w := r.ledger.Window(from, time.Time{}, "")
		t.Logf("sliced: %d requests, p50 %s p99 %s", w.Total, Percentile(w.Latencies, 0.5), Percentile(w.Latencies, 0.99))
	}})
}

// TestKeyMismatch restarts the primary with a different key under load, then with the right one. Replies
// that do not de-obfuscate are a bad secret (RFC 8907 section 4.4): the request moves to the secondary and
// the primary is dead-timed; once the key is right again the agents return to it.
func TestKeyMismatch(t *testing.T) {
	r := newRig(t, rigOptions{direct: true})
	r.allowLostConversations() // the restarts themselves cut conversations
	d := *flagDuration
	recovered := false
	r.load(d, func(ctx context.Context) {
		phase(ctx, d/6)
		r.primary.kill()
		if err := r.primary.start(serverMode{wrongKey: true}); err != nil {
			t.Error(err)
			return
		}
		phase(ctx, d/2)
		r.primary.kill()
		if err := r.primary.start(serverMode{}); err != nil {
			t.Error(err)
			return
		}
		recovered = r.servedAgain(ctx, r.primary, 5)
	})
	r.finish(finishOptions{checks: func() {
		if !recovered {
			t.Errorf("the agents did not return to the primary within the load once its key was right")
		}
		for _, f := range frontNames {
			s := r.samples(f)
			bad := s.Sum("tacagent_bad_packets_total", map[string]string{"server": r.primary.addr(), "reason": "bad_secret"})
			fo := s.Sum("tacagent_failovers_total", map[string]string{"from": r.primary.addr()})
			t.Logf("%s: %v bad_secret packets, %v failovers from the primary", f, bad, fo)
			if bad == 0 || fo == 0 {
				t.Errorf("%s: %v bad_secret packets and %v failovers: the mismatch was not seen", f, bad, fo)
			}
		}
	}})
}

// TestRefusingSingleConnect restarts the primary refusing single-connect (RFC 8907 section 4.3) under
// load: the agents must fall back to one connection per session on it rather than give it up, and go
// back to multiplexing once it agrees again.
func TestRefusingSingleConnect(t *testing.T) {
	r := newRig(t, rigOptions{direct: true})
	r.allowLostConversations()
	d := *flagDuration
	refusedServed, single := false, map[string]float64{}
	r.load(d, func(ctx context.Context) {
		phase(ctx, d/6)
		r.primary.kill()
		if err := r.primary.start(serverMode{refuseSingle: true}); err != nil {
			t.Error(err)
			return
		}
		refusedServed = r.servedAgain(ctx, r.primary, 20)
		for _, f := range frontNames {
			single[f] = r.perServer(f, "tacagent_single_connect", r.primary)
		}
		phase(ctx, d/4)
		r.primary.kill()
		if err := r.primary.start(serverMode{}); err != nil {
			t.Error(err)
		}
	})
	r.finish(finishOptions{checks: func() {
		if !refusedServed {
			t.Errorf("the primary served no requests while it refused single-connect: the agents gave it up")
		}
		for _, f := range frontNames {
			if single[f] != 0 {
				t.Errorf("%s: tacagent_single_connect = %v while the primary refused it", f, single[f])
			}
			// Back to multiplexing: the agent's status says so, and a burst of logins opens no connection.
			if err := poll(waitLimit, func() (bool, string) {
				sc, err := r.statusSingleConnect(f, r.primary)
				return sc, fmt.Sprintf("status single_connect %v %v", sc, err)
			}); err != nil {
				t.Errorf("%s: not multiplexing again once the primary agreed: %v", f, err)
				continue
			}
			opens := r.perServer(f, "tacagent_connection_opens_total", r.primary)
			for range 50 {
				r.do(r.front(f), opRecovery)
			}
			if after := r.perServer(f, "tacagent_connection_opens_total", r.primary); after != opens {
				t.Errorf("%s: 50 logins opened %v connections to a primary that agreed to single-connect", f, after-opens)
			}
			if v := r.perServer(f, "tacagent_single_connect", r.primary); v != 1 {
				t.Errorf("%s: tacagent_single_connect = %v while the agent multiplexes on the primary (status says so)", f, v)
			}
		}
	}})
}

// statusSingleConnect asks a front end's agent whether it multiplexes on s.
func (r *rig) statusSingleConnect(front string, s *server) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), reqDeadline)
	defer cancel()
	single := map[string]bool{} // address -> single-connect, from either status
	if front == "goapi" {
		st, err := r.agent.Status(ctx)
		if err != nil {
			return false, err
		}
		for _, x := range st.Servers {
			single[x.Addr] = x.SingleConnect
		}
	} else {
		st, err := r.client.Status(ctx)
		if err != nil {
			return false, err
		}
		for _, x := range st.Servers {
			single[x.Addr] = x.SingleConnect
		}
	}
	sc, ok := single[s.addr()]
	if !ok {
		return false, fmt.Errorf("no server %s in the status", s.addr())
	}
	return sc, nil
}

// TestReloadUnderLoad rewrites the daemon's configuration (a changed timeout replaces the agent) and
// sends SIGHUP again and again under load, with one broken file among them. No request may fail (asserted
// explicitly: 0 failed requests, issue 12), every
// reload must be counted with its result, and the replaced agents must drain away (goroutines).
func TestReloadUnderLoad(t *testing.T) {
	r := newRig(t, rigOptions{})
	d := *flagDuration
	ok, bad := 0, 0
	r.load(d, func(ctx context.Context) {
		for i := 0; ctx.Err() == nil && i < 100; i++ {
			phase(ctx, d/7)
			if ctx.Err() != nil {
				return
			}
			valid := i != 2
			if valid {
				r.daemon.timeout = map[bool]time.Duration{true: serverTimeout, false: serverTimeout + 100*time.Millisecond}[i%2 == 1]
			}
			if err := r.daemon.writeConfig(valid); err != nil {
				t.Error(err)
				return
			}
			if err := r.daemon.proc.Signal(syscall.SIGHUP); err != nil {
				t.Error(err)
				return
			}
			if valid {
				ok++
			} else {
				bad++
			}
			if !untilCtx(ctx, func() bool {
				s := r.samples("localapi")
				return s.Sum("tacagent_config_reloads_total", map[string]string{"result": "ok"}) == float64(ok) &&
					s.Sum("tacagent_config_reloads_total", map[string]string{"result": "error"}) == float64(bad)
			}) {
				return
			}
		}
	})
	r.finish(finishOptions{checks: func() {
		s := r.samples("localapi")
		gotOK := s.Sum("tacagent_config_reloads_total", map[string]string{"result": "ok"})
		gotBad := s.Sum("tacagent_config_reloads_total", map[string]string{"result": "error"})
		t.Logf("reloads: %d sent (%d broken); counted ok %v, error %v", ok+bad, bad, gotOK, gotBad)
		if gotOK != float64(ok) || gotBad != float64(bad) || ok < 3 || bad != 1 {
			t.Errorf("reloads counted ok=%v error=%v, sent ok=%d error=%d (want at least 3 good and 1 broken)", gotOK, gotBad, ok, bad)
		}
		// Issue 12 point 10: a reload fails no request, through either front end.
		failed := map[Key]int{}
		for k, n := range r.ledger.Counts() {
			if k.Class != ClassOK {
				failed[k] += n
			}
		}
		if len(failed) != 0 {
			t.Errorf("requests failed across the reloads (want 0): %v; samples: %v", failed, r.ledger.Samples())
		}
	}})
}

// TestSIGTERMUnderLoad sends SIGTERM to the daemon while sessions are in flight (the primary's replies
// are delayed 150 ms). Requests that reached it before must finish with their real answer; requests after
// it must be refused with a typed error; the daemon must exit 0 promptly; nothing acknowledged is lost.
func TestSIGTERMUnderLoad(t *testing.T) {
	r := newRig(t, rigOptions{})
	r.allow([]string{"shutting_down", "no_agent"})
	d := *flagDuration
	var term, exited time.Time
	var code int
	r.load(d, func(ctx context.Context) {
		if err := r.primary.link.Add(Latency("downstream", 150, 0)); err != nil {
			t.Error(err)
			return
		}
		phase(ctx, d/2)
		inFlight := r.samples("localapi").Sum("tacagent_sessions_in_flight", nil)
		term = time.Now()
		if err := r.daemon.proc.Signal(syscall.SIGTERM); err != nil {
			t.Error(err)
			return
		}
		// A few requests after the signal show how it refuses them; then stop asking, since nothing will
		// answer (each refusal takes microseconds: the workers would only spin).
		phase(ctx, 100*time.Millisecond)
		r.gates["localapi"].pause()
		var err error
		code, err = r.daemon.proc.Wait(stopLimit)
		exited = time.Now()
		if err != nil {
			t.Error(err)
		}
		t.Logf("SIGTERM with %v sessions in flight; exit %d after %s", inFlight, code, exited.Sub(term).Round(time.Millisecond))
	})
	r.daemon.proc = nil
	if err := r.daemon.exitErr(code); err != nil {
		t.Error(err)
	}
	r.finish(finishOptions{daemonGone: true, checks: func() {
		if exited.Sub(term) > 5*time.Second {
			t.Errorf("the daemon took %s to drain requests that each take about 150 ms", exited.Sub(term))
		}
		// Requests sent well before the signal reached the daemon: they must have their real answer.
		before := r.ledger.Window(time.Time{}, term.Add(-50*time.Millisecond), "localapi")
		if before.NotOK+before.Hung != 0 {
			t.Errorf("%d of %d requests sent before SIGTERM did not get their answer", before.NotOK+before.Hung, before.Total)
		}
		after := r.ledger.Window(term, time.Time{}, "localapi")
		t.Logf("before SIGTERM: %d requests, all answered; after: %d, %d refused", before.Total, after.Total, after.NotOK)
	}})
}

// front returns the front end by name.
func (r *rig) front(name string) frontend {
	for _, f := range r.fronts {
		if f.name() == name {
			return f
		}
	}
	r.t.Fatalf("no front end %s", name)
	return nil
}

func sortDurations(d []time.Duration) { slices.Sort(d) }
