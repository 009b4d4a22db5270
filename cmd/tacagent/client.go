package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/tacagent/tacagent/localapi"
)

// requestTimeout bounds one CLI request; a login's prompts have the agent's own user timeout.
const requestTimeout = 5 * time.Minute

// cmdLogin runs an interactive login through the agent. The server drives the prompts; answers are read
// from the terminal without echo when the server says NOECHO, or from stdin, one line per prompt, when
// stdin is not a terminal.
func loginFlags(g *globals, fs *flag.FlagSet) func(args []string) int {
	user := fs.String("user", "", "user name (ASCII: the server asks when empty)")
	typ := fs.String("type", localapi.TypeASCII, "authentication type: ascii, pap, chap, mschapv1, mschapv2")
	service := fs.String("service", localapi.ServiceLogin, "login or enable")
	priv := fs.Int("priv-lvl", 0, "privilege level (0-15); the level asked for with --service enable")
	port := fs.String("port", "tacagent-cli", "port (tty) to report")
	remAddr := fs.String("rem-addr", "", "remote address to report")
	return func(args []string) int {
		if len(args) > 0 {
			fmt.Fprintf(g.stderr, "tacagent login: unexpected argument %q\n", args[0])
			return exitUsage
		}
		return login(g, localapi.AuthenRequest{User: *user, Type: *typ, Service: *service, PrivLvl: *priv, Port: *port, RemAddr: *remAddr})
	}
}

