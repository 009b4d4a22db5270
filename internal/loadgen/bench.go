package loadgen

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Mode names.
const (
	// ModeSingleConnect: the Go API (agent.New), every session multiplexed on one single-connect connection.
	ModeSingleConnect = "single-connect"
	// ModePerSession: the Go API with single-connect off: one connection per session (the pam_tacplus way).
	ModePerSession = "per-session"
	// ModeLocalAPI: the daemon's local API (HTTP on a unix socket), one request per login.
	ModeLocalAPI = "local-api"
	// ModeTacquito: tacquito's client library, one synchronous connection per caller (the baseline).
	ModeTacquito = "tacquito"
	// ModeFleet: Agents agents with their own connections against one server, then the same agents with
	// one connection per request (ModeFleetPerRequest), to compare the connections the server accepted.
	ModeFleet           = "fleet"
	ModeFleetPerRequest = "fleet-per-request"
)

// DefaultModes run when none are named; "all" adds the fleet.
var DefaultModes = []string{ModeSingleConnect, ModePerSession, ModeLocalAPI, ModeTacquito}

// DefaultAgents is the fleet's size.
const DefaultAgents = 50

// ParseModes turns "single-connect,tacquito" (or "all") into mode names, in the order given.
func ParseModes(s string) ([]string, error) {
	if s == "" {
		return slices.Clone(DefaultModes), nil
	}
	var out []string
	for _, m := range strings.Split(s, ",") {
		m = strings.TrimSpace(m)
		switch m {
		case "all":
			out = append(out, DefaultModes...)
			out = append(out, ModeFleet)
		case ModeSingleConnect, ModePerSession, ModeLocalAPI, ModeTacquito, ModeFleet:
			out = append(out, m)
		default:
			return nil, fmt.Errorf("unknown mode %q (want %s, %s, %s, %s, %s or all)", m,
				ModeSingleConnect, ModePerSession, ModeLocalAPI, ModeTacquito, ModeFleet)
		}
	}
	return slices.Compact(out), nil
}

// Spec is one bench run: every mode against the same servers, one after the other.
type Spec struct {
	Modes  []string
	Target Target
	// Cluster holds the embedded servers (Target.Servers are its addresses); nil when Target.Servers are
	// real servers, which cannot be killed and whose accepts are not counted.
	Cluster Cluster
	// Socket is a running daemon's local API for ModeLocalAPI, logged in to as SocketTarget's user (its
	// servers are the daemon's); "" starts a daemon in this process, against Target.
	Socket       string
	SocketTarget Target
	DaemonUIDs   []uint32
	Callers      int
	Agents       int // fleet size; default DefaultAgents
	Duration     time.Duration
	Count        int64
	// KillAt > 0 kills the Cluster's first server at this offset of every mode (to show failover); it is
	// restarted before the next mode.
	KillAt time.Duration
	// Log is the logger of the agents and of the daemon started in this process.
	Log zerolog.Logger
	// OnMode, when set, is called as each mode starts; the function it returns as it ends.
	OnMode func(mode string, progress *atomic.Int64) (end func())
}

// Report is a whole run.
type Report struct {
	Started      time.Time  `json:"started"`
	CPUs         int        `json:"cpus"`
	GOMAXPROCS   int        `json:"gomaxprocs"`
	LoadAvgStart [3]float64 `json:"loadavg_start"`
	LoadAvgEnd   [3]float64 `json:"loadavg_end"`
	Servers      []string   `json:"servers"`
	ServersRun   string     `json:"servers_run"`
	Callers      int        `json:"callers"`
	DurationS    float64    `json:"duration_s,omitempty"`
	Count        int64      `json:"count,omitempty"`
	KillAtS      float64    `json:"kill_server_at_s,omitempty"`
	Results      []*Result  `json:"results"`
	// SingleVsPerSession is single-connect's throughput over per-session's.
	SingleVsPerSession float64       `json:"single_connect_vs_per_session,omitempty"`
	Fleet              *FleetSummary `json:"fleet,omitempty"`
	Build              string        `json:"build,omitempty"`
}

