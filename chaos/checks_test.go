package chaos

// The invariants, checked after every scenario by finish.

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"
)

// opRecovery is the PAP login finish uses to probe that the agents recovered; while they recover it may
// fail with any class, so it is kept apart from the scenario's own ops.
const opRecovery = "recovery"

// goroutineSlack is how far above its warm baseline a goroutine count may settle: a connection or two
// more, an HTTP keep-alive.
const goroutineSlack = 12

// finishOptions adjust finish for scenarios that end the daemon themselves.
type finishOptions struct {
	daemonGone bool // the daemon was stopped by the scenario (SIGTERM): no metrics, no goroutine check
	// checks are the scenario's own invariants, run after the common ones and before the teardown.
	checks func()
}

// finish ends a scenario: it clears the faults, waits until every front end answers again, runs a clean
// phase in which nothing may fail, and then checks every invariant and records the summary row.
func (r *rig) finish(o finishOptions) {
	t := r.t
	t.Helper()
	for _, s := range []*server{r.primary, r.secondary} {
		if s.link != nil {
			s.link.Clear()
		}
		if up, mode := s.running(); !up || mode != (serverMode{}) {
			s.kill()
			if err := s.start(serverMode{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Recovery: every front end logs in again, within the dead time and backoff plus slack.
	for _, f := range r.fronts {
		if o.daemonGone && f.name() == "localapi" {
			continue
		}
		if err := poll(waitLimit, func() (bool, string) {
			op := r.do(f, opRecovery)
			return op.Class == ClassOK, op.Class + " " + op.Err
		}); err != nil {
			t.Fatalf("%s did not recover: %v", f.name(), err)
		}
	}
	fronts := r.fronts
	if o.daemonGone {
		r.fronts = r.fronts[:len(r.fronts)-1] // the local API front end is last
	}
	before := r.ledger.Counts()
	r.load(cleanPhase, nil)
	r.fronts = fronts
	for k, n := range r.ledger.Counts().Sub(before) {
		if k.Class != ClassOK {
			t.Errorf("after recovery, with no fault left, %d× %s %s ended %s; samples: %v", n, k.Frontend, k.Kind, k.Class,
				r.ledger.Samples()[k.Class])
		}
	}

	// Every session ended within its deadline; none got a contradicting answer; no outcome outside what the
	// scenario allows.
	for _, op := range r.ledger.Hung() {
		t.Errorf("HUNG: %s %s started %s never returned (deadline %s + %s grace)", op.Frontend, op.Kind,
			op.Start.Format(time.TimeOnly+".000"), reqDeadline, hungGrace)
	}
	for _, op := range r.ledger.Wrong() {
		t.Errorf("WRONG ANSWER: %s %s from %s: %s", op.Frontend, op.Kind, op.Server, op.Err)
	}
	counts := r.ledger.Counts()
	for k, n := range counts {
		if k.Class == ClassOK || k.Class == ClassHung || k.Class == ClassWrong || k.Kind == opRecovery || r.isAllowed(k) {
			continue
		}
		t.Errorf("unexpected outcome: %d× %s %s ended %s; samples: %v", n, k.Frontend, k.Kind, k.Class, r.ledger.Samples()[k.Class])
	}

	// The metrics agree with what the callers saw.
	if r.agent != nil {
		r.checkMetrics("goapi", func() (Samples, error) { return GatherSamples(r.agentReg) }, nil)
		r.checkAgentGoroutines()
	}
	if !o.daemonGone {
		r.checkMetrics("localapi", r.daemon.scrape, r.daemon.since)
		r.checkDaemonGoroutines()
	}

	// Every acknowledged accounting record is in a server's log.
	acct := r.reconcile()

	kills := 0
	for _, s := range []*server{r.primary, r.secondary} {
		_, k := s.counts()
		kills += k
	}
	sum := r.ledger.Summarize(r.name, r.loadDur, kills, acct)
	addSummary(sum)
	var b bytes.Buffer
	_ = WriteTable(&b, []Summary{sum})
	t.Logf("\n%s", b.String())
	for _, f := range []string{"goapi", "localapi"} {
		t.Logf("%s: %s", f, FormatOutcomes(counts.Classes(Key{Frontend: f})))
	}
	t.Logf("accounting: sent %d, acknowledged %d, failed %d, hung %d, lost %d, duplicates %d (%d repeats, %d of failed), unknown %d",
		acct.Sent, acct.Acked, acct.Failed, acct.Hung, len(acct.Lost), acct.Duplicates, acct.DupRepeats, acct.DupFailed, acct.Unknown)

	// Every killed server was started again.
	for _, s := range []*server{r.primary, r.secondary} {
		if starts, kills := s.counts(); starts != kills+1 {
			t.Errorf("%s: %d starts for %d kills, want one start more than kills", s.name, starts, kills)
		}
	}
	if o.checks != nil {
		o.checks()
	}
	r.teardown() // the daemon exits 0 without a race report; the agent drains; goroutines back to baseline
}

// reconcile reads both servers' accounting logs and checks that nothing acknowledged is missing.
func (r *rig) reconcile() AcctReport {
	t := r.t
	t.Helper()
	sinks := map[string][]string{}
	for _, s := range []*server{r.primary, r.secondary} {
		ids, err := s.records()
		if err != nil {
			t.Fatalf("reading %s's accounting log: %v", s.name, err)
		}
		sinks[s.name] = ids
	}
	acct := r.ledger.Reconcile(sinks)
	if len(acct.Lost) > 0 {
		t.Errorf("LOST: %d accounting records acknowledged to their caller are in no server's log: %v", len(acct.Lost), first(acct.Lost, 10))
	}
	if len(acct.Misrouted) > 0 {
		t.Errorf("%d accounting records acknowledged as taken by one server are only in another's log: %v",
			len(acct.Misrouted), first(acct.Misrouted, 10))
	}
	if acct.Sent == 0 {
		t.Errorf("no accounting record was sent: the driver did not run")
	}
	return acct
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// checkMetrics compares one agent's metrics with the ledger's view of its front end, counting the ops
// since a snapshot (the daemon's metrics start again when it restarts).
func (r *rig) checkMetrics(front string, scrape func() (Samples, error), since Counts) {
	t := r.t
	t.Helper()
	var s Samples
	// Quiesce: the last sessions report their end to their connection just after their callers returned.
	err := poll(waitLimit, func() (bool, string) {
		var err error
		if s, err = scrape(); err != nil {
			return false, err.Error()
		}
		var diffs []string
		for _, k := range []string{"authen", "author", "acct"} {
			st := s.Sum("tacagent_sessions_started_total", map[string]string{"kind": k})
			fi := s.Sum("tacagent_sessions_finished_total", map[string]string{"kind": k})
			if st != fi {
				diffs = append(diffs, fmt.Sprintf("%s started %v finished %v", k, st, fi))
			}
		}
		if v := s.Sum("tacagent_sessions_in_flight", nil); v != 0 {
			diffs = append(diffs, fmt.Sprintf("in flight %v", v))
		}
		if v := s.Sum("tacagent_sessions_queued", nil); v != 0 {
			diffs = append(diffs, fmt.Sprintf("queued %v", v))
		}
		return len(diffs) == 0, strings.Join(diffs, ", ")
	})
	if err != nil {
		t.Errorf("%s metrics never settled: %v", front, err)
	}

	c := r.ledger.Counts().Sub(since)
	n := func(kind, class string) float64 {
		return float64(c.Total(Key{Frontend: front, Kind: kind, Class: class}))
	}
	finished := func(kind, outcome string) float64 {
		return s.Sum("tacagent_sessions_finished_total", map[string]string{"kind": kind, "outcome": outcome})
	}
	// Each answer a caller saw came from exactly one session (retries run more sessions, which end with
	// errors): successes and server denials match one to one.
	// A local API caller that cancels is seen by the daemon only when its connection closes, so a session
	// already on the wire then still ends with the server's answer, which nobody reads (TestCallersGiveUp):
	// through the local API, each given-up request may add one such answer. The Go API agent aborts the
	// session of a caller that gave up, so there the counts stay exact.
	gaveUp := func(kinds ...string) float64 {
		if front != "localapi" {
			return 0
		}
		g := 0.0
		for _, k := range kinds {
			g += n(k, ClassGaveUp)
		}
		return g
	}
	logins := []string{opPAP, opPAPBad, opASCII}
	authors := []string{opAuthor, opAuthorDeny}
	for _, m := range []struct {
		what   string
		metric float64
		seen   float64
		unread float64 // answers to given-up callers that may have been counted
	}{
		{"authentication successes", finished("authen", "ok"), n(opPAP, ClassOK) + n(opASCII, ClassOK) + n(opRecovery, ClassOK) + n(opPAPBad, ClassWrong), gaveUp(logins...)},
		{"authentication FAILs", finished("authen", "authentication_failed"), n(opPAPBad, ClassOK) + n(opPAP, ClassWrong) + n(opASCII, ClassWrong) + n(opRecovery, ClassWrong), gaveUp(logins...)},
		{"authorization permits", finished("author", "ok"), n(opAuthor, ClassOK) + n(opAuthorDeny, ClassWrong), gaveUp(authors...)},
		{"authorization denials", finished("author", "denied"), n(opAuthorDeny, ClassOK) + n(opAuthor, ClassWrong), gaveUp(authors...)},
		{"accounting acknowledgements", finished("acct", "ok"), n(opAcct, ClassOK), gaveUp(opAcct)},
	} {
		if m.metric < m.seen || m.metric > m.seen+m.unread {
			t.Errorf("%s: metrics count %v %s, the callers saw %v (and %v gave up)", front, m.metric, m.what, m.seen, m.unread)
		}
	}
	// ConnectionLost: every broadcast ended a session with connection_lost, and every connection_lost a
	// caller saw was such a session.
	lostSessions := s.Sum("tacagent_sessions_finished_total", map[string]string{"outcome": "connection_lost"})
	broadcasts := s.Sum("tacagent_connection_lost_broadcasts_total", nil)
	seen := float64(c.Total(Key{Frontend: front, Class: "connection_lost"}))
	if broadcasts > lostSessions || seen > lostSessions {
		t.Errorf("%s: %v ConnectionLost broadcasts and %v connection_lost answers seen, but only %v sessions ended connection_lost",
			front, broadcasts, seen, lostSessions)
	}
	if v := s.Sum("tacagent_actor_panics_total", nil); v != 0 {
		t.Errorf("%s: %v actor panics", front, v)
	}
	if front == "localapi" {
		// Every request the local API served is counted under its endpoint.
		for ep, kinds := range map[string][]string{"authenticate": {opPAP, opPAPBad, opASCII, opRecovery},
			"authorize": {opAuthor, opAuthorDeny}, "account": {opAcct}} {
			want := 0.0
			for _, k := range kinds {
				// Requests that found no daemon never reached one.
				want += float64(c.Total(Key{Frontend: front, Kind: k}) - c.Total(Key{Frontend: front, Kind: k, Class: "no_agent"}))
			}
			// A caller that gave up may have left before its request was read and counted.
			if got, g := s.Sum("tacagent_api_requests_total", map[string]string{"endpoint": ep}), gaveUp(kinds...); got > want || got < want-g {
				t.Errorf("localapi: tacagent_api_requests_total{endpoint=%q} = %v, the callers made %v (%v of them gave up)", ep, got, want, g)
			}
		}
	}
	t.Logf("%s metrics: sessions finished %s; ConnectionLost broadcasts %v; failovers %v; restarts %v; opens %v",
		front, outcomesOf(s), broadcasts, s.Sum("tacagent_failovers_total", nil),
		s.Sum("tacagent_connection_restarts_total", nil), s.Sum("tacagent_connection_opens_total", nil))
}

// outcomesOf formats the sessions finished by outcome.
func outcomesOf(s Samples) string {
	m := map[string]int{}
	for _, x := range s {
		if x.Name == "tacagent_sessions_finished_total" {
			m[x.Labels["outcome"]] += int(x.Value)
		}
	}
	return FormatOutcomes(m)
}

// checkDaemonGoroutines waits until the daemon's goroutines are back near their warm baseline.
func (r *rig) checkDaemonGoroutines() {
	r.t.Helper()
	var last float64
	if err := poll(waitLimit, func() (bool, string) {
		s, err := r.daemon.scrape()
		if err != nil {
			return false, err.Error()
		}
		last = s.Sum("go_goroutines", nil)
		// An authentication whose prompt went out just as its caller went away waits for an answer until
		// it expires (api.conversation_timeout; the daemon cannot tell a prompt delivered from one in a
		// dead caller's socket buffer). Each holds 2 goroutines while it waits, and status counts it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := r.client.Status(ctx)
		cancel()
		if err != nil {
			return false, "status: " + err.Error()
		}
		convs := st.Conversations
		return last <= r.daemon.baseline+goroutineSlack+2*float64(convs), fmt.Sprintf("%v goroutines, baseline %v, %d conversations waiting",
			last, r.daemon.baseline, convs)
	}); err != nil {
		// Leave the evidence: SIGQUIT makes the Go runtime write every goroutine's stack to the daemon's
		// stderr (its log) as it exits. The scenario has failed already; what follows may fail too.
		if qerr := r.daemon.proc.Signal(syscall.SIGQUIT); qerr == nil {
			r.t.Errorf("daemon goroutines not back to baseline: %v; goroutine dump (SIGQUIT) in %s", err, r.daemon.logPath)
		} else {
			r.t.Errorf("daemon goroutines not back to baseline: %v", err)
		}
	}
}

// checkAgentGoroutines waits until this process's goroutines, Toxiproxy's aside, are back near the count
// after warm-up (the Go API agent's connections, the actor system).
func (r *rig) checkAgentGoroutines() {
	r.t.Helper()
	if err := poll(waitLimit, func() (bool, string) {
		n, top := ownGoroutines()
		return n <= r.goroutines+goroutineSlack, fmt.Sprintf("%d goroutines, baseline %d; most common: %s", n, r.goroutines, top)
	}); err != nil {
		r.t.Errorf("Go API goroutines not back to baseline: %v", err)
	}
}

// ownGoroutines counts this process's goroutines outside Toxiproxy, and names the most common top frames.
func ownGoroutines() (int, string) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	tops := map[string]int{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/Shopify/toxiproxy") {
			continue
		}
		count++
		lines := strings.Split(g, "\n")
		if len(lines) > 1 {
			tops[strings.TrimSpace(lines[1])]++
		}
	}
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range tops {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	var parts []string
	for _, x := range all[:min(3, len(all))] {
		parts = append(parts, fmt.Sprintf("%d× %s", x.v, x.k))
	}
	return count, strings.Join(parts, "; ")
}
