package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/nsscache"
	"github.com/tacagent/tacagent/policy"
	"github.com/tacagent/tacagent/proxy"
	"github.com/tacagent/tacagent/spool"
	"github.com/tacagent/tacagent/tacplus"
)

// DefaultDrainTimeout bounds a drain (SIGTERM, or the old agent after a reload).
const DefaultDrainTimeout = 10 * time.Second

// Settings is everything the daemon runs with; the config package produces it from the YAML file.
type Settings struct {
	Agent agent.Config
	// Stack is the authentication stack; empty means the network-gear rule over every group.
	Stack policy.Config
	// Groups are the server group names in config order (the default stack's order).
	Groups []string
	// AuthorGroup and AcctGroup are the server groups for authorization and accounting ("" = default).
	AuthorGroup string
	AcctGroup   string
	// ServersChanged tells Reload whether the agent must be replaced (computed by the config package's
	// Diff); the first Settings ignores it.
	ServersChanged bool
	// MetricsAddr is the HTTP listener for /metrics, /healthz and /readyz; "" disables it.
	MetricsAddr string
	// MetricsMaxConns caps the HTTP endpoints' open connections (metrics.DefaultMaxConns when 0).
	MetricsMaxConns int
	DrainTimeout    time.Duration
	// SecretCommands are authorization commands whose argument values are never logged (their first
	// word, any case); nil means DefaultSecretCommands. Other commands' arguments are logged at debug only.
	SecretCommands []string
	// Spool, when set, is the durable accounting spool every accounting record goes through (its Send,
	// Log and Metrics are the daemon's). It is opened by New and applies until Shutdown: Reload ignores it.
	Spool *spool.Config
	// NSS, when set, answers the NSS module's lookups (GET /v1/passwd, docs/nss.md); nil answers every
	// name "notfound". Reload applies it.
	NSS *nsscache.Config
}

// runtime is one immutable generation of the daemon's moving parts.
type runtime struct {
	settings Settings
	agent    *agent.Agent
	stack    *policy.Stack
}

// Daemon is a running agent with its endpoints.
type Daemon struct {
	log    zerolog.Logger
	reg    *prometheus.Registry
	m      *metrics.Metrics
	cur    atomic.Pointer[runtime]
	mu     sync.Mutex // serializes Reload and Shutdown
	http   *http.Server
	httpLn net.Listener
	api    *localapi.Server
	tacacs *proxy.Server // the loopback TACACS+ front end; nil when off
	// tacacsAddr is the front end's listening address.
	tacacsAddr string
	bg         sync.WaitGroup // the HTTP server and background drains of replaced agents
	closing    atomic.Bool
	spool      *spool.Spool // nil when off
	// sess is the audit session table (sessions.go), made on first use.
	sessOnce sync.Once
	sess     *sessionTable
	// nss is the NSS lookup cache (nss.go), nil when off; nssMu guards the pointer.
	nssMu sync.Mutex
	nss   *nsscache.Cache
}

// New builds the first runtime and starts the HTTP endpoints. The local API is attached with ServeAPI.
func New(s Settings, log zerolog.Logger) (*Daemon, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := metrics.New(reg)
	if err != nil {
		return nil, err
	}
	d := &Daemon{log: log, reg: reg, m: m}
	if n, err := raiseFileLimit(); err != nil {
		log.Warn().Err(err).Uint64("nofile", n).Msg("cannot raise RLIMIT_NOFILE")
	} else if n < FileLimitReserve+uint64(metricsMaxConns(s)) {
		log.Warn().Uint64("nofile", n).Msg("RLIMIT_NOFILE is low: server connections and the local API may run out of descriptors (set LimitNOFILE)")
	} else {
		log.Debug().Uint64("nofile", n).Msg("descriptor limit")
	}
	rt, err := d.build(s, nil)
	if err != nil {
		return nil, err
	}
	d.cur.Store(rt)
	warnPlaintext(log, s)
	if s.Spool != nil {
		cfg := *s.Spool
		cfg.Send, cfg.Log, cfg.Metrics = d.deliver, log, m
		if d.spool, err = spool.Open(cfg); err != nil {
			d.closeRuntime(rt)
			return nil, err
		}
	}
	if s.MetricsAddr != "" {
		if err := d.serveHTTP(s.MetricsAddr, metricsMaxConns(s)); err != nil {
			d.closeSpool(context.Background())
			d.closeRuntime(rt)
			return nil, err
		}
	}
	d.nssMu.Lock()
	d.setNSS(s)
	d.nssMu.Unlock()
	return d, nil
}

