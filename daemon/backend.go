package daemon

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/policy"
	"github.com/tacagent/tacagent/tacplus"
)

// Backend returns the local API's view of the daemon. Each call runs on the runtime current when it
// starts, so a reload never changes a request half-way.
func (d *Daemon) Backend() localapi.Backend { return backend{d} }

type backend struct{ d *Daemon }

// maxReloadRetries bounds how many retired runtimes one request may meet in a row (reloads in a tight
// loop). A refusal costs microseconds and sends nothing, so the bound only guards against a loop.
const maxReloadRetries = 16

// onCurrent runs f on the current runtime and, when a reload retired that runtime's agent before f could
// send anything (agent.ErrClosed, or the supervisor's drain refusal: see retryable), again on the runtime
// current now, so that a request arriving during a reload never fails because of it. A reload stores the
// new runtime before it closes the old agent, so the retry finds the new one; the daemon's own shutdown
// sets closing first, so its refusals are final.
func onCurrent[T any](b backend, f func(rt *runtime) (T, error)) (T, error) {
	res, err := f(b.d.cur.Load())
	for i := 0; i < maxReloadRetries && retryable(err) && !b.d.closing.Load(); i++ {
		res, err = f(b.d.cur.Load())
	}
	return res, err
}

func (b backend) Authenticate(ctx context.Context, caller localapi.Caller, req localapi.AuthenRequest, conv localapi.Conversation) (localapi.AuthenResult, error) {
	return onCurrent(b, func(rt *runtime) (localapi.AuthenResult, error) { return b.authenticate(ctx, rt, caller, req, conv) })
}

func (b backend) Authorize(ctx context.Context, caller localapi.Caller, req localapi.AuthorRequest) (localapi.AuthorResult, error) {
	return onCurrent(b, func(rt *runtime) (localapi.AuthorResult, error) { return b.authorize(ctx, rt, caller, req) })
}

func (b backend) Account(ctx context.Context, caller localapi.Caller, req localapi.AcctRequest) (localapi.AcctResult, error) {
	b.d.noteAccounting(caller, req) // a PAM session's START or STOP: the audit session table (sessions.go)
	return onCurrent(b, func(rt *runtime) (localapi.AcctResult, error) { return b.account(ctx, rt, caller, req) })
}

func (b backend) authenticate(ctx context.Context, rt *runtime, caller localapi.Caller, req localapi.AuthenRequest, conv localapi.Conversation) (localapi.AuthenResult, error) {
	preq := policy.Request{User: req.User, Password: policy.Password(req.Password), PrivLvl: uint8(req.PrivLvl),
		Port: req.Port, RemAddr: req.RemAddr, Renew: req.Renew, Service: policy.Login, Type: policy.ASCII}
	if req.Service == localapi.ServiceEnable {
		preq.Service = policy.Enable
	}
	if req.Type != "" {
		t, err := policy.ParseAuthenType(req.Type)
		if err != nil {
			return localapi.AuthenResult{}, &tacplus.Error{Class: tacplus.ErrProtocol, Msg: err.Error()}
		}
		preq.Type = t
	}
	if req.Action == localapi.ActionChpass {
		return b.chpass(ctx, rt, caller, req, conv)
	}
	var pconv policy.Conversation
	if conv != nil {
		pconv = func(ctx context.Context, instruction string, prompts []policy.Prompt) ([]string, error) {
			if len(prompts) == 0 {
				if instruction != "" {
					_, err := conv(ctx, localapi.Prompt{Message: instruction, Echo: true, Kind: localapi.PromptInfo})
					return nil, err
				}
				return nil, nil
			}
			answers := make([]string, 0, len(prompts))
			for _, p := range prompts {
				kind := localapi.PromptData
				if !p.Echo {
					kind = localapi.PromptPassword
				}
				a, err := conv(ctx, localapi.Prompt{Message: p.Text, Echo: p.Echo, Kind: kind})
				if err != nil {
					return nil, err
				}
				answers = append(answers, a)
			}
			return answers, nil
		}
	}
	// One info line per login (the result, below); the start is for debugging only (per-login logging is
	// kept to a few per cent of the daemon's CPU: docs/perf.md).
	b.d.log.Debug().Str("user", req.User).Str("type", preq.Type.String()).Str("caller", caller.String()).Msg("authenticate")
	auth, rc, err := rt.stack.Authenticate(ctx, preq, pconv, nil)
	res := localapi.AuthenResult{User: req.User}
	if auth != nil {
		for _, e := range auth.Entries {
			le := localapi.Entry{Kind: e.Kind.String(), Value: e.Value, User: e.User, Handler: e.Handler,
				Server: e.Server, AuthenType: e.AuthenType.String(), Time: e.Time}
			for _, a := range e.Attrs {
				le.Attributes = append(le.Attributes, a.String())
			}
			res.Entries = append(res.Entries, le)
			if e.User != "" {
				res.User = e.User
			}
			if e.Server != "" {
				res.Server = e.Server
			}
		}
	}
	outcome := "ok"
	if err != nil {
		outcome = tacplus.ClassName(err)
		res.Error = &localapi.ErrorBody{Code: tacplus.ClassName(err), Message: err.Error()}
		var denial *policy.Denial
		if rc != nil && errors.As(err, &denial) && denial.Class != nil {
			// The denial's own message is its class plus the explanation: send them apart, once each.
			res.Error.Message, res.Error.Explanation = denial.Class.Error(), rc.Explain()
		}
	}
	b.d.m.PolicyDecisions.WithLabelValues(outcome).Inc()
	ev := b.d.log.Info()
	if err != nil {
		ev = b.d.log.Warn().Err(err)
	}
	ev.Str("user", res.User).Str("caller", caller.String()).Msg("authentication result")
	return res, err
}