// login runs the login of req.
func login(g *globals, req localapi.AuthenRequest) int {
	in := newAnswerReader(g)
	if req.Type != localapi.TypeASCII {
		if req.User == "" {
			u, err := in.ask(localapi.Prompt{Message: "Username: ", Echo: true})
			if err != nil {
				return exitFor(g, "login", err)
			}
			req.User = u
		}
		pw, err := in.ask(localapi.Prompt{Message: "Password: ", Echo: false})
		if err != nil {
			return exitFor(g, "login", err)
		}
		req.Password = localapi.Secret(pw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	c := g.client()
	defer c.Close()
	res, err := c.Authenticate(ctx, req, func(_ context.Context, p localapi.Prompt) (string, error) {
		return in.ask(p)
	})
	if err != nil {
		if res != nil && res.Error != nil && res.Error.Explanation != "" {
			fmt.Fprintf(g.stderr, "tacagent: %s\n", res.Error.Explanation)
		}
		return exitFor(g, "login", err)
	}
	fmt.Fprintf(g.stdout, "login ok: user %s (server %s)\n", res.User, res.Server)
	return exitOK
}

// answerReader reads prompt answers from the terminal, or from stdin lines when it is not a terminal.
type answerReader struct {
	g     *globals
	tty   bool
	lines *bufio.Scanner
}

func newAnswerReader(g *globals) *answerReader {
	return &answerReader{g: g, tty: g.stdin != nil && term.IsTerminal(int(g.stdin.Fd())), lines: bufio.NewScanner(g.stdin)}
}

func (r *answerReader) ask(p localapi.Prompt) (string, error) {
	if p.Kind == localapi.PromptInfo {
		fmt.Fprintln(r.g.stderr, p.Message)
		return "", nil
	}
	if r.tty {
		fmt.Fprint(r.g.stderr, p.Message)
		if !p.Echo {
			b, err := term.ReadPassword(int(r.g.stdin.Fd()))
			fmt.Fprintln(r.g.stderr)
			return string(b), err
		}
	}
	if !r.lines.Scan() {
		if err := r.lines.Err(); err != nil {
			return "", err
		}
		return "", fmt.Errorf("no answer on stdin for the prompt %q", strings.TrimSpace(p.Message))
	}
	return strings.TrimRight(r.lines.Text(), "\r"), nil
}

// cmdAuthorize asks whether a command may run: exit 0 permit, 1 deny, 2 error.
func authorizeFlags(g *globals, fs *flag.FlagSet) func(args []string) int {
	user := fs.String("user", "", "user name (required)")
	service := fs.String("service", "shell", "service= value")
	priv := fs.Int("priv-lvl", 1, "privilege level (0-15)")
	port := fs.String("port", "tacagent-cli", "port (tty) to report")
	verbose := fs.Bool("v", false, "print the AV pairs the server returned")
	return func(args []string) int {
		if *user == "" {
			fmt.Fprintln(g.stderr, "tacagent authorize: --user is required")
			return exitUsage
		}
		req := localapi.AuthorRequest{User: *user, Service: *service, PrivLvl: *priv, Port: *port}
		if len(args) > 0 {
			req.Cmd, req.Args = args[0], args[1:]
		}
		return authorize(g, req, *verbose)
	}
}

// authorize asks for req: exit 0 permit, 1 deny, 2 error.
func authorize(g *globals, req localapi.AuthorRequest, verbose bool) int {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	c := g.client()
	defer c.Close()
	res, err := c.Authorize(ctx, req)
	if res == nil {
		res = &localapi.AuthorResult{}
	}
	if verbose {
		for _, a := range res.Args {
			fmt.Fprintln(g.stdout, a)
		}
	}
	if err != nil {
		return exitFor(g, "authorize", err)
	}
	fmt.Fprintf(g.stdout, "permit (server %s)\n", res.Server)
	return exitOK
}

// cmdAccount sends one accounting record.
// Its first argument is the record type (start, stop, watchdog, update); the words after it (or after
// "--") are the command, sent as cmd=.
func accountFlags(g *globals, fs *flag.FlagSet) func(args []string) int {
	user := fs.String("user", "", "user name (required)")
	task := fs.String("task-id", "", "task id tying START, WATCHDOG and STOP together (required)")
	port := fs.String("port", "tacagent-cli", "port (tty) to report")
	var attrs multiFlag
	fs.Var(&attrs, "attr", "extra attribute k=v (repeatable)")
	return func(args []string) int {
		if len(args) == 0 {
			fmt.Fprintln(g.stderr, "Usage: tacagent account start|stop|watchdog|update --user U --task-id ID [--attr k=v]... [-- CMD ARG...]")
			return exitUsage
		}
		if *user == "" || *task == "" {
			fmt.Fprintln(g.stderr, "tacagent account: --user and --task-id are required")
			return exitUsage
		}
		req := localapi.AcctRequest{Flags: args[0], User: *user, TaskID: *task, Port: *port}
		for _, a := range attrs {
			if _, _, ok := splitKV(a); !ok {
				fmt.Fprintf(g.stderr, "tacagent account: --attr %q is not k=v\n", a)
				return exitUsage
			}
			req.AV = append(req.AV, a)
		}
		if rest := args[1:]; len(rest) > 0 {
			req.AV = append(req.AV, "cmd="+strings.Join(rest, " "))
		}
		return account(g, req)
	}
}

// account sends req.
func account(g *globals, req localapi.AcctRequest) int {
	flags := req.Flags
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	c := g.client()
	defer c.Close()
	res, err := c.Account(ctx, req)
	if err != nil && res != nil && res.Spooled {
		// Durable in the agent's spool: it will be sent when a server takes it.
		fmt.Fprintf(g.stdout, "%s spooled: no server took it yet (%v); the agent keeps it and sends it later\n", flags, err)
		return exitOK
	}
	if err != nil {
		return exitFor(g, "account", err)
	}
	fmt.Fprintf(g.stdout, "%s recorded (server %s)\n", flags, res.Server)
	return exitOK
}

// cmdStatus prints the servers, their connections and the sessions in flight.
func statusFlags(g *globals, fs *flag.FlagSet) func(args []string) int {
	asJSON := fs.Bool("json", false, "print the raw JSON status")
	return func(args []string) int {
		if len(args) > 0 {
			fmt.Fprintf(g.stderr, "tacagent status: unexpected argument %q\n", args[0])
			return exitUsage
		}
		return status(g, *asJSON)
	}
}

// status prints the status, as a table or as the API's JSON.
func status(g *globals, asJSON bool) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := g.client()
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return exitFor(g, "status", err)
	}
	if asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
		return exitOK
	}
	printStatus(g.stdout, st, time.Now())
	return exitOK
}

