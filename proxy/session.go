package proxy

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/tacplus"
)

// session is one client session: its session_id and version, the seq_no of its last packet, and, during
// an authentication conversation, whether the client owes a CONTINUE (owed, expect: guarded by c.mu).
type session struct {
	c       *client
	id      uint32
	version uint8
	typ     tacplus.PacketType
	seq     uint8 // seq_no of the client's last packet
	began   time.Time
	in      chan *tacplus.AuthenContinue
	owed    bool
	expect  uint8
	final   bool // the final reply is being written (guarded by c.mu)

	user     string              // the user the rate limit keys on (START's, or the answer to GETUSER)
	attempts []*localapi.Attempt // the slot of the failure rate limit held by this session's secrets
	aborted  bool                // the client sent CONTINUE with ABORT: no reply is owed (section 5.4.3)
	limited  time.Duration       // > 0: a secret was refused by the rate limit; retry after this
}

func kindName(t tacplus.PacketType) string {
	switch t {
	case tacplus.TypeAuthen:
		return "authen"
	case tacplus.TypeAuthor:
		return "author"
	case tacplus.TypeAcct:
		return "acct"
	}
	return "unknown"
}

// reply writes the session's next packet: seq_no one past the client's last, the client's session_id and
// version.
func (ss *session) reply(body tacplus.Body) error {
	h := tacplus.Header{Version: ss.version, Type: ss.typ, SeqNo: ss.seq + 1, Flags: ss.c.replyFlags(), SessionID: ss.id}
	return ss.c.send(h, body)
}

// finish writes the final reply and counts the session; an unencodable reply (a server message the
// codec refuses) becomes an ERROR, so that the client always hears an answer.
func (ss *session) finish(body tacplus.Body, outcome string) {
	ss.c.mu.Lock()
	ss.final = true
	ss.c.mu.Unlock()
	err := ss.reply(body)
	var de *tacplus.DecodeError
	if errors.As(err, &de) {
		outcome = "error"
		err = ss.reply(errorBody(ss.typ, "tacagent: the server's reply cannot be forwarded"))
	}
	kind := kindName(ss.typ)
	ss.c.s.m.Sessions.WithLabelValues(kind, outcome).Inc()
	ss.c.s.m.SessionDuration.WithLabelValues(kind).Observe(time.Since(ss.began).Seconds())
	_ = err // a failed write closed the connection; the client is gone
}

// refuse answers a session a limit refused, with ERROR (the client may try its next server).
func (ss *session) refuse(reason string) {
	ss.finish(errorBody(ss.typ, "tacagent: session refused ("+reason+")"), "refused")
}

// errorBody is the ERROR reply of a packet type.
func errorBody(t tacplus.PacketType, msg string) tacplus.Body {
	switch t {
	case tacplus.TypeAuthen:
		return &tacplus.AuthenReply{Status: tacplus.AuthenStatusError, ServerMsg: msg}
	case tacplus.TypeAuthor:
		return &tacplus.AuthorResponse{Status: tacplus.AuthorStatusError, ServerMsg: msg}
	}
	return &tacplus.AcctReply{Status: tacplus.AcctStatusError, ServerMsg: msg}
}

// noAnswer is the server_msg of an ERROR sent when no server answered: the error's class only (never
// the request's content). A request the agent refused before sending (it breaks a rule of RFC 8907) says
// so.
func noAnswer(err error) string {
	if errors.Is(err, tacplus.ErrConfig) {
		return "tacagent: request refused before sending (" + tacplus.ClassName(err) + ")"
	}
	return "tacagent: no TACACS+ server answered (" + tacplus.ClassName(err) + ")"
}

func (ss *session) run(body tacplus.Body) {
	switch b := body.(type) {
	case *tacplus.AuthenStart:
		ss.authenticate(b)
	case *tacplus.AuthorRequest:
		ss.authorize(b)
	case *tacplus.AcctRequest:
		ss.account(b)
	default: // cannot happen: the reader starts sessions on these three only
		ss.finish(errorBody(ss.typ, "tacagent: unexpected packet"), "error")
	}
}

