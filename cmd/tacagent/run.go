package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/tacagent/tacagent/config"
	"github.com/tacagent/tacagent/daemon"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/proxy"
	"github.com/tacagent/tacagent/spool"
)

// cmdRun is the daemon: it serves the local API and the HTTP endpoints until SIGTERM or SIGINT, and
// reloads its configuration on SIGHUP. Reloads run off the signal loop, so SIGTERM is obeyed at once
// whatever a reload is doing.
func runFlags(g *globals, fs *flag.FlagSet) func(args []string) int {
	path := fs.String("config", "/etc/tacagent/tacagent.yaml", "configuration file")
	return func(args []string) int {
		if len(args) > 0 {
			fmt.Fprintf(g.stderr, "tacagent run: unexpected argument %q\n", args[0])
			return exitUsage
		}
		return runDaemon(g, *path)
	}
}

// runDaemon is the daemon with the configuration file at path.
func runDaemon(g *globals, path string) int {
	// No core dumps and no ptrace by other processes of the same user: the process holds shared secrets
	// and passwords in flight (the unit sets LimitCORE=0 as well).
	dumpErr := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(g.stderr, "tacagent: %v\n", err)
		return exitConfig
	}
	levelFromFile := !g.given("log-level")
	if levelFromFile && cfg.Log.Level != "" {
		g.logLevel = cfg.Log.Level
	}
	base, err := g.logger()
	if err != nil {
		fmt.Fprintln(g.stderr, "tacagent:", err)
		return exitConfig
	}
	// The level lives in a hook so that a reload can change it (log.level applies on reload).
	lvl := &levelHook{}
	lvl.set(base.GetLevel())
	log := base.Level(zerolog.DebugLevel).Hook(lvl)
	if dumpErr != nil {
		log.Warn().Err(dumpErr).Msg("cannot clear PR_SET_DUMPABLE: a core dump could hold secrets")
	}
	settings, err := settingsFrom(cfg, nil)
	if err != nil {
		log.Error().Err(err).Msg("configuration")
		return exitConfig
	}
	dmn, err := daemon.New(settings, log)
	if err != nil {
		log.Error().Err(err).Msg("starting")
		return exitFor(g, "starting", err)
	}
	if err := dmn.ServeAPI(cfg.API.Socket, cfg.API.Mode, apiConfig(cfg, log)); err != nil {
		log.Error().Err(err).Msg("local API")
		_ = dmn.Shutdown(context.Background())
		return exitFor(g, "local API", err)
	}
	if l := cfg.Listen.TACACS; l.Address != "" {
		if err := dmn.ServeTACACS(l.Address, l.AllowNonLoopback, tacacsConfig(cfg), apiConfig(cfg, log).RateLimit); err != nil {
			log.Error().Err(err).Msg("tacacs front end")
			_ = dmn.Shutdown(context.Background())
			return exitFor(g, "tacacs front end", err)
		}
	}
	log.Info().Str("config", path).Str("socket", cfg.API.Socket).Str("metrics", dmn.HTTPAddr()).
		Int("servers", len(settings.Agent.Servers)).Msg("tacagent running")

	rl := &reloader{path: path, cfg: cfg, dmn: dmn, log: log, level: lvl, levelFromFile: levelFromFile}
	rl.apply = rl.reload
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	return signalLoop(sig, rl, func(s os.Signal) int {
		log.Info().Str("signal", s.String()).Stringer("deadline", drainTimeout(cfg)).Msg("draining")
		ctx, cancel := context.WithTimeout(context.Background(), drainTimeout(cfg))
		err := dmn.Shutdown(ctx)
		cancel()
		if err != nil {
			log.Warn().Err(err).Msg("drain ended with errors")
		}
		log.Info().Msg("stopped")
		return exitOK
	})
}

// signalLoop runs until a stop signal: SIGHUP asks rl for a reload (which runs on rl's own goroutine),
// anything else stops rl's goroutine, without waiting for a reload in progress, and returns stop's code.
// A slow reload (a key file on a hung network mount, say) can therefore never delay SIGTERM.
func signalLoop(sig <-chan os.Signal, rl *reloader, stop func(os.Signal) int) int {
	rl.start()
	defer rl.stop()
	for s := range sig {
		if s == syscall.SIGHUP {
			rl.request()
			continue
		}
		return stop(s)
	}
	return exitOK
}

// reloader applies the configuration file on its own goroutine, one reload at a time; SIGHUPs that arrive
// during a reload are folded into one more reload after it.
type reloader struct {
	path          string
	cfg           *config.Config // the running configuration; only the reload goroutine touches it
	dmn           *daemon.Daemon
	log           zerolog.Logger
	level         *levelHook
	levelFromFile bool // log.level comes from the file (no --log-level on the command line)
	apply         func()

	pending chan struct{}
	done    chan struct{}
	exited  chan struct{}
}

func (r *reloader) start() {
	r.pending, r.done, r.exited = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(r.exited)
		for {
			select {
			case <-r.done:
				return
			case <-r.pending:
				select {
				case <-r.done:
					return // stopping: a reload now would only be refused
				default:
				}
				r.apply()
			}
		}
	}()
}

// request asks for a reload; it never blocks.
func (r *reloader) request() {
	select {
	case r.pending <- struct{}{}:
	default: // one is already pending: it will read the file as it is then
	}
}