// chpass changes a password with CHPASS (RFC 8907 section 5.4.2.7: ASCII only) on the default group,
// outside the authentication stack: a password lives on the servers, and a local handler has none to
// change. The server drives the prompts (old password, then new) through conv, as for a login.
func (b backend) chpass(ctx context.Context, rt *runtime, caller localapi.Caller, req localapi.AuthenRequest, conv localapi.Conversation) (localapi.AuthenResult, error) {
	res := localapi.AuthenResult{User: req.User}
	if req.Type != localapi.TypeASCII {
		return res, &tacplus.Error{Class: tacplus.ErrProtocol, Msg: "chpass is ASCII only (RFC 8907 section 5.4.2.7)"}
	}
	areq := agent.AuthenRequest{Action: tacplus.ActionChPass, Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin,
		PrivLvl: uint8(req.PrivLvl), User: req.User, Port: req.Port, RemAddr: req.RemAddr}
	if req.Service == localapi.ServiceEnable {
		areq.Service = tacplus.ServiceEnable
	}
	var aconv agent.Conversation
	if conv != nil {
		aconv = func(ctx context.Context, p agent.Prompt) ([]byte, error) {
			kind := localapi.PromptData
			switch p.Status {
			case tacplus.AuthenStatusGetUser:
				kind = localapi.PromptUser
			case tacplus.AuthenStatusGetPass:
				kind = localapi.PromptPassword
			}
			answer, err := conv(ctx, localapi.Prompt{Message: p.Message, Echo: !p.NoEcho, Kind: kind})
			return []byte(answer), err
		}
	}
	r, err := rt.agent.Authenticate(ctx, areq, aconv)
	if r != nil {
		res.Server, res.SessionID, res.ServerMsg = r.Server, r.SessionID, r.ServerMsg
	}
	if err != nil {
		res.Error = &localapi.ErrorBody{Code: tacplus.ClassName(err), Message: err.Error()}
	}
	b.d.log.Info().Str("user", req.User).Str("caller", caller.String()).AnErr("error", err).Msg("chpass")
	return res, err
}

func (b backend) authorize(ctx context.Context, rt *runtime, caller localapi.Caller, req localapi.AuthorRequest) (localapi.AuthorResult, error) {
	areq := agent.AuthorRequest{Method: tacplus.MethodTACACSPlus, PrivLvl: uint8(req.PrivLvl), Type: tacplus.AuthenTypeASCII,
		Service: tacplus.ServiceLogin, User: req.User, Port: req.Port, RemAddr: req.RemAddr, Args: req.Pairs()}
	r, err := rt.agent.Authorize(ctx, areq, agent.InGroup(rt.settings.AuthorGroup))
	res := localapi.AuthorResult{}
	if r != nil {
		res.Server, res.SessionID, res.ServerMsg = r.Server, r.SessionID, r.ServerMsg
		res.Args, res.Effective = r.Returned.Strings(), r.Effective.Strings()
	}
	// Argument values may hold secrets: the command alone at info, its arguments at debug, and never
	// those of a secret-bearing command.
	cmd := commandOf(req.Cmd, areq.Args)
	first, _, _ := strings.Cut(cmd, " ")
	b.d.log.Info().Str("user", req.User).Str("cmd", first).Str("caller", caller.String()).AnErr("error", err).Msg("authorize")
	if ev := b.d.log.Debug(); ev.Enabled() {
		secrets := rt.settings.SecretCommands
		if secrets == nil {
			secrets = DefaultSecretCommands
		}
		if secretCommand(secrets, cmd) {
			ev.Str("user", req.User).Str("cmd", first).Str("av", "[withheld: secret-bearing command]").Msg("authorize arguments")
		} else {
			ev.Str("user", req.User).Strs("av", areq.Args).Msg("authorize arguments")
		}
	}
	return res, err
}

