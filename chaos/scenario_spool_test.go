package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tacagent/tacagent/localapi"
)

// The accounting spool scenario (issue 15).
const (
	spoolRecords      = 10_000                 // records the daemon must acknowledge while every server is down
	spoolCallers      = 256                    // callers sending them at once (a commit's fsync serves them all)
	spoolRetryInitial = 50 * time.Millisecond  // the daemon's spool retries (outage probe) from here ...
	spoolRetryMax     = 400 * time.Millisecond // ... to here, so the servers' return is noticed quickly
	spoolBudget       = 25 * time.Second       // the scenario's time goal
	spoolDeliverLimit = 90 * time.Second       // generous bound of the final delivery on a loaded machine
)

// TestSpoolOutageAndAgentKills: with every server down, the daemon (the real binary, under -race)
// acknowledges 10,000 accounting records, each committed to its spool; it is SIGKILLed once while callers
// are still sending, and once more while it replays the records to the servers that came back. Every
// acknowledged record must reach a server (0 lost); duplicates (at least once) are counted and reported.
func TestSpoolOutageAndAgentKills(t *testing.T) {
	began := time.Now()
	dir, err := os.MkdirTemp("", "chaos-spool-")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, name: t.Name(), dir: dir, opts: rigOptions{direct: true}, ledger: NewLedger(),
		names: map[string]string{}, allowed: map[Key]bool{}}
	r.primary = &server{t: t, name: "primary", kind: kindTestServer, dir: dir}
	r.secondary = &server{t: t, name: "secondary", kind: kindTacquito, dir: dir}
	servers := []*server{r.primary, r.secondary}
	d := &daemonProc{r: r, dir: dir, cfgPath: filepath.Join(dir, "tacagent.yaml"), socket: filepath.Join(dir, "tacagent.sock"),
		logPath: filepath.Join(dir, "tacagent.log"), timeout: serverTimeout, spool: filepath.Join(dir, "spool", "spool.db")}
	t.Cleanup(func() {
		if d.proc != nil {
			d.proc.Kill()
		}
		for _, s := range servers {
			s.kill()
		}
		if t.Failed() || *flagKeep {
			t.Logf("scenario directory kept: %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	})
	// Each server starts once, so that its address is fixed, and is killed: every server is down.
	for _, s := range servers {
		if err := s.writeFiles(); err != nil {
			t.Fatal(err)
		}
		if err := s.start(serverMode{}); err != nil {
			t.Fatal(err)
		}
		s.kill()
	}
	if d.metrics, err = pickAddr(); err != nil {
		t.Fatal(err)
	}
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	c := localapi.NewClient(d.socket)
	defer c.Close()

	// Phase 1: the callers send until 10,000 records are acknowledged (spooled). A call that gets no
	// acknowledgement (the daemon is being killed) is sent again with the same task_id until it does.
	var (
		mu       sync.Mutex
		accepted = map[string]bool{}
		calls    atomic.Int64
		unacked  atomic.Int64
		nextID   atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted)
	}
	for range spoolCallers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id := fmt.Sprintf("spool-%d", nextID.Add(1))
				for {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), reqDeadline)
					res, err := c.Account(ctx, localapi.AcctRequest{Flags: localapi.FlagStart, User: user, TaskID: id,
						AV: []string{"service=shell", "cmd=show version"}})
					cancel()
					calls.Add(1)
					if err == nil || (res != nil && res.Spooled) {
						mu.Lock()
						accepted[id] = true
						n := len(accepted)
						mu.Unlock()
						if n >= spoolRecords {
							return
						}
						break
					}
					unacked.Add(1)
					time.Sleep(5 * time.Millisecond) // the daemon is restarting: its socket comes back soon
				}
			}
		}()
	}
	callersDone := make(chan struct{})
	go func() { wg.Wait(); close(callersDone) }()
	defer func() {
		select {
		case <-callersDone:
		default:
			close(stop)
			<-callersDone
		}
	}()

	// Kill 1: half-way through, while the callers keep sending.
	if err := poll(spoolDeliverLimit, func() (bool, string) {
		return count() >= spoolRecords/2, fmt.Sprintf("%d records acknowledged", count())
	}); err != nil {
		t.Fatal(err)
	}
	d.proc.Kill()
	d.proc = nil
	killedAt := count()
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-callersDone:
	case <-time.After(spoolDeliverLimit):
		t.Fatalf("the callers were still sending after %s: %d records acknowledged", spoolDeliverLimit, count())
	}
	mu.Lock()
	ids := make([]string, 0, len(accepted))
	for id := range accepted {
		ids = append(ids, id)
	}
	mu.Unlock()
	acceptedIn := time.Since(began)
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.SpoolDepth < len(ids) || st.SpoolOldest.IsZero() || !st.SpoolOutage {
		t.Errorf("status after the outage: depth %d (want >= %d), oldest %v, outage %v", st.SpoolDepth, len(ids), st.SpoolOldest, st.SpoolOutage)
	}
	for _, s := range servers {
		if recs := completeRecords(t, s); len(recs) != 0 {
			t.Fatalf("%s has %d records while it was down", s.name, len(recs))
		}
	}

	// The servers come back; kill 2 while the spool replays.
	for _, s := range servers {
		if err := s.start(serverMode{}); err != nil {
			t.Fatal(err)
		}
	}
	delivered := func() (seen map[string]int, copies int) {
		seen = map[string]int{}
		for _, s := range servers {
			for _, id := range completeRecords(t, s) {
				seen[id]++
				copies++
			}
		}
		return seen, copies
	}
	if err := poll(spoolDeliverLimit, func() (bool, string) {
		seen, _ := delivered()
		return len(seen) >= len(ids)/4, fmt.Sprintf("%d of %d records delivered", len(seen), len(ids))
	}); err != nil {
		t.Fatal(err)
	}
	d.proc.Kill()
	d.proc = nil
	seenAtKill, _ := delivered()
	if err := d.start(); err != nil {
		t.Fatal(err)
	}

	// Every acknowledged record reaches a server.
	var lost []string
	if err := poll(spoolDeliverLimit, func() (bool, string) {
		seen, _ := delivered()
		lost = lost[:0]
		for _, id := range ids {
			if seen[id] == 0 {
				lost = append(lost, id)
			}
		}
		return len(lost) == 0, fmt.Sprintf("%d acknowledged records not delivered yet", len(lost))
	}); err != nil {
		t.Errorf("%v (first: %v)", err, first(lost, 5))
	}
	if err := poll(waitLimit, func() (bool, string) {
		st, err := c.Status(context.Background())
		if err != nil {
			return false, err.Error()
		}
		return st.SpoolDepth == 0 && !st.SpoolOutage, fmt.Sprintf("spool depth %d", st.SpoolDepth)
	}); err != nil {
		t.Error(err)
	}
	seen, copies := delivered()
	dups := copies - len(seen)
	samples, err := d.scrape()
	if err != nil {
		t.Fatal(err)
	}
	possible := samples.Sum("tacagent_spool_duplicates_total", nil)
	if n := samples.Sum("tacagent_spool_dead_letters_total", nil); n != 0 {
		t.Errorf("%v dead letters", n)
	}
	if n := samples.Sum("tacagent_spool_dropped_total", nil); n != 0 {
		t.Errorf("%v records dropped", n)
	}
	total := time.Since(began)
	t.Logf("%d records acknowledged in %s with every server down (%d calls, %d unacknowledged during the restart; kill 1 at %d); "+
		"kill 2 after %d delivered; all delivered after %s: 0 lost, %d duplicates (%d distinct records on the servers, %d copies; "+
		"the last daemon counted %v possible duplicates: records it found marked sent)",
		len(ids), acceptedIn.Round(time.Millisecond), calls.Load(), unacked.Load(), killedAt, len(seenAtKill), total.Round(time.Millisecond),
		dups, len(seen), copies, possible)
	if total > spoolBudget {
		t.Logf("the scenario took %s, over its %s goal (a loaded machine?)", total.Round(time.Millisecond), spoolBudget)
	}
	addSummary(Summary{Name: t.Name(), Duration: total, Sessions: int(calls.Load()), Kills: 2,
		Outcomes: map[string]int{ClassOK: len(ids), "unacknowledged": int(unacked.Load())}, Lost: len(lost), Duplicates: dups})

	if err := d.stop(); err != nil {
		t.Error(err)
	}
	for _, s := range servers {
		if err := s.stop(); err != nil {
			t.Error(err)
		}
	}
}

// completeRecords is server.records for a log the server is still writing: a last line without its
// newline is not read yet.
func completeRecords(t *testing.T, s *server) []string {
	t.Helper()
	raw, err := os.ReadFile(s.acctLog)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	raw = raw[:bytes.LastIndexByte(raw, '\n')+1]
	var ids []string
	for line := range bytes.Lines(raw) {
		var rec struct {
			TaskID string `json:"task_id"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("%s: %v: %q", s.acctLog, err, line)
		}
		ids = append(ids, rec.TaskID)
	}
	return ids
}
