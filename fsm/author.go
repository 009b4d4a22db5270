package fsm

import (
	"fmt"

	"github.com/tacagent/tacagent/tacplus"
)

// AuthorState is the state of an authorization session (RFC 8907 section 6).
type AuthorState uint8

// The authorization states. The zero value is not a state.
const (
	AuthorIdle       AuthorState = oneShotIdle  // made, REQUEST not sent
	AuthorAwaitReply AuthorState = oneShotAwait // REQUEST sent (seq_no 1), waiting for the RESPONSE (seq_no 2)
	AuthorDone       AuthorState = oneShotDone  // completed
)

func (s AuthorState) String() string { return oneShotName("AuthorState", uint8(s)) }

// AuthorStates lists every authorization state.
func AuthorStates() []AuthorState { return []AuthorState{AuthorIdle, AuthorAwaitReply, AuthorDone} }

// AuthorConfig describes one authorization request (section 6.1).
type AuthorConfig struct {
	SessionID uint32 // must not be 0
	Method    tacplus.AuthenMethod
	PrivLvl   uint8
	Type      tacplus.AuthenType
	Service   tacplus.AuthenService
	User      string
	Port      string
	RemAddr   string
	// Args are the pairs in wire form: "service=shell", "cmd=show", "cmd-arg=version". The service pair is
	// required, and a shell request needs a cmd pair (section 8.2; an empty cmd authorizes the shell
	// itself). The slice is kept, not copied: do not change it while the machine lives.
	Args []string
}

// AuthorResult is the outcome of an authorization session.
type AuthorResult struct {
	// Status is the RESPONSE's status, or 0 when none was accepted.
	Status tacplus.AuthorStatus
	// Returned are the pairs the server sent.
	Returned Args
	// Effective are the pairs to apply (section 6.2): with PASS_ADD, the request's followed by the
	// returned ones, so that Args.Get finds the server's value first; with PASS_REPL, the returned ones
	// only. Nil unless the request passed.
	Effective Args
	ServerMsg string
	Data      string
	// Err is nil for PASS_ADD and PASS_REPL; FAIL and FOLLOW (treated as FAIL) are tacplus.ErrDenied,
	// ERROR is tacplus.ErrServerError.
	Err error
}

func (r AuthorResult) String() string {
	return fmt.Sprintf("author{status=%s returned=%s effective=%s server_msg=%q data=%q}",
		statusName(r.Status, r.Status == 0), r.Returned, r.Effective, r.ServerMsg, r.Data)
}

// Author is the client's authorization session machine: one REQUEST, one RESPONSE (section 6). It is not
// safe for concurrent use.
type Author struct {
	oneShotMachine[AuthorState]
	req    *tacplus.AuthorRequest
	result AuthorResult
}

// NewAuthor validates cfg and returns a machine in AuthorIdle; an invalid request is a *tacplus.Error of
// class tacplus.ErrConfig.
func NewAuthor(cfg AuthorConfig) (*Author, error) {
	m := new(Author)
	if err := m.Reset(cfg); err != nil {
		return nil, err
	}
	return m, nil
}

// Reset makes m a new machine for cfg, as NewAuthor does.
func (m *Author) Reset(cfg AuthorConfig) error {
	sid := cfg.SessionID
	if sid == 0 {
		return configError(0, nil, "session_id 0: the caller must draw a random session_id (RFC 8907 section 4.1)")
	}
	if err := checkService(sid, cfg.Args); err != nil {
		return err
	}
	req := &tacplus.AuthorRequest{
		Method: cfg.Method, PrivLvl: cfg.PrivLvl, Type: cfg.Type, Service: cfg.Service,
		User: cfg.User, Port: cfg.Port, RemAddr: cfg.RemAddr, Args: cfg.Args,
	}
	var scratch [512]byte
	if _, err := req.AppendBody(scratch[:0]); err != nil {
		return configError(sid, err, "invalid authorization REQUEST")
	}
	// Authorization always uses minor version 0 (section 5.4.1).
	m.core.reset(sid, tacplus.VersionByte(tacplus.MinorVersionDefault), tacplus.TypeAuthor)
	m.state = AuthorIdle
	m.req = req
	m.result = AuthorResult{}
	return nil
}

// checkService applies section 8.2: a service pair is always included, and a shell request names its cmd.
func checkService(sid uint32, args []string) error {
	n, svc := argCount(args, "service")
	if n != 1 {
		return configError(sid, nil, "%d service arguments, want exactly one (RFC 8907 section 8.2)", n)
	}
	if svc == "shell" {
		if c, _ := argCount(args, "cmd"); c != 1 {
			return configError(sid, nil, "service=shell needs exactly one cmd argument, %d given (RFC 8907 section 8.2)", c)
		}
	}
	return nil
}

// Result returns the result; it is final once the machine is Done.
func (m *Author) Result() *AuthorResult { return &m.result }

// Step implements Machine. See the transition table in author_test.go.
func (m *Author) Step(ev Event) ([]Effect, error) {
	return m.step(ev, m.req, m)
}

func (m *Author) fail(class, cause error, msg string) { m.finish(0, class, cause, msg) }

func (m *Author) finish(status tacplus.AuthorStatus, class, cause error, msg string) {
	m.result.Status = status
	if class != nil {
		m.result.Err = m.sessionError(class, m.state.String(), cause, msg)
	}
	m.state = AuthorDone
	m.complete(Effect{Err: m.result.Err, Author: &m.result})
}

func (m *Author) onPacket(ev Event) {
	r, class, cause := acceptReply(&m.core, &ev, "an authorization RESPONSE",
		func(r *tacplus.AuthorResponse) bool { return r.Status == tacplus.AuthorStatusError })
	if class != nil {
		m.finish(0, class, cause, "bad reply")
		return
	}
	returned, err := ParseArgs(r.Args)
	if err != nil {
		m.finish(0, tacplus.ErrProtocol, err, "bad reply")
		return
	}
	m.replied = true
	m.result.Returned, m.result.ServerMsg, m.result.Data = returned, r.ServerMsg, r.Data
	switch r.Status {
	case tacplus.AuthorStatusPassAdd:
		// Section 6.2: the request's pairs are authorized, and the returned ones apply as well.
		eff, _ := appendParsed(make(Args, 0, len(m.req.Args)+len(returned)), m.req.Args) // validated by Reset
		m.result.Effective = append(eff, returned...)
		m.finish(r.Status, nil, nil, "")
	case tacplus.AuthorStatusPassRepl:
		// Section 6.2: the returned pairs (if any) replace the request's.
		m.result.Effective = append(make(Args, 0, len(returned)), returned...)
		m.finish(r.Status, nil, nil, "")
	case tacplus.AuthorStatusFail:
		m.finish(r.Status, tacplus.ErrDenied, nil, serverSaid(r.ServerMsg, "the server answered FAIL"))
	case tacplus.AuthorStatusError:
		m.finish(r.Status, tacplus.ErrServerError, nil, serverSaid(r.ServerMsg, "the server answered ERROR"))
	case tacplus.AuthorStatusFollow:
		m.finish(r.Status, tacplus.ErrDenied, nil,
			serverSaid(r.ServerMsg, "FOLLOW is not supported and counts as FAIL (RFC 8907 section 6.2)"))
	default:
		m.finish(0, tacplus.ErrProtocol, badPacket(tacplus.ReasonEnum, "status", "%s", r.Status), "bad reply")
	}
}
