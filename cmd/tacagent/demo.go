package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/daemon"
	"github.com/tacagent/tacagent/internal/tacquitoserver"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/spool"
	"github.com/tacagent/tacagent/tacplus"
)

// The demo's account on the embedded server.
const (
	demoUser     = "alice"
	demoPassword = "alice-demo-password"
)

// cmdDemo starts tacquito's TACACS+ server on loopback, runs the daemon against it with a temporary config
// and socket, and drives a login, a failed login, authorizations and accounting through the local API.
func demoFlags(g *globals, fs *flag.FlagSet) func(args []string) int {
	serve := fs.Bool("serve", false, "keep running after the round trip, until Ctrl-C")
	metricsAddr := fs.String("metrics", "127.0.0.1:0", "address of the /metrics, /healthz and /readyz listener")
	return func(args []string) int {
		if len(args) > 0 {
			fmt.Fprintf(g.stderr, "tacagent demo: unexpected argument %q\n", args[0])
			return exitUsage
		}
		return runDemo(g, *metricsAddr, *serve)
	}
}

// runDemo runs the demo, and keeps serving with serve until SIGINT or SIGTERM.
func runDemo(g *globals, metricsAddr string, serve bool) int {
	if !g.given("log-level") {
		g.logLevel = "error" // the demo prints its own story; the daemon's logs would drown it
	}
	log, err := g.logger()
	if err != nil {
		fmt.Fprintln(g.stderr, "tacagent:", err)
		return exitUsage
	}
	ctx, stop := signalContext()
	defer stop()
	d := &demo{out: g.stdout, log: log}
	if err := d.run(ctx, metricsAddr, serve); err != nil {
		fmt.Fprintf(g.stderr, "\ndemo failed: %v\n", err)
		return exitError
	}
	return exitOK
}

type demo struct {
	out    io.Writer
	log    zerolog.Logger
	failed []string
}

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

// check records an unexpected result; the demo exits non-zero when any step surprised it.
func (d *demo) check(ok bool, what string) {
	mark := "ok"
	if !ok {
		mark = "UNEXPECTED"
		d.failed = append(d.failed, what)
	}
	d.printf("   -> %s\n", mark)
}