func (b backend) account(ctx context.Context, rt *runtime, caller localapi.Caller, req localapi.AcctRequest) (localapi.AcctResult, error) {
	flags, ok := map[string]tacplus.AcctFlag{
		localapi.FlagStart: tacplus.AcctFlagStart, localapi.FlagStop: tacplus.AcctFlagStop,
		localapi.FlagWatchdog: tacplus.AcctFlagWatchdog, localapi.FlagUpdate: tacplus.AcctFlagWatchdog | tacplus.AcctFlagStart,
	}[req.Flags]
	if !ok {
		return localapi.AcctResult{}, &tacplus.Error{Class: tacplus.ErrProtocol, Msg: "flags must be start, stop, watchdog or update, not " + strconv.Quote(req.Flags)}
	}
	// Who asked comes first, from the kernel (SO_PEERCRED): caller_uid, caller_gid, caller_pid, as optional
	// pairs (section 6.1: a server may ignore them). A server that shows or keeps only the first pairs of a
	// record still shows who sent it; a caller cannot forge them (the local API refuses caller_* pairs).
	args := localapi.CallerAttributes(caller)
	if req.TaskID != "" {
		args = append(args, tacplus.Arg("task_id", req.TaskID))
	}
	args = append(args, req.AV...)
	if !hasService(args) {
		args = append(args, "service=shell")
	}
	areq := agent.AcctRequest{Flags: flags, Method: tacplus.MethodTACACSPlus, PrivLvl: uint8(req.PrivLvl),
		Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin, User: req.User, Port: req.Port, RemAddr: req.RemAddr, Args: args}
	if b.d.spool != nil && req.Ack == localapi.AckQueued {
		return b.queued(ctx, caller, req, areq)
	}
	if b.d.spool != nil && req.Ack == localapi.AckDurable {
		return b.durable(ctx, caller, req, areq)
	}
	if b.d.spool != nil {
		return b.spooled(ctx, caller, req, areq)
	}
	r, err := rt.agent.Account(ctx, areq, agent.InGroup(rt.settings.AcctGroup))
	res := localapi.AcctResult{}
	if r != nil {
		res.Server, res.SessionID, res.ServerMsg = r.Server, r.SessionID, r.ServerMsg
	}
	b.d.log.Info().Str("user", req.User).Str("flags", req.Flags).Str("task_id", req.TaskID).Str("caller", caller.String()).AnErr("error", err).Msg("account")
	return res, err
}

// spooled makes the record durable, then waits for its first delivery attempt (never longer than the
// caller's deadline). A record no server took yet is answered spooled, with the reason as its error.
func (b backend) spooled(ctx context.Context, caller localapi.Caller, req localapi.AcctRequest, areq agent.AcctRequest) (localapi.AcctResult, error) {
	res := localapi.AcctResult{}
	tk, err := b.d.spool.Append(ctx, "", areq)
	if err != nil {
		b.d.log.Warn().Str("user", req.User).Str("flags", req.Flags).Str("task_id", req.TaskID).Str("caller", caller.String()).Err(err).Msg("account: not accepted by the spool")
		return res, err
	}
	o, _ := tk.Wait(ctx)
	if o.Delivered {
		res.Server, res.SessionID, res.ServerMsg = o.Server, o.SessionID, o.ServerMsg
		b.d.log.Info().Str("user", req.User).Str("flags", req.Flags).Str("task_id", req.TaskID).Str("caller", caller.String()).Uint64("seq", tk.Seq).Str("server", o.Server).Msg("account")
		return res, nil
	}
	res.Spooled, res.Server, res.ServerMsg = true, o.Server, o.ServerMsg
	err = o.Err
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = &tacplus.Error{Class: tacplus.ErrTimeout, Msg: "spooled: no server answered before the caller's deadline; the agent keeps the record and sends it later", Err: err}
	}
	b.d.log.Info().Str("user", req.User).Str("flags", req.Flags).Str("task_id", req.TaskID).Str("caller", caller.String()).Uint64("seq", tk.Seq).AnErr("reason", err).Msg("account: spooled")
	return res, err
}

