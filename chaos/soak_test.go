package chaos

// TestSoak runs the scenarios' faults in random order (each once per pass), one after another with no
// pause for recovery in between, for -chaos.duration (`go test ./chaos -run Soak -chaos.duration=30m -timeout 40m`), and ends with
// the same invariants as every scenario plus a table per fault.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"
)

var flagSeed = flag.Uint64("chaos.seed", 0, "seed of the soak's fault sequence (0: from the clock; the seed is logged)")

// Round lengths of the soak: about an eighth of the run, within these bounds.
const (
	soakRoundMin = 2 * time.Second
	soakRoundMax = 15 * time.Second
)

// soakFault injects one fault for the length of a round (ctx) and undoes it before returning.
type soakFault struct {
	name string
	run  func(ctx context.Context, r *rig) error
}

// toxicFault keeps toxics on a server's link for the round.
func toxicFault(name string, which func(*rig) *server, toxics ...Toxic) soakFault {
	return soakFault{name, func(ctx context.Context, r *rig) error {
		s := which(r)
		for _, tx := range toxics {
			if err := s.link.Add(tx); err != nil {
				return err
			}
		}
		<-ctx.Done()
		s.link.Clear()
		return nil
	}}
}

// restartFault runs a server in another mode for the round.
func restartFault(name string, mode serverMode) soakFault {
	return soakFault{name, func(ctx context.Context, r *rig) error {
		r.primary.kill()
		if err := r.primary.start(mode); err != nil {
			return err
		}
		<-ctx.Done()
		r.primary.kill()
		return r.primary.start(serverMode{})
	}}
}

// killFault SIGKILLs servers, keeps them down for down, and starts them again; the rest of the round runs
// with them up.
func killFault(name string, down time.Duration, which func(*rig) []*server) soakFault {
	return soakFault{name, func(ctx context.Context, r *rig) error {
		servers := which(r)
		for _, s := range servers {
			s.kill()
		}
		phase(ctx, down)
		for _, s := range servers {
			if err := s.start(serverMode{}); err != nil {
				return err
			}
		}
		<-ctx.Done()
		return nil
	}}
}

func primaryOf(r *rig) *server     { return r.primary }
func secondaryOf(r *rig) *server   { return r.secondary }
func bothOf(r *rig) []*server      { return []*server{r.primary, r.secondary} }
func onlyPrimary(r *rig) []*server { return []*server{r.primary} }

var soakFaults = []soakFault{
	killFault("kill primary", killDowntime, onlyPrimary),
	killFault("kill secondary", killDowntime, func(r *rig) []*server { return []*server{r.secondary} }),
	killFault("kill both", time.Second, bothOf),
	toxicFault("blackhole primary", primaryOf, Blackhole("downstream")),
	toxicFault("blackhole secondary", secondaryOf, Blackhole("downstream")),
	toxicFault("slow primary", primaryOf, Latency("downstream", 700, 50)),
	toxicFault("bandwidth 1 KB/s primary", primaryOf, Bandwidth("downstream", 1)),
	toxicFault("reset_peer primary", primaryOf, Slicer("downstream", 4, 2, 300), ResetPeer("upstream", 15)),
	toxicFault("limit_data primary", primaryOf, LimitData("downstream", 30)),
	toxicFault("slicer 1 byte primary", primaryOf, Slicer("upstream", 1, 0, 0), Slicer("downstream", 1, 0, 0)),
	toxicFault("slicer 1 byte secondary", secondaryOf, Slicer("upstream", 1, 0, 0), Slicer("downstream", 1, 0, 0)),
	restartFault("key mismatch primary", serverMode{wrongKey: true}),
	restartFault("refuse single-connect primary", serverMode{refuseSingle: true}),
	{"SIGHUP reload", func(ctx context.Context, r *rig) error {
		for i := 0; ctx.Err() == nil && i < 100; i++ {
			r.daemon.timeout = map[bool]time.Duration{true: serverTimeout, false: serverTimeout + 100*time.Millisecond}[r.daemon.timeout != serverTimeout]
			if err := r.daemon.writeConfig(true); err != nil {
				return err
			}
			if err := r.daemon.proc.Signal(syscall.SIGHUP); err != nil {
				return err
			}
			phase(ctx, time.Second)
		}
		return nil
	}},
	{"SIGTERM and restart", func(ctx context.Context, r *rig) error {
		// No new requests while no daemon answers (they would fail in microseconds and only spin; the
		// refusals are TestSIGTERMUnderLoad's business); those in flight drain.
		r.gates["localapi"].pause()
		if err := r.daemon.proc.Signal(syscall.SIGTERM); err != nil {
			return err
		}
		code, err := r.daemon.proc.Wait(stopLimit)
		r.daemon.proc = nil
		if err != nil {
			return err
		}
		if err := r.daemon.exitErr(code); err != nil {
			return err
		}
		if err := r.daemon.start(); err != nil {
			return err
		}
		r.gates["localapi"].resume()
		<-ctx.Done()
		return nil
	}},
}

