package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/tacagent/tacagent/internal/buildinfo"
	"github.com/tacagent/tacagent/internal/loadgen"
	"github.com/tacagent/tacagent/internal/secfile"
)

// The embedded servers run in a child process: this binary, re-executed. It must serve before anything
// else happens in it.
func init() { loadgen.ServeChildIfAsked() }

// Bench defaults (docs/cli.md).
const (
	benchDefaultCallers  = 64
	benchDefaultDuration = 5 * time.Second
	benchUser            = "bench"
	benchSecretMax       = 64 << 10 // the cap of a key or password file
	progressEvery        = 100 * time.Millisecond
)

// serverList is the repeatable --server flag.
type serverList []string

func (s *serverList) String() string { return strings.Join(*s, ",") }
func (s *serverList) Set(v string) error {
	if !strings.Contains(v, ":") {
		return fmt.Errorf("%q: want HOST:PORT", v)
	}
	*s = append(*s, v)
	return nil
}

// benchOptions are the bench command's settings.
type benchOptions struct {
	modes, keyFile, user, passwordFile, plot string
	servers                                  serverList
	callers, agents                          int
	count                                    int64
	duration, timeout, killAt                time.Duration
	inProcess, json, noProgress              bool
}

// benchFlags registers `tacagent bench`'s flags and returns what runs it: load against embedded test servers (default) or real ones, through every
// client mode in one run.
func benchFlags(g *globals, fs *flag.FlagSet) func(args []string) int {
	f := &benchOptions{}
	fs.StringVar(&f.modes, "modes", strings.Join(loadgen.DefaultModes, ","),
		"client modes to run, in order: single-connect, per-session, local-api, tacquito, fleet; all = every one")
	fs.IntVar(&f.callers, "callers", benchDefaultCallers, "concurrent callers (goroutines logging in)")
	fs.DurationVar(&f.duration, "duration", benchDefaultDuration, "how long each mode runs")
	fs.Int64Var(&f.count, "count", 0, "logins per mode (instead of --duration)")
	fs.IntVar(&f.agents, "agents", loadgen.DefaultAgents, "fleet mode: simulated agents (each with its own connections)")
	fs.Var(&f.servers, "server", "a real TACACS+ server HOST:PORT instead of the embedded ones (repeatable, in failover order)")
	fs.StringVar(&f.keyFile, "key-file", "", "file holding the shared secret of --server (checked like the daemon's key files)")
	fs.StringVar(&f.user, "user", "", "user to log in as with --server or --socket")
	fs.StringVar(&f.passwordFile, "password-file", "", "file holding that user's password (checked like a key file)")
	fs.DurationVar(&f.timeout, "timeout", loadgen.DefaultTimeout, "per-login wait for a server")
	fs.DurationVar(&f.killAt, "kill-server-at", 0, "kill the first embedded server this long into each mode (failover); restarted before the next mode")
	fs.BoolVar(&f.inProcess, "servers-in-process", false, "run the embedded servers in this process (their CPU then counts as the client's)")
	fs.BoolVar(&f.json, "json", false, "print the report as JSON on stdout")
	fs.StringVar(&f.plot, "plot", "", "write a PNG of latency over time, failures marked, to this file")
	fs.BoolVar(&f.noProgress, "no-progress", false, "no progress bar (there is none when stderr is not a terminal)")
	return func(args []string) int {
		if len(args) > 0 {
			fmt.Fprintf(g.stderr, "tacagent bench: unexpected argument %q\n", args[0])
			return exitUsage
		}
		return runBench(g, fs, *f)
	}
}