// printStatus writes the human form of status: a table of the servers, then what each needs explained
// (dead-time, TLS, last error). Every duration carries its unit and every time its zone.
func printStatus(w io.Writer, st *localapi.Status, now time.Time) {
	fmt.Fprintf(w, "tacagent %s (API %s): %d requests pending, %d conversations, spool depth %d\n",
		st.Version, st.APIVersion, st.Pending, st.Conversations, st.SpoolDepth)
	if st.SpoolPath != "" {
		age := "empty"
		if !st.SpoolOldest.IsZero() {
			age = "oldest record " + round(time.Duration(st.SpoolOldestAge*float64(time.Second))).String() + " old"
		}
		paused := ""
		if st.SpoolOutage {
			paused = ", delivery paused: no server reachable"
		}
		fmt.Fprintf(w, "accounting spool %s: %d records (%d bytes), %s, %d dead letters%s\n",
			st.SpoolPath, st.SpoolDepth, st.SpoolBytes, age, st.SpoolDeadLetters, paused)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tADDRESS\tGROUPS\tSTATE\tSINCE\tSINGLE-CONNECT\tIN-FLIGHT\tQUEUED\tTRANSPORT")
	for _, s := range st.Servers {
		groups := strings.Join(s.Groups, ",")
		if groups == "" {
			groups = s.Group
		}
		transport := "plaintext"
		if s.TLS != nil {
			transport = s.TLS.Version
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", orDash(s.Name), s.Addr, orDash(groups), s.State,
			ago(s.Since, now), yesNo(s.SingleConnect), s.InFlight, s.Queued, transport)
	}
	tw.Flush()
	var notes []string
	for _, s := range st.Servers {
		name := s.Name
		if name == "" {
			name = s.Addr
		}
		if !s.DeadUntil.IsZero() && s.DeadUntil.After(now) {
			notes = append(notes, fmt.Sprintf("%s: dead-timed until %s (in %s)", name, stamp(s.DeadUntil), round(s.DeadUntil.Sub(now))))
		}
		if t := s.TLS; t != nil {
			line := fmt.Sprintf("%s: %s with %s, server certificate expires %s (%s)", name, t.Version, orDash(t.PeerIdentity),
				stamp(t.PeerExpiry), until(t.PeerExpiry, now))
			if !t.ClientExpiry.IsZero() {
				line += fmt.Sprintf(", client certificate expires %s (%s)", stamp(t.ClientExpiry), until(t.ClientExpiry, now))
			}
			if t.Resumed {
				line += ", session resumed"
			}
			notes = append(notes, line+", handshake "+ago(t.At, now))
		}
		if s.LastError != "" {
			when := "at an unknown time"
			if !s.LastErrorAt.IsZero() {
				when = ago(s.LastErrorAt, now) + " (" + stamp(s.LastErrorAt) + ")"
			}
			notes = append(notes, fmt.Sprintf("%s: last error %s: %s", name, when, s.LastError))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
}

// stamp is an absolute time with its zone, to the second.
func stamp(t time.Time) string { return t.Format(time.RFC3339) }

// round shortens a duration for people: whole seconds past a minute, milliseconds below a second.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// ago is "3m12s ago", or "-" for a zero time.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if d := now.Sub(t); d > 0 {
		return round(d).String() + " ago"
	}
	return "just now"
}

// until is "in 85d2h" for a future time, "EXPIRED 3h ago" for a past one.
func until(t, now time.Time) string {
	if t.IsZero() {
		return "expiry unknown"
	}
	d := t.Sub(now)
	if d < 0 {
		return "EXPIRED " + days(-d) + " ago"
	}
	return "in " + days(d)
}

// days writes long durations in days and hours ("85d2h"), short ones as Go durations.
func days(d time.Duration) string {
	if d < 48*time.Hour {
		return round(d).String()
	}
	day := 24 * time.Hour
	return fmt.Sprintf("%dd%dh", d/day, (d%day)/time.Hour)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
func (m *multiFlag) Type() string       { return "k=v" }
