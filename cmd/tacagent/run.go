package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/config"
	"github.com/tacagent/tacagent/daemon"
	"github.com/tacagent/tacagent/localapi"
)

// cmdRun is the daemon: it serves the local API and the HTTP endpoints until SIGTERM or SIGINT, and
// reloads its configuration on SIGHUP.
func cmdRun(g *globals, args []string) int {
	fs := newFlags(g, "run", "--config FILE")
	path := fs.String("config", "/etc/tacagent/tacagent.yaml", "configuration file")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(g.stderr, "tacagent: %v\n", err)
		return exitConfig
	}
	if !flagSet(fs, "log-level") && cfg.Log.Level != "" {
		g.logLevel = cfg.Log.Level
	}
	log, err := g.logger()
	if err != nil {
		fmt.Fprintln(g.stderr, "tacagent:", err)
		return exitConfig
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
	log.Info().Str("config", *path).Str("socket", cfg.API.Socket).Str("metrics", dmn.HTTPAddr()).
		Int("servers", len(settings.Agent.Servers)).Msg("tacagent running")

	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	for s := range sig {
		if s == syscall.SIGHUP {
			cfg = reload(*path, cfg, dmn, log)
			continue
		}
		log.Info().Str("signal", s.String()).Dur("deadline", drainTimeout(cfg)).Msg("draining")
		ctx, cancel := context.WithTimeout(context.Background(), drainTimeout(cfg))
		err := dmn.Shutdown(ctx)
		cancel()
		if err != nil {
			log.Warn().Err(err).Msg("drain ended with errors")
		}
		log.Info().Msg("stopped")
		return exitOK
	}
	return exitOK
}

// reload applies the file at path; a bad file keeps the running configuration (logged and counted).
func reload(path string, old *config.Config, dmn *daemon.Daemon, log zerolog.Logger) *config.Config {
	cfg, err := config.Load(path)
	if err == nil {
		var s daemon.Settings
		if s, err = settingsFrom(cfg, old); err == nil {
			err = dmn.Reload(s) // counts its own result
			if err == nil {
				if sectionChanged(config.Diff(old, cfg), "api") {
					log.Warn().Msg("the api section changed: the socket keeps its old settings until a restart")
				}
				return cfg
			}
			return old
		}
	}
	dmn.Metrics().ConfigReloads.WithLabelValues("error").Inc()
	log.Error().Err(err).Str("config", path).Msg("reload refused: keeping the running configuration")
	return old
}

// settingsFrom maps a configuration onto the daemon's settings; old is the running one, for the diff.
func settingsFrom(cfg *config.Config, old *config.Config) (daemon.Settings, error) {
	ac, err := cfg.Agent()
	if err != nil {
		return daemon.Settings{}, err
	}
	s := daemon.Settings{
		Agent: ac, Stack: cfg.Authentication.Config, AuthorGroup: cfg.Authorization.Group, AcctGroup: cfg.Accounting.Group,
		MetricsAddr: cfg.Metrics.Address, DrainTimeout: drainTimeout(cfg), ServersChanged: true,
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
	limit := cfg.Authentication.FailureLimit.Max
	if limit == 0 {
		limit = -1 // config: 0 disables; localapi: negative disables
	}
	return localapi.Config{
		Log: log, Group: cfg.API.Group, AgentVersion: version, MaxRequestBytes: int64(cfg.API.MaxRequestBytes),
		ConversationTimeout: cfg.Authentication.UserTimeout,
		RateLimit:           localapi.RateLimit{MaxFailures: limit, Window: cfg.Authentication.FailureLimit.Window},
	}
}

func drainTimeout(*config.Config) time.Duration { return daemon.DefaultDrainTimeout }

// flagSet reports whether the named flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}