// durable answers once the spool has committed the record (localapi.ResultDurable), without waiting for
// its delivery.
func (b backend) durable(ctx context.Context, caller localapi.Caller, req localapi.AcctRequest, areq agent.AcctRequest) (localapi.AcctResult, error) {
	tk, err := b.d.spool.Append(ctx, "", areq)
	if err != nil {
		b.d.log.Warn().Str("user", req.User).Str("flags", req.Flags).Str("task_id", req.TaskID).Str("caller", caller.String()).Err(err).Msg("account: not accepted by the spool")
		return localapi.AcctResult{}, err
	}
	b.d.log.Info().Str("user", req.User).Str("flags", req.Flags).Str("task_id", req.TaskID).Str("caller", caller.String()).Uint64("seq", tk.Seq).Msg("account: durable")
	return localapi.AcctResult{Result: localapi.ResultDurable}, nil
}

// queued hands the record to the spool in order and answers without waiting for its commit
// (localapi.ResultQueued); the commit's outcome is logged.
func (b backend) queued(ctx context.Context, caller localapi.Caller, req localapi.AcctRequest, areq agent.AcctRequest) (localapi.AcctResult, error) {
	p, err := b.d.spool.Enqueue(ctx, "", areq)
	if err != nil {
		b.d.log.Warn().Str("user", req.User).Str("flags", req.Flags).Str("task_id", req.TaskID).Str("caller", caller.String()).Err(err).Msg("account: not accepted by the spool")
		return localapi.AcctResult{}, err
	}
	b.d.bg.Add(1)
	go func() {
		defer b.d.bg.Done()
		if _, err := p.Wait(context.Background()); err != nil {
			b.d.log.Warn().Str("user", req.User).Str("flags", req.Flags).Str("task_id", req.TaskID).Str("caller", caller.String()).Err(err).Msg("account: a queued record was not committed")
		}
	}()
	return localapi.AcctResult{Result: localapi.ResultQueued}, nil
}

func hasService(args []string) bool {
	for _, a := range args {
		if n, _, _, ok := tacplus.SplitArg(a); ok && n == "service" {
			return true
		}
	}
	return false
}

func (b backend) Status(ctx context.Context) (localapi.Status, error) {
	st, err := b.d.cur.Load().agent.Status(ctx)
	if err != nil {
		return localapi.Status{}, err
	}
	out := localapi.Status{Pending: st.Pending}
	if sp := b.d.spool; sp != nil {
		ss := sp.Stats()
		out.SpoolPath, out.SpoolDepth, out.SpoolBytes, out.SpoolDeadLetters, out.SpoolOutage = ss.Path, ss.Depth, ss.Bytes, ss.DeadLetters, ss.Outage
		if !ss.Oldest.IsZero() {
			out.SpoolOldest = ss.Oldest.UTC()
			out.SpoolOldestAge = max(0, time.Since(ss.Oldest).Seconds())
		}
	}
	for _, s := range st.Servers {
		ls := localapi.ServerStatus{Name: s.Name, Addr: s.Addr, Groups: s.Groups, State: s.State, Since: s.Since,
			DeadUntil: s.DeadUntil, SingleConnect: s.SingleConnect, InFlight: s.InFlight, Queued: s.Queued,
			Connections: s.Connections, Open: s.Open, LastError: s.LastError, LastErrorAt: s.LastErrorAt}
		if len(s.Groups) > 0 {
			ls.Group = s.Groups[0]
		}
		if t := s.TLS; t != nil {
			ls.TLS = &localapi.TLSInfo{Version: t.Version, PeerIdentity: t.PeerIdentity, PeerExpiry: t.PeerExpiry,
				ClientExpiry: t.ClientExpiry, Resumed: t.Resumed, At: t.At}
		}
		out.Servers = append(out.Servers, ls)
	}
	return out, nil
}
