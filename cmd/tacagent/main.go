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
	"github.com/spf13/cobra"
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

// command is one subcommand of the table below; cobra (the command tree built by newRoot) knows its flags,
// which is what the man page and the shell completion are generated from.
//
// Adding a command is one entry in commands plus its flag-set function:
//
//	// benchFlags registers bench's flags on fs and returns what runs it.
//	func benchFlags(g *globals, fs *flag.FlagSet) func(args []string) int {
//		n := fs.Int("n", 1000, "requests to send")
//		return func(args []string) int { ...; return exitOK }
//	}
//
// The flags are the standard library's (fs.String, fs.Var, ...); they are read when the returned function
// runs, with the positional arguments (those after "--" included). The global flags (--socket,
// --log-level, --daemon-uid) are registered by the root, not by fs: g.given("log-level") says whether one
// was on the command line. A flag is written --name (two dashes; -x for a one-letter one). Flag parsing
// stops at the first positional argument unless interspersed is set. A description for --help and the
// man page goes in help.go's longHelp (optional). Nothing else is needed: usage, man page (make man) and
// completion follow from the entry.
type command struct {
	name, args, summary string
	// flags registers the command's flags on fs and returns the command's body.
	flags func(g *globals, fs *flag.FlagSet) func(args []string) int
	// interspersed lets flags follow positional arguments (account's record type comes first).
	interspersed bool
	// validArgs completes the first positional argument.
	validArgs []string
}

var commands = []command{
	{name: "run", args: "--config FILE", summary: "run the daemon", flags: runFlags},
	{name: "demo", args: "[--serve] [--metrics ADDR]", summary: "run a login, authorization and accounting round trip against an embedded server", flags: demoFlags},
	{name: "login", args: "[--user U] [--type ascii|pap|chap|mschapv1|mschapv2]", summary: "log in through the agent", flags: loginFlags},
	{name: "authorize", args: "--user U [--service shell] [--priv-lvl N] [-v] -- CMD ARG...", summary: "ask whether a command may run", flags: authorizeFlags},
	{name: "account", args: "start|stop|watchdog|update --user U --task-id ID [--attr k=v]... [-- CMD ARG...]", summary: "send an accounting record",
		flags: accountFlags, interspersed: true, validArgs: []string{"start", "stop", "watchdog", "update"}},
	{name: "status", args: "[--json]", summary: "show servers, connections and sessions in flight", flags: statusFlags},
	{name: "bench", args: "[--modes M,...|all] [--callers N] [--duration D|--count N] [--server HOST:PORT --key-file F] [--json] [--plot F.png]",
		summary: "measure logins per second, latency and client CPU of each client mode", flags: benchFlags},
	{name: "audisp", args: "[--config FILE]", summary: "run as an auditd plugin: account the commands of TACACS+ sessions", flags: audispFlags},
	{name: "version", summary: "print the version (also --version)", flags: versionFlags},
}

// version is the running build's module version (debug.ReadBuildInfo: a tag, a pseudo-version, or
// "devel"); the local API reports it in status.
var version = buildinfo.Read().Version

// versionFlags: version prints the build: version, VCS revision and time, modified tree, Go version.
func versionFlags(g *globals, _ *flag.FlagSet) func([]string) int {
	return func([]string) int {
		fmt.Fprintln(g.stdout, buildinfo.Read())
		return exitOK
	}
}

// globals are the flags every command accepts, before or after the command name.
type globals struct {
	socket     string
	logLevel   string
	daemonUIDs daemonUIDs // --daemon-uid: the uids a daemon may run as, besides root
	stdout     io.Writer
	stderr     io.Writer
	stdin      *os.File
	// given reports whether a flag (global or the command's) was on the command line; set by newRoot.
	given func(name string) bool
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.socket, "socket", g.socket, "path of the agent's local API socket ($TACAGENT_SOCKET)")
	fs.StringVar(&g.logLevel, "log-level", g.logLevel, "log level: debug, info, warn, error")
	fs.Var(&g.daemonUIDs, "daemon-uid", "uid or user name the daemon runs as, besides root (repeatable; default: root and your own uid)")
}

