// Command tacagent is the TACACS+ client agent: the daemon (run), its demo, and the command-line clients
// of its local API (login, authorize, account, status). docs/cli.md documents every command and exit
// status.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"github.com/tacagent/tacagent/internal/buildinfo"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/tacplus"
)

// Exit statuses (docs/cli.md).
const (
	exitOK     = 0  // success: login passed, command permitted, record acknowledged
	exitFail   = 1  // the server said no: authentication failed or authorization denied
	exitError  = 2  // no answer could be had: unreachable, timeout, server error, agent not running, ...
	exitUsage  = 64 // bad command line (sysexits EX_USAGE)
	exitConfig = 78 // bad configuration (sysexits EX_CONFIG)
)

// DefaultSocket is where the daemon listens and the clients connect.
const DefaultSocket = "/run/tacagent/tacagent.sock"

type command struct {
	name, args, summary string
	run                 func(g *globals, args []string) int
}

var commands = []command{
	{"run", "--config FILE", "run the daemon", cmdRun},
	{"demo", "[--serve]", "run a login, authorization and accounting round trip against an embedded server", cmdDemo},
	{"login", "[--user U] [--type ascii|pap|chap|mschapv1|mschapv2]", "log in through the agent", cmdLogin},
	{"authorize", "--user U [--service shell] [--priv-lvl N] [-v] -- CMD ARG...", "ask whether a command may run", cmdAuthorize},
	{"account", "start|stop|watchdog --user U --task-id ID [--attr k=v]... [-- CMD ARG...]", "send an accounting record", cmdAccount},
	{"status", "[--json]", "show servers, connections and sessions in flight", cmdStatus},
	{"bench", "[--modes M,...|all] [--callers N] [--duration D|--count N] [--server HOST:PORT --key-file F] [--json] [--plot F.png]", "measure logins per second, latency and client CPU of each client mode", cmdBench},
	{"audisp", "[--config FILE]", "run as an auditd plugin: account the commands of TACACS+ sessions", cmdAudisp},
	{"version", "", "print the version (also --version)", cmdVersion},
}

// version is the running build's module version (debug.ReadBuildInfo: a tag, a pseudo-version, or
// "devel"); the local API reports it in status.
var version = buildinfo.Read().Version

// cmdVersion prints the build: version, VCS revision and time, modified tree, Go version.
func cmdVersion(g *globals, _ []string) int {
	fmt.Fprintln(g.stdout, buildinfo.Read())
	return exitOK
}

// globals are the flags every command accepts, before or after the command name.
type globals struct {
	socket     string
	logLevel   string
	daemonUIDs daemonUIDs // --daemon-uid: the uids a daemon may run as, besides root
	stdout     io.Writer
	stderr     io.Writer
	stdin      *os.File
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.socket, "socket", g.socket, "path of the agent's local API socket")
	fs.StringVar(&g.logLevel, "log-level", g.logLevel, "log level: debug, info, warn, error")
	fs.Var(&g.daemonUIDs, "daemon-uid", "uid or user name the daemon runs as, besides root (repeatable; default: root and your own uid)")
}

// client returns a local API client of the socket, trusting the daemon uids the flags give.
func (g *globals) client() *localapi.Client {
	if len(g.daemonUIDs) == 0 {
		return localapi.NewClient(g.socket)
	}
	return localapi.NewClient(g.socket, localapi.WithDaemonUIDs(append([]uint32{0}, g.daemonUIDs...)...))
}

// daemonUIDs is the --daemon-uid flag: uids given as numbers or user names (resolved when parsed).
type daemonUIDs []uint32

func (d *daemonUIDs) String() string {
	parts := make([]string, len(*d))
	for i, u := range *d {
		parts[i] = strconv.FormatUint(uint64(u), 10)
	}
	return strings.Join(parts, ",")
}

func (d *daemonUIDs) Set(v string) error {
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		*d = append(*d, uint32(n))
		return nil
	}
	u, err := user.Lookup(v)
	if err != nil {
		return fmt.Errorf("%q is neither a uid nor a known user", v)
	}
	n, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return fmt.Errorf("user %q has a uid that is not a number", v)
	}
	*d = append(*d, uint32(n))
	return nil
}

// logger returns zerolog JSON on stderr, or a human-readable console writer when stderr is a terminal.
func (g *globals) logger() (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(g.logLevel)
	if err != nil || g.logLevel == "" {
		return zerolog.Nop(), fmt.Errorf("unknown log level %q (want debug, info, warn or error)", g.logLevel)
	}
	var w io.Writer = g.stderr
	if f, ok := g.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		w = zerolog.ConsoleWriter{Out: f, TimeFormat: "15:04:05.000"}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	g := &globals{socket: DefaultSocket, logLevel: "info", stdout: stdout, stderr: stderr, stdin: stdin}
	if s := os.Getenv("TACAGENT_SOCKET"); s != "" {
		g.socket = s
	}
	fs := flag.NewFlagSet("tacagent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	g.register(fs)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() { usage(stderr) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	rest := fs.Args()
	if *showVersion {
		return cmdVersion(g, rest)
	}
	if len(rest) == 0 {
		usage(stderr)
		return exitUsage
	}
	for _, c := range commands {
		if c.name == rest[0] {
			return c.run(g, rest[1:])
		}
	}
	if rest[0] == "help" {
		usage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "tacagent: unknown command %q\n\n", rest[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: tacagent [--socket PATH] [--daemon-uid UID|USER] [--log-level LEVEL] COMMAND [ARGS]")
	fmt.Fprintln(w, "       tacagent --version")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n             %s\n", c.name, c.summary, c.args)
	}
	fmt.Fprintf(w, "\nExit status: %d success, %d failed or denied, %d error, %d usage, %d bad configuration.\n",
		exitOK, exitFail, exitError, exitUsage, exitConfig)
	fmt.Fprintln(w, "Run 'tacagent COMMAND -h' for a command's flags. docs/cli.md has the details.")
}

// newFlags returns a command's flag set, with the global flags registered on it too.
func newFlags(g *globals, name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet("tacagent "+name, flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	g.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(g.stderr, "Usage: tacagent %s %s\n\nFlags:\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses a command's flags; ok is false when the command must exit with status code.
func parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

// exitFor maps an error of the taxonomy to the documented exit status, and says why on stderr.
func exitFor(g *globals, what string, err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(g.stderr, "tacagent: %s: %v\n", what, err)
	switch {
	case errors.Is(err, tacplus.ErrAuthenticationFailed), errors.Is(err, tacplus.ErrDenied):
		return exitFail
	case errors.Is(err, tacplus.ErrConfig):
		return exitConfig
	}
	return exitError
}

// signalContext is cancelled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// splitKV parses k=v attributes.
func splitKV(s string) (k, v string, ok bool) {
	k, v, ok = strings.Cut(s, "=")
	return k, v, ok && k != ""
}