// FleetSummary compares the connections a server accepted from a fleet of agents with those it accepted
// from the same fleet opening one connection per request.
type FleetSummary struct {
	Agents                 int     `json:"agents"`
	ConnsPer1000           float64 `json:"conns_per_1000_logins"`
	PerRequestConnsPer1000 float64 `json:"per_request_conns_per_1000_logins"`
	// FewerX is how many times fewer connections the fleet needed (0 when it needed none).
	FewerX float64 `json:"fewer_connections_x"`
}

// Errors sums the errors of every result.
func (r *Report) Errors() int64 {
	var n int64
	for _, res := range r.Results {
		for _, v := range res.Errors {
			n += v
		}
	}
	return n
}

// Result returns the result of mode, nil when it did not run.
func (r *Report) Result(mode string) *Result {
	for _, res := range r.Results {
		if res.Mode == mode {
			return res
		}
	}
	return nil
}

// Bench runs every mode of spec in order.
func Bench(ctx context.Context, spec Spec) (*Report, error) {
	if spec.Callers <= 0 {
		spec.Callers = 1
	}
	if spec.Agents <= 0 {
		spec.Agents = DefaultAgents
	}
	if spec.Count <= 0 && spec.Duration <= 0 {
		return nil, errors.New("give a duration or a count")
	}
	if spec.KillAt > 0 && spec.Cluster == nil {
		return nil, errors.New("only the embedded servers can be killed")
	}
	rep := &Report{Started: time.Now().UTC(), CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		LoadAvgStart: LoadAvg(), Servers: spec.Target.Servers, Callers: spec.Callers, KillAtS: spec.KillAt.Seconds()}
	if spec.Count > 0 {
		rep.Count = spec.Count
	} else {
		rep.DurationS = spec.Duration.Seconds()
	}
	defer func() { // also when the run stops early: what was measured is reported
		rep.LoadAvgEnd = LoadAvg()
		rep.ratios()
	}()
	rep.ServersRun = "external"
	if spec.Cluster != nil {
		rep.ServersRun = "embedded tacplustest, " + spec.Cluster.Where()
	}
	for _, m := range spec.Modes {
		runs := []string{m}
		if m == ModeFleet {
			runs = []string{ModeFleet, ModeFleetPerRequest}
		}
		for _, mode := range runs {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			res, err := runMode(ctx, spec, mode)
			if res != nil {
				rep.Results = append(rep.Results, res)
			}
			if err != nil {
				return rep, fmt.Errorf("%s: %w", mode, err)
			}
		}
	}
	return rep, nil
}

// ratios fills the comparisons between results of the same report.
func (r *Report) ratios() {
	if tq := r.Result(ModeTacquito); tq != nil && tq.Throughput > 0 {
		for _, res := range r.Results {
			res.ThroughputVsTacquito = res.Throughput / tq.Throughput
			if tq.CPUPerAuthUS > 0 {
				res.CPUVsTacquito = res.CPUPerAuthUS / tq.CPUPerAuthUS
			}
		}
	}
	if sc, ps := r.Result(ModeSingleConnect), r.Result(ModePerSession); sc != nil && ps != nil && ps.Throughput > 0 {
		r.SingleVsPerSession = sc.Throughput / ps.Throughput
	}
	f, pr := r.Result(ModeFleet), r.Result(ModeFleetPerRequest)
	if f != nil && pr != nil && f.ConnsPer1000 != nil && pr.ConnsPer1000 != nil {
		s := &FleetSummary{Agents: f.Agents, ConnsPer1000: *f.ConnsPer1000, PerRequestConnsPer1000: *pr.ConnsPer1000}
		if s.ConnsPer1000 > 0 {
			s.FewerX = s.PerRequestConnsPer1000 / s.ConnsPer1000
		}
		r.Fleet = s
	}
}