// deliver is the spool's SendFunc: one record to the accounting group of the runtime current now.
func (d *Daemon) deliver(ctx context.Context, r *spool.Record) (spool.Delivery, error) {
	return onCurrent(backend{d}, func(rt *runtime) (spool.Delivery, error) {
		group := r.Group
		if group == "" {
			group = rt.settings.AcctGroup
		}
		res, err := rt.agent.Account(ctx, r.Req, agent.InGroup(group))
		if res == nil {
			return spool.Delivery{}, err
		}
		return spool.Delivery{Server: res.Server, SessionID: res.SessionID, ServerMsg: res.ServerMsg}, err
	})
}

// Spool returns the accounting spool, nil when it is off.
func (d *Daemon) Spool() *spool.Spool { return d.spool }

// closeSpool lets the spool's deliveries in flight finish for at most half of ctx's time (the agent
// needs the rest to drain); what is not delivered stays in the file for the next start.
func (d *Daemon) closeSpool(ctx context.Context) error {
	if d.spool == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, DefaultDrainTimeout/2)
	if dl, ok := ctx.Deadline(); ok {
		cancel()
		sctx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(dl)/2))
	}
	defer cancel()
	return d.spool.Close(sctx)
}

// Metrics returns the daemon's collectors (the local API counts its requests there).
func (d *Daemon) Metrics() *metrics.Metrics { return d.m }

// Registry returns the registry /metrics serves.
func (d *Daemon) Registry() *prometheus.Registry { return d.reg }

// HTTPAddr returns the bound address of the HTTP endpoints, or "".
func (d *Daemon) HTTPAddr() string {
	if d.httpLn == nil {
		return ""
	}
	return d.httpLn.Addr().String()
}

// build makes a runtime for s, reusing prev's agent when no server changed.
func (d *Daemon) build(s Settings, prev *runtime) (*runtime, error) {
	rt := &runtime{settings: s}
	if prev != nil && !s.ServersChanged {
		rt.agent = prev.agent
	} else {
		a, err := agent.New(s.Agent, agent.WithLogger(d.log), agent.WithMetrics(d.m))
		if err != nil {
			return nil, err
		}
		rt.agent = a
	}
	reg := policy.Registry{Tacacs: tacacsAuth{rt: rt}, Groups: s.Groups, Now: time.Now}
	stack, err := s.Stack.Build(reg)
	if err != nil {
		if rt.agent != prevAgent(prev) {
			d.closeAgent(rt.agent)
		}
		return nil, err
	}
	rt.stack = stack
	return rt, nil
}

func prevAgent(rt *runtime) *agent.Agent {
	if rt == nil {
		return nil
	}
	return rt.agent
}

// Reload validates and applies new settings. On error the old runtime keeps running, and the error is
// logged and counted. Requests in flight finish on the runtime they started on.
func (d *Daemon) Reload(s Settings) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing.Load() {
		return &tacplus.Error{Class: tacplus.ErrAborted, Msg: "daemon is shutting down"}
	}
	old := d.cur.Load()
	rt, err := d.build(s, old)
	if err != nil {
		d.m.ConfigReloads.WithLabelValues("error").Inc()
		d.log.Error().Err(err).Msg("reload refused: keeping the running configuration")
		return err
	}
	d.cur.Store(rt)
	d.nssMu.Lock()
	d.setNSS(s)
	d.nssMu.Unlock()
	d.m.ConfigReloads.WithLabelValues("ok").Inc()
	warnPlaintext(d.log, s)
	if rt.agent != old.agent {
		d.log.Info().Msg("reloaded: servers changed, old connections drain in the background")
		d.bg.Add(1)
		go func() {
			defer d.bg.Done()
			d.closeAgent(old.agent)
		}()
	} else {
		d.log.Info().Msg("reloaded: servers unchanged, connections kept")
	}
	return nil
}

func (d *Daemon) drainTimeout() time.Duration {
	if t := d.cur.Load().settings.DrainTimeout; t > 0 {
		return t
	}
	return DefaultDrainTimeout
}

func (d *Daemon) closeAgent(a *agent.Agent) {
	ctx, cancel := context.WithTimeout(context.Background(), d.drainTimeout())
	defer cancel()
	n, err := a.Close(ctx)
	if err != nil || n > 0 {
		d.log.Warn().Err(err).Int("abandoned", n).Msg("agent drained with sessions still running")
	}
}

func (d *Daemon) closeRuntime(rt *runtime) { d.closeAgent(rt.agent) }

