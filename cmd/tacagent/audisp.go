package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tacagent/tacagent/audisp"
	"github.com/tacagent/tacagent/localapi"
)

// audispKeptConnections: the plugin sends one request at a time (its sender), and a session lookup may
// overlap it.
const audispKeptConnections = 2

// cmdAudisp runs as an auditd plugin (plugins.d/tacagent.conf: args = audisp, format = string): audit
// records on stdin, accounting through the local API (docs/audit.md). auditd starts it with an empty
// environment, so the socket is the default one unless --socket is in the plugin's args.
func audispFlags(g *globals, fs *flag.FlagSet) func(args []string) int {
	cfgPath := fs.String("config", audisp.DefaultConfigPath, "the plugin's configuration file (optional at the default path)")
	return func(args []string) int {
		if len(args) > 0 {
			fmt.Fprintf(g.stderr, "tacagent audisp: unexpected argument %q\n", args[0])
			return exitUsage
		}
		return runAudisp(g, *cfgPath)
	}
}

// runAudisp is the plugin, until the end of stdin or SIGTERM.
func runAudisp(g *globals, cfgPath string) int {
	log, err := g.logger()
	if err != nil {
		fmt.Fprintln(g.stderr, "tacagent audisp:", err)
		return exitUsage
	}
	fc, err := audisp.LoadConfig(cfgPath, g.given("config"))
	if err != nil {
		return exitFor(g, "audisp", err)
	}
	// The plugin runs as long as auditd and sends a record per event: it keeps its connections.
	client := g.client(localapi.WithKeptConnections(audispKeptConnections))
	defer client.Close()
	cfg := audisp.Config{Client: client, Log: log.With().Str("component", "audisp").Logger()}
	if err := fc.Apply(&cfg); err != nil {
		return exitFor(g, "audisp", err)
	}
	p, err := audisp.New(cfg)
	if err != nil {
		return exitFor(g, "audisp", err)
	}
	// auditd sends SIGHUP to its plugins when it reloads its own configuration; the plugin's is read at
	// start only, and the default action of SIGHUP would kill it.
	signal.Ignore(syscall.SIGHUP)
	ctx, cancel := signalContext()
	defer cancel()
	in := g.stdin
	if in == nil {
		in = os.Stdin
	}
	log.Info().Str("socket", g.socket).Msg("audit plugin started")
	if err := p.Run(ctx, in); err != nil {
		return exitFor(g, "audisp", err)
	}
	return exitOK
}