func (d *demo) run(ctx context.Context, metricsAddr string, serve bool) error {
	keyBytes := make([]byte, 16)
	if _, err := rand.Read(keyBytes); err != nil {
		return err
	}
	key := []byte(hex.EncodeToString(keyBytes)) // 32 characters, random per run, never printed

	tl, err := newDemoTLS()
	if err != nil {
		return fmt.Errorf("making the demo's in-memory CA: %w", err)
	}
	srv, err := tacquitoserver.Start(tacquitoserver.Config{Key: key, TLS: tl.server, Users: []tacquitoserver.User{{
		Name: demoUser, Password: demoPassword, PrivLvl: 15, Permit: []string{"show"}, Deny: []string{"reload"}}}})
	if err != nil {
		return fmt.Errorf("starting the TACACS+ server: %w", err)
	}
	defer srv.Close()
	d.printf("tacagent demo\n\n")
	d.printf("1. Started a real TACACS+ server: tacquito (github.com/facebookincubator/tacquito), in-process on %s.\n", srv.Addr())
	d.printf("   It knows one user, %q (password %q), who may run 'show ...' but not 'reload'.\n", demoUser, demoPassword)
	d.printf("   It speaks TACACS+ over TLS 1.3 (RFC 9887) with a certificate for %s from a CA made in memory\n", demoServerName)
	d.printf("   for this run; inside TLS there is no obfuscation and no shared key on the wire.\n")

	dir, err := os.MkdirTemp("", "tacagent-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "tacagent.sock")
	dmn, err := daemon.New(daemon.Settings{
		Agent:       agent.Config{Servers: []agent.Server{tl.agentServer(srv.Addr())}},
		Groups:      []string{"default"},
		MetricsAddr: metricsAddr,
		// The durable accounting spool, in the demo's temporary directory (the daemon's is /var/lib/tacagent).
		Spool: &spool.Config{Path: filepath.Join(dir, "spool.db")},
	}, d.log)
	if err != nil {
		return fmt.Errorf("starting the agent: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = dmn.Shutdown(sctx)
	}()
	if err := dmn.ServeAPI(sock, 0o600, localapi.Config{Log: d.log, AgentVersion: version}); err != nil {
		return fmt.Errorf("starting the local API: %w", err)
	}
	d.printf("2. Started the agent against it, with its local API on %s\n   and /metrics on http://%s/metrics.\n\n", sock, dmn.HTTPAddr())

	c := localapi.NewClient(sock)
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	d.printf("3. ASCII login through the local API; the server drives the prompts:\n")
	res, err := c.Authenticate(rctx, localapi.AuthenRequest{Type: localapi.TypeASCII, Port: "demo", RemAddr: "127.0.0.1"},
		func(_ context.Context, p localapi.Prompt) (string, error) {
			answer, shown := demoUser, demoUser
			if !p.Echo {
				answer, shown = demoPassword, strings.Repeat("*", len(demoPassword))+"   (NOECHO: not echoed)"
			}
			d.printf("   server asks %q -> answering %s\n", p.Message, shown)
			return answer, nil
		})
	if res == nil {
		res = &localapi.AuthenResult{}
	}
	d.printf("   result: %s (server %s)\n", resultOf(res.Result, err), res.Server)
	d.check(err == nil && res.Result == localapi.ResultPass, "ASCII login")

	d.printf("\n4. PAP login with a wrong password:\n")
	_, err = c.Authenticate(rctx, localapi.AuthenRequest{User: demoUser, Password: "not-the-password", Type: localapi.TypePAP}, nil)
	d.printf("   result: %s\n", resultOf("", err))
	d.check(errors.Is(err, tacplus.ErrAuthenticationFailed), "failing PAP login")

	d.printf("\n5. Authorization of 'show version' for %s:\n", demoUser)
	ar, err := c.Authorize(rctx, localapi.AuthorRequest{User: demoUser, Cmd: "show", Args: []string{"version"}})
	if ar == nil {
		ar = &localapi.AuthorResult{}
	}
	d.printf("   result: %s, pairs to apply: %v\n", resultOf(ar.Result, err), ar.Effective)
	d.check(err == nil && ar.Result == localapi.ResultPermit, "authorization permit")

	d.printf("\n6. Authorization of %s's shell session (empty cmd): the server returns the privilege level:\n", demoUser)
	ar, err = c.Authorize(rctx, localapi.AuthorRequest{User: demoUser, AV: []string{"service=shell", "cmd="}})
	if ar == nil {
		ar = &localapi.AuthorResult{}
	}
	d.printf("   result: %s, returned pairs: %v\n", resultOf(ar.Result, err), ar.Args)
	d.check(err == nil && ar.Result == localapi.ResultPermit, "session authorization")

	d.printf("\n7. Authorization of 'reload' for %s:\n", demoUser)
	_, err = c.Authorize(rctx, localapi.AuthorRequest{User: demoUser, Cmd: "reload"})
	d.printf("   result: %s\n", resultOf("", err))
	d.check(errors.Is(err, tacplus.ErrDenied), "authorization deny")

	d.printf("\n8. Accounting START and STOP for task 4242 (each fsynced to the spool %s first):\n", dmn.Spool().Path())
	for _, flags := range []string{localapi.FlagStart, localapi.FlagStop} {
		cr, err := c.Account(rctx, localapi.AcctRequest{Flags: flags, User: demoUser, TaskID: "4242", Port: "demo",
			AV: []string{"service=shell"}})
		if cr == nil {
			cr = &localapi.AcctResult{}
		}
		d.printf("   %-5s -> %s (server %s)\n", flags, resultOf(cr.Result, err), cr.Server)
		d.check(err == nil && cr.Result == localapi.ResultOK, "accounting "+flags)
	}
	recs := srv.Accounting()
	d.printf("   the server recorded %d accounting records for task 4242\n", len(recs))
	d.check(len(recs) == 2, "accounting records at the server")
	if st, err := c.Status(rctx); err == nil {
		d.printf("   spool depth now %d (a record is deleted once a server answered SUCCESS)\n", st.SpoolDepth)
	}

	d.printf("\n9. TLS: ")
	what, ok := tl.describe()
	d.printf("%s\n", what)
	d.check(ok, "TLS 1.3 with a verified identity")

	d.printf("\n10. See it from the outside:\n")
	d.printf("   curl -s http://%s/metrics | grep '^tacagent_sessions'\n", dmn.HTTPAddr())
	d.printf("   curl -s --unix-socket %s http://localhost/v1/status\n", sock)
	if len(d.failed) > 0 {
		return fmt.Errorf("unexpected results: %s", strings.Join(d.failed, ", "))
	}
	if !serve {
		d.printf("\nAll steps behaved as expected. (Run 'tacagent demo --serve' to keep the agent running and try the curl lines.)\n")
		return nil
	}
	d.printf("\nServing until Ctrl-C.\n")
	<-ctx.Done()
	return nil
}

// resultOf renders a result and its error for the demo's output: the server's verdict first.
func resultOf(result string, err error) string {
	switch {
	case err == nil:
		return result
	case errors.Is(err, tacplus.ErrAuthenticationFailed):
		result = "fail"
	case errors.Is(err, tacplus.ErrDenied):
		result = "deny"
	case result == "":
		result = "error"
	}
	return fmt.Sprintf("%s: %v", result, err)
}