// Shutdown stops the local API (conversations end, requests in flight may finish), drains the current
// agent until ctx's deadline, stops the HTTP endpoints and waits for the background drains of earlier
// reloads.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closing.CompareAndSwap(false, true) {
		return nil
	}
	var errs []error
	if err := d.shutdownAPI(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := d.shutdownTACACS(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := d.closeSpool(ctx); err != nil {
		errs = append(errs, err)
	}
	d.nssMu.Lock()
	d.setNSS(Settings{}) // its lookups end before the agent they use closes
	d.nssMu.Unlock()
	if rt := d.cur.Load(); rt != nil {
		n, err := rt.agent.Close(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		if n > 0 {
			d.log.Warn().Int("abandoned", n).Msg("shutdown deadline passed with sessions in flight")
		}
	}
	if d.http != nil {
		if err := d.http.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	d.bg.Wait()
	return errors.Join(errs...)
}

func metricsMaxConns(s Settings) int {
	if s.MetricsMaxConns > 0 {
		return s.MetricsMaxConns
	}
	return metrics.DefaultMaxConns
}

// serveHTTP starts /metrics, /healthz and /readyz on addr, holding at most maxConns connections: the
// rest wait in the kernel's accept queue, so that no number of idle clients takes descriptors the
// logins need. Slow or idle clients are cut by the read and idle timeouts.
func (d *Daemon) serveHTTP(addr string, maxConns int) error {
	ln, loopback, err := metrics.Listen(addr, maxConns)
	if err != nil {
		return &tacplus.Error{Class: tacplus.ErrConfig, Msg: "metrics listener " + addr, Err: err}
	}
	if !loopback {
		d.log.Warn().Str("metrics", ln.Addr().String()).Msg("the metrics listener is not on loopback: anyone who can reach it can read the metrics and hold its connections")
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if d.closing.Load() {
			http.Error(w, "shutting down\n", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", d.readyz)
	d.httpLn = ln
	d.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		if err := d.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error().Err(err).Msg("metrics listener stopped")
		}
	}()
	return nil
}

// readyz is ready when at least one server is reachable (up, or idle but not dead).
func (d *Daemon) readyz(w http.ResponseWriter, r *http.Request) {
	if d.closing.Load() {
		http.Error(w, "shutting down\n", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	st, err := d.cur.Load().agent.Status(ctx)
	if err != nil {
		http.Error(w, "status unavailable: "+err.Error()+"\n", http.StatusServiceUnavailable)
		return
	}
	for _, s := range st.Servers {
		if s.State == "up" {
			fmt.Fprintf(w, "ready: %s up\n", s.Addr)
			return
		}
	}
	http.Error(w, "not ready: no server reachable\n", http.StatusServiceUnavailable)
}

// tacacsAuth serves the stack's tacacs handlers from one runtime's agent.
type tacacsAuth struct{ rt *runtime }

// Authenticate implements policy.Authenticator.
func (t tacacsAuth) Authenticate(ctx context.Context, group string, req policy.Request, conv policy.Conversation) (policy.Reply, error) {
	areq := agent.AuthenRequest{
		Type: authenType(req.Type), Service: tacplus.ServiceLogin, PrivLvl: req.PrivLvl, User: req.User,
		Password: []byte(req.Password), Port: req.Port, RemAddr: req.RemAddr,
	}
	defer clear(areq.Password) // the daemon's copy; the agent keeps its own
	if req.Service == policy.Enable {
		areq.Service = tacplus.ServiceEnable
	}
	var aconv agent.Conversation
	if conv != nil {
		aconv = func(ctx context.Context, p agent.Prompt) ([]byte, error) {
			answers, err := conv(ctx, "", []policy.Prompt{{Text: p.Message, Echo: !p.NoEcho}})
			if err != nil {
				return nil, err
			}
			if len(answers) != 1 {
				return nil, fmt.Errorf("conversation gave %d answers to one prompt", len(answers))
			}
			return []byte(answers[0]), nil
		}
	}
	res, err := t.rt.agent.Authenticate(ctx, areq, aconv, agent.InGroup(group))
	rep := policy.Reply{}
	if res != nil {
		rep.Server, rep.User, rep.Message = res.Server, res.User, res.ServerMsg
	}
	return rep, err
}

func authenType(t policy.AuthenType) tacplus.AuthenType {
	switch t {
	case policy.PAP:
		return tacplus.AuthenTypePAP
	case policy.CHAP:
		return tacplus.AuthenTypeCHAP
	case policy.MSCHAPv1:
		return tacplus.AuthenTypeMSCHAP
	case policy.MSCHAPv2:
		return tacplus.AuthenTypeMSCHAPv2
	}
	return tacplus.AuthenTypeASCII
}