// soakMargin is the time TestSoak needs beyond its load (setup, recovery, checks, teardown), plus a tenth
// of the load.
const soakMargin = 30 * time.Second

func TestSoak(t *testing.T) {
	need := *flagDuration + *flagDuration/10 + soakMargin
	if dl, ok := t.Deadline(); ok && time.Until(dl) < need {
		t.Fatalf("-chaos.duration=%s needs %s before the test timeout: run with -timeout %s", *flagDuration, need,
			(need + 5*time.Minute).Round(time.Minute))
	}
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -chaos.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	r := newRig(t, rigOptions{})
	r.allow([]string{"unreachable", "connection_lost", "timeout", "bad_secret", "shutting_down", "no_agent"})
	total := *flagDuration
	round := min(soakRoundMax, max(soakRoundMin, total/8))

	type faultStats struct {
		rounds int
		w      Window
	}
	stats := map[string]*faultStats{}
	var order []string
	r.load(total, func(ctx context.Context) {
		var deck []soakFault // every fault once per pass, in a new random order each pass
		for i := 0; ctx.Err() == nil && i < 100_000; i++ {
			if len(deck) == 0 {
				deck = append(deck, soakFaults...)
				rng.Shuffle(len(deck), func(a, b int) { deck[a], deck[b] = deck[b], deck[a] })
			}
			f := deck[0]
			deck = deck[1:]
			d := round/2 + time.Duration(rng.Int64N(int64(round/2)+1))
			rctx, cancel := context.WithTimeout(ctx, d)
			from := time.Now()
			err := f.run(rctx, r)
			cancel()
			w := r.ledger.Window(from, time.Now(), "")
			t.Logf("round %d: %s for %s: %d requests, %d not ok, p99 %s", i+1, f.name, time.Since(from).Round(100*time.Millisecond),
				w.Total, w.NotOK, Percentile(w.Latencies, 0.99))
			if err != nil {
				t.Errorf("round %d (%s): %v", i+1, f.name, err)
				return
			}
			st := stats[f.name]
			if st == nil {
				st = &faultStats{}
				stats[f.name] = st
				order = append(order, f.name)
			}
			st.rounds++
			st.w.Total += w.Total
			st.w.NotOK += w.NotOK
			st.w.Hung += w.Hung
			st.w.Latencies = append(st.w.Latencies, w.Latencies...)
		}
	})
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\trounds\trequests\tnot ok\thung\tp50\tp99\tmax")
	for _, name := range order {
		st := stats[name]
		sortDurations(st.w.Latencies)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", name, st.rounds, st.w.Total, st.w.NotOK, st.w.Hung,
			ms(Percentile(st.w.Latencies, 0.5)), ms(Percentile(st.w.Latencies, 0.99)), ms(Percentile(st.w.Latencies, 1)))
	}
	tw.Flush()
	t.Logf("per fault (requests started during its rounds):\n%s", b.String())
	r.finish(finishOptions{})
}