// stop ends the goroutine without waiting for a reload in progress (that one finds the daemon shut
// down and is refused).
func (r *reloader) stop() { close(r.done) }

// reload applies the file; a bad file keeps the running configuration (logged and counted).
func (r *reloader) reload() {
	old := r.cfg
	cfg, err := config.Load(r.path)
	if err == nil {
		var s daemon.Settings
		if s, err = settingsFrom(cfg, old); err == nil {
			ch := config.Diff(old, cfg)
			err = r.dmn.Reload(s) // counts its own result
			if err == nil {
				// Changes names servers, fields and sections, never a key's value.
				r.log.Info().Str("changes", ch.String()).Msg("configuration reloaded")
				if sectionChanged(ch, "api") {
					r.log.Warn().Msg("the api section changed: the socket keeps its old settings until a restart")
				}
				if sectionChanged(ch, "metrics") {
					r.log.Warn().Msg("the metrics section changed: the listener keeps its old address until a restart")
				}
				if r.levelFromFile {
					if l, perr := zerolog.ParseLevel(cfg.Log.Level); perr == nil && cfg.Log.Level != "" {
						r.level.set(l)
					}
				}
				r.cfg = cfg
			}
			return
		}
	}
	r.dmn.Metrics().ConfigReloads.WithLabelValues("error").Inc()
	r.log.Error().Err(err).Str("config", r.path).Msg("reload refused: keeping the running configuration")
}

// levelHook drops events below its level, which a reload may change.
type levelHook struct{ min atomic.Int32 }

func (h *levelHook) set(l zerolog.Level) { h.min.Store(int32(l)) }

// Run implements zerolog.Hook.
func (h *levelHook) Run(e *zerolog.Event, l zerolog.Level, _ string) {
	if l != zerolog.NoLevel && int32(l) < h.min.Load() {
		e.Discard()
	}
}

// settingsFrom maps a configuration onto the daemon's settings; old is the running one, for the diff.
func settingsFrom(cfg *config.Config, old *config.Config) (daemon.Settings, error) {
	ac, err := cfg.Agent()
	if err != nil {
		return daemon.Settings{}, err
	}
	s := daemon.Settings{
		Agent: ac, Stack: cfg.Authentication.Config, AuthorGroup: cfg.Authorization.Group, AcctGroup: cfg.Accounting.Group,
		MetricsAddr: cfg.Metrics.Address, MetricsMaxConns: cfg.Metrics.MaxConnections, DrainTimeout: drainTimeout(cfg),
		ServersChanged: true, SecretCommands: cfg.Log.SecretCommands, NSS: cfg.NSSCache(),
	}
	if s.SecretCommands == nil {
		s.SecretCommands = []string{} // an empty list in the file withholds nothing; nil would mean the default
	}
	if sp := cfg.Accounting.Spool; sp.Enable {
		s.Spool = &spool.Config{Path: sp.Path, MaxRecords: sp.MaxRecords, MaxBytes: sp.MaxBytes,
			RetryInitial: sp.RetryInitial, RetryMax: sp.RetryMax, DeadLetterAfter: sp.DeadLetterAfter}
	}
	for _, grp := range ac.Groups {
		s.Groups = append(s.Groups, grp.Name)
	}
	if old != nil {
		// Everything the supervisor was built from: servers, groups, dead-time, backoff, and the user timeout
		// (authentication). The stack alone would not need a new agent, but it shares the section.
		ch := config.Diff(old, cfg)
		s.ServersChanged = ch.ServersChanged() || sectionChanged(ch, "groups", "dead_time", "backoff", "authentication")
	}
	return s, nil
}

func sectionChanged(ch config.Changes, names ...string) bool {
	for _, have := range ch.Sections {
		for _, n := range names {
			if have == n {
				return true
			}
		}
	}
	return false
}

func apiConfig(cfg *config.Config, log zerolog.Logger) localapi.Config {
	fl := cfg.Authentication.FailureLimit
	limit := fl.Max
	if limit == 0 {
		limit = -1 // config: 0 disables; localapi: negative disables
	}
	return localapi.Config{
		Log: log, Group: cfg.API.Group, AgentVersion: version, MaxRequestBytes: int64(cfg.API.MaxRequestBytes),
		ConversationTimeout: cfg.Authentication.UserTimeout,
		ConversationShare:   cfg.API.ConversationShare, ConnectionShare: cfg.API.ConnectionShare,
		RateLimit: localapi.RateLimit{MaxFailures: limit, Window: fl.Window, BaseDelay: fl.BaseDelay, MaxDelay: fl.MaxDelay,
			MaxKeys: fl.MaxKeys},
	}
}

// tacacsConfig maps listen.tacacs onto the front end's settings (its backend, limiter and log are the
// daemon's).
func tacacsConfig(cfg *config.Config) proxy.Config {
	l := &cfg.Listen.TACACS
	return proxy.Config{Key: l.Key(), MaxClients: l.MaxClients, ConnectionShare: l.ConnectionShare, SessionShare: l.SessionShare,
		MaxSessionsPerClient: l.MaxSessionsPerClient, IdleTimeout: l.IdleTimeout, WriteTimeout: l.WriteTimeout,
		ConversationTimeout: l.ConversationTimeout, RequestTimeout: l.RequestTimeout}
}

func drainTimeout(*config.Config) time.Duration { return daemon.DefaultDrainTimeout }