// client returns a local API client of the socket, trusting the daemon uids the flags give.
func (g *globals) client(opts ...localapi.ClientOption) *localapi.Client {
	if len(g.daemonUIDs) > 0 {
		opts = append(opts, localapi.WithDaemonUIDs(append([]uint32{0}, g.daemonUIDs...)...))
	}
	return localapi.NewClient(g.socket, opts...)
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

// Type names the flag's value in the usage and the man page.
func (d *daemonUIDs) Type() string { return "uid" }

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
	code := exitOK
	root := newRoot(g, &code)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if c, err := root.ExecuteC(); err != nil {
		name := c.CommandPath()
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		if hint := singleDashHint(c, err); hint != "" {
			fmt.Fprintln(stderr, hint)
		}
		fmt.Fprintf(stderr, "Usage: %s\nRun '%s --help' for the flags; docs/cli.md and tacagent(8) have the details.\n",
			c.UseLine(), name)
		return exitUsage
	}
	return code
}

// exitHelp is the exit-status paragraph of the usage and of tacagent(8).
var exitHelp = fmt.Sprintf("Exit status: %d success, %d failed or denied, %d error (no answer could be had), %d usage, %d bad configuration.",
	exitOK, exitFail, exitError, exitUsage, exitConfig)

// newRoot builds the command tree: the global flags on the root (so they go before or after the command
// name), one subcommand per entry of commands. The exit status of the command that ran goes to *code; an
// error returned by Execute is a bad command line.
func newRoot(g *globals, code *int) *cobra.Command {
	root := &cobra.Command{
		Use:   "tacagent [--socket PATH] [--daemon-uid UID|USER] [--log-level LEVEL] COMMAND [FLAGS] [ARGS]",
		Short: "TACACS+ client agent",
		Long: "tacagent is a TACACS+ (RFC 8907) client agent: a daemon (tacagent run) that authenticates logins, " +
			"authorizes commands and sends accounting records over persistent, multiplexed TCP or TLS 1.3 connections " +
			"to TACACS+ servers, and the command-line clients of its local API.\n\n" +
			"Global flags may come before or after the command name; long flags take two dashes (--socket). --socket defaults to " + DefaultSocket +
			", or to $TACAGENT_SOCKET when set. Logs are zerolog JSON on stderr, or human-readable when stderr is a terminal.\n\n" +
			exitHelp + "\n\nSee also tacagent.yaml(5) and pam_tacagent(8).",
		Version:       buildinfo.Read().String(),
		SilenceErrors: true,
		SilenceUsage:  true,
		// No command: the usage on stderr, exit 64.
		Run: func(c *cobra.Command, _ []string) {
			c.SetOut(g.stderr)
			_ = c.Usage()
			*code = exitUsage
		},
	}
	root.DisableFlagsInUseLine = true
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	gfs := flag.NewFlagSet("tacagent", flag.ContinueOnError)
	g.register(gfs)
	root.PersistentFlags().AddGoFlagSet(gfs)
	root.CompletionOptions.HiddenDefaultCmd = true // `tacagent completion bash|zsh|fish` works; packages ship the scripts
	for _, c := range commands {
		root.AddCommand(subcommand(g, c, code))
	}
	root.AddCommand(gendocsCommand(root))
	return root
}

// subcommand makes the cobra command of one table entry.
func subcommand(g *globals, c command, code *int) *cobra.Command {
	fs := flag.NewFlagSet("tacagent "+c.name, flag.ContinueOnError)
	body := c.flags(g, fs)
	cc := &cobra.Command{
		Use:       strings.TrimSpace(c.name + " " + c.args),
		Short:     c.summary,
		Long:      longHelp[c.name],
		ValidArgs: c.validArgs,
		Run: func(cc *cobra.Command, args []string) {
			g.given = func(name string) bool { return cc.Flags().Changed(name) }
			*code = body(args)
		},
	}
	cc.Flags().AddGoFlagSet(fs)
	cc.Flags().SetInterspersed(c.interspersed)
	cc.DisableFlagsInUseLine = true // the table's args already show them
	return cc
}

// singleDashHint explains an error from a long flag written with one dash (-user), which the standard
// library's flag parsing accepted and cobra's reads as a cluster of one-letter flags.
func singleDashHint(c *cobra.Command, err error) string {
	msg := err.Error()
	i := strings.Index(msg, " in -")
	if i < 0 {
		return ""
	}
	word, _, _ := strings.Cut(msg[i+len(" in -"):], "=")
	if len(word) > 1 && c.Flags().Lookup(word) != nil {
		return fmt.Sprintf("(long flags take two dashes: --%s)", word)
	}
	return ""
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