func (ss *session) authorize(b *tacplus.AuthorRequest) {
	ctx, cancel := context.WithTimeout(ss.c.ctx, ss.c.s.cfg.RequestTimeout)
	defer cancel()
	req := agent.AuthorRequest{Method: b.Method, PrivLvl: b.PrivLvl, Type: b.Type, Service: b.Service, User: b.User,
		Port: b.Port, RemAddr: b.RemAddr, Args: b.Args}
	res, err := ss.c.s.cfg.Backend.Authorize(ctx, req)
	if ss.c.ctx.Err() != nil {
		return // the client went away
	}
	out := &tacplus.AuthorResponse{}
	if res != nil {
		out.Status, out.ServerMsg, out.Data = res.Status, res.ServerMsg, res.Data
		out.Args = res.Returned.Strings()
	}
	switch out.Status {
	case tacplus.AuthorStatusPassAdd, tacplus.AuthorStatusPassRepl, tacplus.AuthorStatusFail, tacplus.AuthorStatusError:
	case tacplus.AuthorStatusFollow: // the agent's servers are the client's: never send it elsewhere
		out = &tacplus.AuthorResponse{Status: tacplus.AuthorStatusFail, ServerMsg: out.ServerMsg}
	default:
		out = &tacplus.AuthorResponse{Status: tacplus.AuthorStatusError, ServerMsg: noAnswer(err)}
	}
	ss.c.s.log.Info().Str("peer", ss.c.peer.String()).Str("user", b.User).Str("cmd", firstCmd(b.Args)).Str("status", out.Status.String()).AnErr("error", err).Msg("tacacs front end: authorize")
	ss.finish(out, out.Status.String())
}

// firstCmd is the command name of an authorization (cmd=), never its arguments.
func firstCmd(args []string) string {
	for _, a := range args {
		if n, v, _, ok := tacplus.SplitArg(a); ok && n == "cmd" {
			return v
		}
	}
	return ""
}

func (ss *session) account(b *tacplus.AcctRequest) {
	ctx, cancel := context.WithTimeout(ss.c.ctx, ss.c.s.cfg.RequestTimeout)
	defer cancel()
	req := agent.AcctRequest{Flags: b.Flags, Method: b.Method, PrivLvl: b.PrivLvl, Type: b.Type, Service: b.Service,
		User: b.User, Port: b.Port, RemAddr: b.RemAddr, Args: b.Args}
	msg, err := ss.c.s.cfg.Backend.Account(ctx, req)
	if ss.c.ctx.Err() != nil {
		return
	}
	out := &tacplus.AcctReply{Status: tacplus.AcctStatusSuccess, ServerMsg: msg}
	if err != nil {
		out = &tacplus.AcctReply{Status: tacplus.AcctStatusError, ServerMsg: "tacagent: record not taken (" + tacplus.ClassName(err) + ")"}
	}
	ss.c.s.log.Info().Str("peer", ss.c.peer.String()).Str("user", b.User).Str("flags", b.Flags.String()).Str("status", out.Status.String()).AnErr("error", err).Msg("tacacs front end: account")
	ss.finish(out, out.Status.String())
}

func (ss *session) authenticate(b *tacplus.AuthenStart) {
	ss.user = b.User
	switch {
	case b.Action == tacplus.ActionSendAuth:
		ss.unsupported("sendauth is not forwarded (RFC 8907 defines no flow for it)")
		return
	}
	req := agent.AuthenRequest{Action: b.Action, Type: b.Type, Service: b.Service, PrivLvl: b.PrivLvl, User: b.User,
		Port: b.Port, RemAddr: b.RemAddr}
	ctx, cancel := context.WithCancel(ss.c.ctx)
	defer cancel()
	switch b.Type {
	case tacplus.AuthenTypePAP:
		if !ss.reserve(ctx, b.RemAddr) {
			ss.rateLimited()
			return
		}
		req.Password = []byte(b.Data)
	case tacplus.AuthenTypeCHAP, tacplus.AuthenTypeMSCHAP, tacplus.AuthenTypeMSCHAPv2:
		// The client computed the response from its challenge; the agent forwards the START data as it
		// is (checked by the session's machine: a malformed one is refused before it is sent).
		if !ss.reserve(ctx, b.RemAddr) {
			ss.rateLimited()
			return
		}
		req.Prepared = []byte(b.Data)
	}
	res, err := ss.c.s.cfg.Backend.Authenticate(ctx, req, ss.conversation(b.RemAddr))
	clear(req.Password)
	clear(req.Prepared)
	ss.settle(res, err)
	if ss.aborted || ss.c.ctx.Err() != nil {
		return // section 5.4.3: nothing answers an ABORT; or the client went away
	}
	if ss.limited > 0 {
		ss.rateLimited()
		return
	}
	out := &tacplus.AuthenReply{}
	if res != nil {
		out.Status, out.ServerMsg, out.Data = res.Status, res.ServerMsg, res.Data
	}
	switch out.Status {
	case tacplus.AuthenStatusPass, tacplus.AuthenStatusFail, tacplus.AuthenStatusError, tacplus.AuthenStatusRestart:
	case tacplus.AuthenStatusFollow:
		out = &tacplus.AuthenReply{Status: tacplus.AuthenStatusFail, ServerMsg: out.ServerMsg}
	default:
		out = &tacplus.AuthenReply{Status: tacplus.AuthenStatusError, ServerMsg: noAnswer(err)}
	}
	user := ss.user
	if res != nil && res.User != "" {
		user = res.User
	}
	ss.c.s.log.Info().Str("peer", ss.c.peer.String()).Str("user", user).Str("type", b.Type.String()).Str("status", out.Status.String()).AnErr("error", err).Msg("tacacs front end: authenticate")
	ss.finish(out, out.Status.String())
}