// otherCPU is a client served by another process whose CPU time can be read (a running daemon).
type otherCPU interface {
	OtherCPU() (pid int, seconds float64, ok bool)
}

// warmer is a client that opens its connections before the clock starts: it returns the logins it ran.
type warmer interface {
	Warmup(ctx context.Context) (logins int, err error)
}

// runMode builds mode's client, warms it up, runs it, and counts the connections the servers accepted
// from the client's creation to its close.
func runMode(ctx context.Context, spec Spec, mode string) (*Result, error) {
	var before int64
	if spec.Cluster != nil {
		n, err := spec.Cluster.Accepts()
		if err != nil {
			return nil, err
		}
		before = n
	}
	// A running daemon has servers of its own: the embedded ones are neither killed nor counted for it.
	external := mode == ModeLocalAPI && spec.Socket != ""
	agents := 0
	var c Client
	var err error
	switch mode {
	case ModeSingleConnect:
		c, err = NewAgentClient(spec.Target, 1, false, spec.Log)
	case ModePerSession:
		c, err = NewAgentClient(spec.Target, 1, true, spec.Log)
	case ModeFleet, ModeFleetPerRequest:
		agents = spec.Agents
		c, err = NewAgentClient(spec.Target, agents, mode == ModeFleetPerRequest, spec.Log)
	case ModeLocalAPI:
		if spec.Socket != "" {
			c = NewSocketClient(spec.Socket, spec.DaemonUIDs, spec.SocketTarget, spec.Callers)
		} else {
			c, err = NewLocalAPIClient(spec.Target, spec.Callers, spec.Log)
		}
	case ModeTacquito:
		c = NewTacquitoClient(spec.Target)
	default:
		return nil, fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return nil, err
	}
	warm, warmErr := 0, error(nil)
	if w, ok := c.(warmer); ok {
		warm, warmErr = w.Warmup(ctx)
	}
	callers := spec.Callers
	if agents > callers {
		callers = agents // every agent of a fleet logs in
	}
	opts := Options{Callers: callers, Duration: spec.Duration, Count: spec.Count}
	killed := false // written by the event's goroutine, read after Run waited for it
	if spec.KillAt > 0 && !external {
		addr := spec.Target.Servers[0]
		opts.Events = append(opts.Events, Scheduled{At: spec.KillAt, Name: "server " + addr + " killed",
			Do: func() error {
				err := spec.Cluster.Kill(0)
				killed = err == nil
				return err
			}})
	}
	var end func()
	if spec.OnMode != nil {
		opts.Progress = new(atomic.Int64)
		end = spec.OnMode(mode, opts.Progress)
	}
	oc, hasOther := c.(otherCPU)
	var cpu0 float64
	if hasOther {
		_, cpu0, hasOther = oc.OtherCPU()
	}
	res := Run(ctx, mode, c, opts)
	if end != nil {
		end()
	}
	if hasOther {
		if pid, cpu1, ok := oc.OtherCPU(); ok && res.Requests > 0 {
			res.DaemonPID, res.DaemonCPUPerAuthUS = pid, (cpu1-cpu0)*1e6/float64(res.Requests)
		}
	}
	res.Agents = agents
	if warmErr != nil {
		res.WarmupError = warmErr.Error()
	}
	closeErr := c.Close()
	if spec.Cluster != nil && !external {
		after, err := spec.Cluster.Accepts()
		if err != nil {
			return res, err
		}
		n := after - before
		res.ServerAccepts = &n
		if logins := res.Requests + int64(warm); logins > 0 {
			per := float64(n) * 1000 / float64(logins)
			res.ConnsPer1000 = &per
		}
	}
	if killed { // the event ran (Run waited for it)
		if err := spec.Cluster.Restart(0); err != nil {
			return res, fmt.Errorf("restarting the killed server: %w", err)
		}
	}
	return res, closeErr
}