// runBench is `tacagent bench` once its flags are parsed.
func runBench(g *globals, fs *flag.FlagSet, f benchOptions) int {
	// --socket on the command line (before or after "bench") names a running daemon for the local-api mode;
	// $TACAGENT_SOCKET alone does not.
	socketGiven := g.given("socket") || (g.socket != DefaultSocket && g.socket != os.Getenv("TACAGENT_SOCKET"))
	if code := f.validate(g, fs, socketGiven); code != 0 {
		return code
	}
	if !g.given("log-level") {
		g.logLevel = "info" // the in-process daemon and agents log at info, into io.Discard: a real daemon's cost
	}
	lvl, err := zerolog.ParseLevel(g.logLevel)
	if err != nil || g.logLevel == "" {
		fmt.Fprintf(g.stderr, "tacagent bench: unknown log level %q\n", g.logLevel)
		return exitUsage
	}
	modes, _ := loadgen.ParseModes(f.modes)

	ctx, stop := signalContext()
	defer stop()
	spec := loadgen.Spec{Modes: modes, Callers: f.callers, Agents: f.agents, Duration: f.duration, Count: f.count,
		KillAt: f.killAt, Log: zerolog.New(io.Discard).Level(lvl).With().Timestamp().Logger()}
	if f.count > 0 {
		spec.Duration = 0
	}
	spec.Target.Timeout = f.timeout
	if len(f.servers) > 0 || socketGiven {
		if spec.Target, err = f.external(); err != nil {
			fmt.Fprintln(g.stderr, "tacagent bench:", err)
			return exitConfig
		}
		if socketGiven {
			spec.Socket, spec.SocketTarget, spec.DaemonUIDs = g.socket, spec.Target, trustedUIDs(g)
		}
	}
	if len(f.servers) == 0 {
		cl, target, err := startEmbedded(f.inProcess, spec.Target)
		if err != nil {
			fmt.Fprintln(g.stderr, "tacagent bench: starting the embedded servers:", err)
			return exitError
		}
		defer cl.Close()
		spec.Cluster, spec.Target = cl, target
	}
	if !f.noProgress && isTerminal(g.stderr) {
		spec.OnMode = progressBars(g.stderr, f)
	}
	rep, err := loadgen.Bench(ctx, spec)
	if rep != nil {
		rep.Build = buildinfo.Read().String()
		if werr := writeReport(g, f, rep); werr != nil {
			fmt.Fprintln(g.stderr, "tacagent bench:", werr)
			return exitError
		}
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(g.stderr, "tacagent bench: interrupted; the report covers what ran")
		return exitError
	}
	if err != nil {
		fmt.Fprintln(g.stderr, "tacagent bench:", err)
		return exitError
	}
	if n := rep.Errors(); n > 0 {
		fmt.Fprintf(g.stderr, "tacagent bench: %d logins failed\n", n)
		return exitError
	}
	return exitOK
}

// validate checks the flags' combinations; it returns a non-zero exit status when they are wrong.
func (f *benchOptions) validate(g *globals, fs *flag.FlagSet, socketGiven bool) int {
	bad := func(format string, args ...any) int {
		fmt.Fprintf(g.stderr, "tacagent bench: "+format+"\n", args...)
		return exitUsage
	}
	if _, err := loadgen.ParseModes(f.modes); err != nil {
		return bad("%v", err)
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case f.callers < 1:
		return bad("--callers must be at least 1")
	case f.agents < 1:
		return bad("--agents must be at least 1")
	case f.count < 0:
		return bad("--count must not be negative")
	case f.count == 0 && f.duration <= 0:
		return bad("give a positive --duration or --count")
	case f.timeout <= 0:
		return bad("--timeout must be positive")
	case f.killAt < 0:
		return bad("--kill-server-at must not be negative")
	case f.killAt > 0 && len(f.servers) > 0:
		return bad("--kill-server-at works on the embedded servers only, not with --server")
	case len(f.servers) > 0 && f.keyFile == "":
		return bad("--server needs --key-file (the secret is never a flag value)")
	case (len(f.servers) > 0 || socketGiven) && (f.user == "" || f.passwordFile == ""):
		return bad("--server and --socket need --user and --password-file")
	case len(f.servers) == 0 && (f.keyFile != "" || f.user != "" || f.passwordFile != "") && !socketGiven:
		return bad("--key-file, --user and --password-file go with --server or --socket")
	}
	return 0
}