func (ss *session) unsupported(msg string) {
	ss.c.s.m.Rejected.WithLabelValues(rejectUnsupported).Inc()
	ss.finish(&tacplus.AuthenReply{Status: tacplus.AuthenStatusError, ServerMsg: "tacagent: " + msg}, "unsupported")
}

// rateLimited answers FAIL, not ERROR: a client must not take a refusal for "no server", which PAM
// stacks turn into a local fallback.
func (ss *session) rateLimited() {
	ss.c.s.m.RateLimited.Inc()
	ss.c.s.m.Rejected.WithLabelValues(rejectRateLimited).Inc()
	after := max(ss.limited, time.Second)
	ss.c.s.log.Warn().Str("peer", ss.c.peer.String()).Str("user", ss.user).Dur("retry_after", after).Msg("tacacs front end: authentication rate limited")
	ss.finish(&tacplus.AuthenReply{Status: tacplus.AuthenStatusFail,
		ServerMsg: "too many failed authentications; retry in " + strconv.Itoa(int(after.Round(time.Second)/time.Second)) + "s"}, "rate_limited")
}

// reserve takes a slot of the failure rate limit before the session's first secret is forwarded. A
// session holds one slot at most: its later secrets (a one-time code after the password) ride on it, so
// that sessions holding every free slot never wait for each other.
func (ss *session) reserve(ctx context.Context, remAddr string) bool {
	l := ss.c.s.cfg.Limiter
	if l == nil || len(ss.attempts) > 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, ss.c.s.cfg.RequestTimeout) // a wait for a free slot is bounded
	defer cancel()
	var a *localapi.Attempt
	var after time.Duration
	if ss.c.peer.known {
		a, _, after = l.ReserveUID(ctx, ss.c.peer.uid, ss.user, remAddr)
	} else {
		a, _, after = l.ReservePeer(ctx, ss.c.peer.addr)
	}
	if a == nil {
		ss.limited = after
		return false
	}
	ss.attempts = append(ss.attempts, a)
	return true
}

// settle ends the session's rate-limit slots: PASS clears, no answer returns the slots, anything else is
// a failure (an abort after a wrong password must not hide it).
func (ss *session) settle(res *agent.AuthenReply, err error) {
	for _, a := range ss.attempts {
		switch {
		case err == nil && res != nil && res.Status == tacplus.AuthenStatusPass:
			a.Pass()
		case (res == nil || res.Status == 0) && !ss.aborted && unanswered(err):
			a.Void()
		default:
			a.Fail()
		}
	}
	ss.attempts = nil
}

// unanswered reports whether err says no server judged the secret.
func unanswered(err error) bool {
	for _, c := range []error{tacplus.ErrUnreachable, tacplus.ErrTimeout, tacplus.ErrConnectionLost, tacplus.ErrBadSecret, tacplus.ErrServerError} {
		if errors.Is(err, c) {
			return true
		}
	}
	return false
}

// errAborted ends a conversation the client aborted, or one it did not answer in time.
var errAborted = errors.New("the client ended the conversation")

// conversation relays the agent's prompts to the client as REPLY packets and returns its CONTINUE
// answers.
func (ss *session) conversation(remAddr string) agent.Conversation {
	return func(ctx context.Context, p agent.Prompt) ([]byte, error) {
		if ss.seq >= 253 { // the CONTINUE would be 255, which nothing could answer (section 4.1)
			return nil, errAborted
		}
		out := &tacplus.AuthenReply{Status: p.Status, ServerMsg: p.Message}
		if p.NoEcho {
			out.Flags = tacplus.FlagNoEcho
		}
		c := ss.c
		c.mu.Lock()
		ss.owed, ss.expect = true, ss.seq+2
		c.mu.Unlock()
		if err := ss.reply(out); err != nil {
			return nil, errAborted
		}
		t := time.NewTimer(c.s.cfg.ConversationTimeout)
		defer t.Stop()
		var cont *tacplus.AuthenContinue
		select {
		case cont = <-ss.in:
		case <-t.C:
			c.s.m.Timeouts.WithLabelValues("conversation").Inc()
			c.s.log.Info().Str("peer", c.peer.String()).Dur("conversation_timeout", c.s.cfg.ConversationTimeout).Msg("tacacs front end: client did not answer a prompt, closed")
			c.close()
			return nil, errAborted
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		ss.seq += 2
		if cont.Flags&tacplus.FlagAbort != 0 {
			ss.aborted = true
			return nil, errAborted
		}
		if p.Status == tacplus.AuthenStatusGetUser {
			ss.user = cont.UserMsg
		}
		if p.NoEcho || p.Status == tacplus.AuthenStatusGetPass {
			if !ss.reserve(ctx, remAddr) {
				return nil, errAborted
			}
		}
		return []byte(cont.UserMsg), nil
	}
}
