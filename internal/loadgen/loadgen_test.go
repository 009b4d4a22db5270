package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	ServeChildIfAsked() // StartChild re-executes this test binary
	goleak.VerifyTestMain(m)
}

const (
	testUser     = "bench"
	testPassword = "bench-password"
	testCallers  = 8
	testCount    = 300
)

var testKey = []byte("loadgen-test-key")

func startCluster(t *testing.T) *InProcess {
	t.Helper()
	cl, err := StartInProcess(ClusterConfig{Key: testKey, User: testUser, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func target(cl Cluster, key []byte) Target {
	return Target{Servers: cl.Addrs(), Key: key, User: testUser, Password: []byte(testPassword), Timeout: 5 * time.Second}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkSane holds for every run that had no failure.
func checkSane(t *testing.T, res *Result, want int64) {
	t.Helper()
	if res.Requests != want || res.OK != want {
		t.Errorf("%s: requests %d, ok %d; want %d of each", res.Mode, res.Requests, res.OK, want)
	}
	if len(res.Errors) != 0 || res.WarmupError != "" {
		t.Errorf("%s: errors %v, warm-up %q", res.Mode, res.Errors, res.WarmupError)
	}
	l := res.Latency
	if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("%s: percentiles out of order: %+v", res.Mode, l)
	}
	if res.Seconds <= 0 || res.Throughput <= 0 || res.Throughput > float64(want)/res.Seconds*1.0001 {
		t.Errorf("%s: %d logins in %.3fs is not %.0f/s", res.Mode, want, res.Seconds, res.Throughput)
	}
	// The slowest login cannot take longer than the run.
	if l.Max > res.Seconds*1e6 {
		t.Errorf("%s: max latency %.0f µs in a run of %.3f s", res.Mode, l.Max, res.Seconds)
	}
	if res.CPUPerAuthUS <= 0 {
		t.Errorf("%s: CPU per auth %.2f µs", res.Mode, res.CPUPerAuthUS)
	}
	if int64(len(res.samples)) != res.Requests {
		t.Errorf("%s: %d samples for %d requests", res.Mode, len(res.samples), res.Requests)
	}
}

// Each mode runs a fixed count of logins against the embedded servers; the connections the servers
// counted are what each mode must open.
func TestModes(t *testing.T) {
	cl := startCluster(t)
	servers := int64(len(cl.Addrs())) // an agent connects to every server at start (a warm standby)
	for _, tc := range []struct {
		mode string
		// The connections the servers may have accepted (warm-up included).
		minAccepts, maxAccepts int64
	}{
		{ModeSingleConnect, 1, servers},
		{ModePerSession, testCount + 1, testCount + 1 + servers},
		{ModeLocalAPI, 1, servers},
		{ModeTacquito, testCallers, testCallers},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			rep, err := Bench(ctxT(t), Spec{Modes: []string{tc.mode}, Target: target(cl, testKey), Cluster: cl,
				Callers: testCallers, Count: testCount, Log: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			res := rep.Result(tc.mode)
			if res == nil {
				t.Fatalf("no result for %s", tc.mode)
			}
			checkSane(t, res, testCount)
			if n := *res.ServerAccepts; n < tc.minAccepts || n > tc.maxAccepts {
				t.Errorf("servers accepted %d connections, want %d to %d", n, tc.minAccepts, tc.maxAccepts)
			}
			if per := *res.ConnsPer1000; per != float64(*res.ServerAccepts)*1000/float64(res.Requests+1) && tc.mode != ModeTacquito {
				t.Errorf("%.2f connections per 1,000 logins from %d accepts", per, *res.ServerAccepts)
			}
			if rep.Errors() != 0 {
				t.Errorf("report counts %d errors", rep.Errors())
			}
		})
	}
}

// The fleet's ratio comes from the accepts the server counted: every agent opens one connection, the
// per-request fleet one per login.
func TestFleet(t *testing.T) {
	cl := startCluster(t)
	const agents = 10
	rep, err := Bench(ctxT(t), Spec{Modes: []string{ModeFleet}, Target: target(cl, testKey), Cluster: cl,
		Callers: 4, Agents: agents, Count: testCount, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	f, pr := rep.Result(ModeFleet), rep.Result(ModeFleetPerRequest)
	if f == nil || pr == nil || rep.Fleet == nil {
		t.Fatalf("fleet results missing: %+v", rep)
	}
	checkSane(t, f, testCount)
	checkSane(t, pr, testCount)
	if f.Callers != agents || f.Agents != agents {
		t.Errorf("fleet ran %d callers over %d agents, want %d of each", f.Callers, f.Agents, agents)
	}
	logins := int64(testCount + agents) // warm-up: one login per agent
	servers := int64(len(cl.Addrs()))   // each agent connects to every server at start
	if n := *f.ServerAccepts; n < agents || n > agents*servers {
		t.Errorf("the fleet opened %d connections, want %d to %d", n, agents, agents*servers)
	}
	if n := *pr.ServerAccepts; n < logins || n > logins+agents*servers {
		t.Errorf("the per-request fleet opened %d connections, want %d to %d", n, logins, logins+agents*servers)
	}
	want := float64(*pr.ServerAccepts) / float64(*f.ServerAccepts)
	if math.Abs(rep.Fleet.FewerX-want) > 1e-9*want || rep.Fleet.ConnsPer1000 != float64(*f.ServerAccepts)*1000/float64(logins) {
		t.Errorf("fleet summary %+v, want %.1fx fewer", rep.Fleet, want)
	}
}

// A wrong key fails every login, each counted by its class; nothing reports success.
func TestWrongKey(t *testing.T) {
	cl := startCluster(t)
	rep, err := Bench(ctxT(t), Spec{Modes: []string{ModeSingleConnect, ModeTacquito}, Target: target(cl, []byte("not-the-key")),
		Cluster: cl, Callers: 2, Count: 20, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range rep.Results {
		if res.OK != 0 || res.Throughput != 0 {
			t.Errorf("%s: %d logins passed with a wrong key", res.Mode, res.OK)
		}
		var n int64
		for _, v := range res.Errors {
			n += v
		}
		if n != res.Requests || n == 0 {
			t.Errorf("%s: %d errors for %d requests: %v", res.Mode, n, res.Requests, res.Errors)
		}
	}
	// The warm-up login meets the wrong key first; the agent then holds both servers dead (unreachable).
	if sc := rep.Result(ModeSingleConnect); !strings.Contains(sc.WarmupError, "bad shared secret") {
		t.Errorf("agent warm-up error %q, want a bad shared secret", sc.WarmupError)
	}
	if got := rep.Result(ModeTacquito).Errors; got[KindDecode] == 0 {
		t.Errorf("tacquito errors %v, want %s", got, KindDecode)
	}
	if rep.Errors() == 0 {
		t.Error("the report counts no error")
	}
}

// The report survives a JSON round trip, and the plot is a PNG.
func TestJSONAndPlot(t *testing.T) {
	cl := startCluster(t)
	rep, err := Bench(ctxT(t), Spec{Modes: []string{ModeSingleConnect, ModePerSession, ModeTacquito}, Target: target(cl, testKey),
		Cluster: cl, Callers: 4, Count: 100, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Results) != 3 || back.Results[0].Requests != 100 || back.Results[0].Latency.P99 != rep.Results[0].Latency.P99 {
		t.Errorf("JSON round trip lost results: %s", b)
	}
	if back.SingleVsPerSession <= 0 || back.Results[2].ThroughputVsTacquito != 1 || back.Results[0].CPUVsTacquito <= 0 {
		t.Errorf("ratios missing: %+v", back)
	}
	var buf bytes.Buffer
	if err := WritePNG(&buf, rep); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("the plot is not a PNG: %v", err)
	}
	if r := img.Bounds(); r.Dx() < 500 || r.Dy() < 3*200 {
		t.Errorf("plot of %v for 3 modes", r)
	}
	var text bytes.Buffer
	if err := WriteText(&text, rep); err != nil || !bytes.Contains(text.Bytes(), []byte("single-connect / per-session")) {
		t.Errorf("text report: %v\n%s", err, text.String())
	}
}

// The servers in a child process: accepts are counted there, a kill refuses connects, a restart takes
// the same address again, and a run that kills the first server fails over without a failed login.
func TestChildClusterFailover(t *testing.T) {
	cl, err := StartChild(ClusterConfig{Key: testKey, User: testUser, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cl.Close(); err != nil {
			t.Errorf("child exit: %v", err)
		}
	}()
	if n, err := cl.Accepts(); err != nil || n != 0 {
		t.Fatalf("accepts at start: %d, %v", n, err)
	}
	if err := cl.Kill(0); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", cl.Addrs()[0], time.Second); err == nil {
		c.Close()
		t.Fatal("a killed server accepted a connection")
	}
	if err := cl.Restart(0); err != nil {
		t.Fatal(err)
	}
	const kill = 200 * time.Millisecond
	rep, err := Bench(ctxT(t), Spec{Modes: []string{ModeSingleConnect}, Target: target(cl, testKey), Cluster: cl,
		Callers: 4, Duration: 1500 * time.Millisecond, KillAt: kill, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Results[0]
	if len(res.Events) != 1 || res.Events[0].Err != "" || res.Events[0].At < kill {
		t.Fatalf("events %+v, want one kill after %s", res.Events, kill)
	}
	if len(res.Errors) != 0 || res.OK == 0 {
		t.Errorf("failover lost logins: %d ok, errors %v", res.OK, res.Errors)
	}
	after := 0
	for _, s := range res.samples {
		if s.kind == 0 && s.at > res.Events[0].At {
			after++
		}
	}
	if after == 0 {
		t.Error("no login started after the kill passed")
	}
	// Restarted after the mode: the first server takes connections again.
	c, err := net.DialTimeout("tcp", cl.Addrs()[0], 5*time.Second)
	if err != nil {
		t.Fatalf("the killed server was not restarted: %v", err)
	}
	c.Close()
	if n, err := cl.Accepts(); err != nil || n < 2 {
		t.Errorf("accepts %d, %v: want the runs' connections counted", n, err)
	}
}

func TestParseModes(t *testing.T) {
	if m, err := ParseModes("all"); err != nil || len(m) != 5 || m[4] != ModeFleet {
		t.Errorf("all = %v, %v", m, err)
	}
	if _, err := ParseModes("single-connect,bogus"); err == nil {
		t.Error("an unknown mode was accepted")
	}
	if m, _ := ParseModes(""); len(m) != len(DefaultModes) {
		t.Errorf("default = %v", m)
	}
}

func TestPercentiles(t *testing.T) {
	var lats []time.Duration
	for i := 100; i >= 1; i-- {
		lats = append(lats, time.Duration(i)*time.Microsecond)
	}
	p := percentiles(lats)
	if p.P50 != 50 || p.P90 != 90 || p.P99 != 99 || p.Max != 100 {
		t.Errorf("percentiles of 1..100 µs = %+v", p)
	}
	if (percentiles(nil) != Percentiles{}) {
		t.Error("percentiles of nothing are not zero")
	}
}

// --socket: the local API of a daemon that is already running (here one started by the in-process client).
func TestSocketClient(t *testing.T) {
	cl := startCluster(t)
	tg := target(cl, testKey)
	c, err := NewLocalAPIClient(tg, 2, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sock := filepath.Join(c.(*localAPIClient).dir, "tacagent.sock")
	rep, err := Bench(ctxT(t), Spec{Modes: []string{ModeLocalAPI}, SocketTarget: tg, Socket: sock, Callers: 2, Count: 50, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	checkSane(t, rep.Results[0], 50)

	tg.Password = []byte("not-the-password")
	rep, err = Bench(ctxT(t), Spec{Modes: []string{ModeLocalAPI}, SocketTarget: tg, Socket: sock, Callers: 1, Count: 3, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[0]; r.OK != 0 || r.Errors["authentication_failed"] == 0 {
		t.Errorf("wrong password through the local API: %d ok, errors %v", r.OK, r.Errors)
	}
}

func TestParseStatCPU(t *testing.T) {
	line := []byte("4242 (tac agent) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 123 456 789\n")
	if s, err := parseStatCPU(line); err != nil || s != 3.25 {
		t.Errorf("parseStatCPU = %v, %v; want 3.25 s", s, err)
	}
	for _, bad := range []string{"", "4242 tacagent S 1", "1 (x) S 1 2 3", "1 (x) S 1 2 3 4 5 6 7 8 9 10 -1 5"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q) accepted", bad)
		}
	}
	if s, err := processCPU(os.Getpid()); err != nil || s < 0 {
		t.Errorf("processCPU(self) = %v, %v", s, err)
	}
}

// A run stopped early (Ctrl-C) still reports what it measured, and later modes do not run.
func TestStoppedEarly(t *testing.T) {
	cl := startCluster(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	var progress *atomic.Int64
	started := make(chan struct{})
	go func() { // cancels once logins are under way
		<-started
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for progress.Load() < 50 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
		cancel()
	}()
	rep, err := Bench(ctx, Spec{Modes: []string{ModeSingleConnect, ModeTacquito}, Target: target(cl, testKey), Cluster: cl,
		Callers: 4, Duration: time.Minute, Log: zerolog.Nop(),
		OnMode: func(_ string, p *atomic.Int64) func() {
			if progress == nil {
				progress = p
				close(started)
			}
			return func() {}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if len(rep.Results) != 1 || rep.Results[0].OK < 50 || rep.LoadAvgEnd == [3]float64{} && rep.LoadAvgStart != [3]float64{} {
		t.Errorf("report of a stopped run: %+v", rep)
	}
}