// external reads the target of --server/--socket: the key and password from checked files.
func (f *benchOptions) external() (loadgen.Target, error) {
	t := loadgen.Target{Servers: f.servers, User: f.user, Timeout: f.timeout}
	var err error
	if f.keyFile != "" {
		if t.Key, err = readSecret(f.keyFile, "key file"); err != nil {
			return t, err
		}
	}
	t.Password, err = readSecret(f.passwordFile, "password file")
	return t, err
}

// readSecret reads a secret file with the daemon's checks (a regular file, no symlink, owned by root or
// this user, no access for group or others), less one trailing newline. Errors never show the content.
func readSecret(path, what string) ([]byte, error) {
	b, err := secfile.ReadFile(path, secfile.Options{What: what, Max: benchSecretMax, Secret: true, CheckOwner: true})
	if err != nil {
		return nil, err
	}
	if c, ok := bytes.CutSuffix(b, []byte("\n")); ok {
		b, _ = bytes.CutSuffix(c, []byte("\r"))
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%s: the %s is empty", path, what)
	}
	return b, nil
}

// startEmbedded starts two test servers with a random key and password (never printed), in a child
// process unless inProcess.
func startEmbedded(inProcess bool, t loadgen.Target) (loadgen.Cluster, loadgen.Target, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, t, err
	}
	key, pw := hex.EncodeToString(secret[:16]), hex.EncodeToString(secret[16:])
	cfg := loadgen.ClusterConfig{Servers: 2, Key: []byte(key), User: benchUser, Password: pw}
	var cl loadgen.Cluster
	var err error
	if inProcess {
		cl, err = loadgen.StartInProcess(cfg)
	} else {
		cl, err = loadgen.StartChild(cfg)
	}
	if err != nil {
		return nil, t, err
	}
	t.Servers, t.Key, t.User, t.Password = cl.Addrs(), cfg.Key, benchUser, []byte(pw)
	return cl, t, nil
}

// trustedUIDs are the uids the local API client accepts as the daemon's (see globals.client).
func trustedUIDs(g *globals) []uint32 {
	if len(g.daemonUIDs) == 0 {
		return nil
	}
	return append([]uint32{0}, g.daemonUIDs...)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBars draws one bar per mode on w: logins done of --count, or seconds of --duration.
func progressBars(w io.Writer, f benchOptions) func(string, *atomic.Int64) func() {
	return func(mode string, done *atomic.Int64) func() {
		total := f.count
		if total <= 0 {
			total = f.duration.Milliseconds()
		}
		bar := progressbar.NewOptions64(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(fmt.Sprintf("%-18s", mode)),
			progressbar.OptionSetWidth(30), progressbar.OptionThrottle(progressEvery), progressbar.OptionClearOnFinish(), progressbar.OptionSetPredictTime(false))
		start := time.Now()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(progressEvery)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				n := done.Load()
				if f.count <= 0 {
					bar.Describe(fmt.Sprintf("%-18s %8d logins", mode, n))
					n = min(time.Since(start).Milliseconds(), total)
				}
				_ = bar.Set64(n)
			}
		}()
		return func() {
			close(stop)
			wg.Wait()
			_ = bar.Finish()
			_ = bar.Close()
		}
	}
}

// writeReport prints the report (text or JSON) and writes the plot.
func writeReport(g *globals, f benchOptions, rep *loadgen.Report) error {
	var errs []error
	if f.json {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		errs = append(errs, enc.Encode(rep))
	} else {
		errs = append(errs, loadgen.WriteText(g.stdout, rep))
	}
	if f.plot != "" {
		errs = append(errs, writePlot(f.plot, rep))
		if !f.json {
			fmt.Fprintf(g.stdout, "plot: %s\n", f.plot)
		}
	}
	return errors.Join(errs...)
}

func writePlot(path string, rep *loadgen.Report) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := loadgen.WritePNG(out, rep); err != nil {
		out.Close()
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return out.Close()
}
