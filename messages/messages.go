package messages

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/tacplus"
)

// Kind is the kind of a TACACS+ session.
type Kind uint8

// The three kinds (RFC 8907 sections 5, 6 and 7).
const (
	KindAuthen Kind = iota + 1
	KindAuthor
	KindAcct
)

// String gives the metric label of the kind.
func (k Kind) String() string {
	switch k {
	case KindAuthen:
		return "authen"
	case KindAuthor:
		return "author"
	case KindAcct:
		return "acct"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// AuthenRequest asks for one authentication. Password is used by PAP, CHAP and MS-CHAP; ASCII login gets
// its answers from the conversation (Prompt / UserInput). Password is read by each session that runs the
// request (the supervisor may run it on more than one server) and never written: its owner (the agent,
// which copied the caller's) wipes it once the request's Outcome came back.
type AuthenRequest struct {
	Action   tacplus.AuthenAction  // default LOGIN
	Type     tacplus.AuthenType    // default ASCII
	Service  tacplus.AuthenService // default LOGIN; ENABLE for enable requests
	PrivLvl  uint8
	User     string
	Password []byte
	// Prepared is the START data of a CHAP, MS-CHAP or MS-CHAP-V2 login whose response the caller already
	// computed (a client of the loopback front end): identifier, challenge and response, sent as they are.
	// Password is then unused.
	Prepared []byte
	Port     string
	RemAddr  string
}

// String never shows the password.
func (r AuthenRequest) String() string {
	return fmt.Sprintf("authen{action=%s type=%s service=%s priv=%d user=%q port=%q rem_addr=%q password=<%d bytes>}",
		r.Action, r.Type, r.Service, r.PrivLvl, r.User, r.Port, r.RemAddr, len(r.Password))
}

// GoString never shows the password.
func (r AuthenRequest) GoString() string { return r.String() }

// AuthorRequest asks whether a user may run a service or command (RFC 8907 section 6.1).
type AuthorRequest struct {
	Method  tacplus.AuthenMethod
	PrivLvl uint8
	Type    tacplus.AuthenType
	Service tacplus.AuthenService
	User    string
	Port    string
	RemAddr string
	Args    []string // "service=shell", "cmd=show", "cmd-arg=version", ...
}

// AcctRequest is one accounting record (RFC 8907 section 7.1). Args must include task_id.
type AcctRequest struct {
	Flags   tacplus.AcctFlag
	Method  tacplus.AuthenMethod
	PrivLvl uint8
	Type    tacplus.AuthenType
	Service tacplus.AuthenService
	User    string
	Port    string
	RemAddr string
	Args    []string
}

// Request is sent by the Go API to the supervisor; exactly one of Authen, Author and Acct is set. The
// sender gets zero or more *Prompt (authentication only) and then exactly one *Outcome, all from the
// supervisor, so the sender must accept several messages (actorkit.Inbox, not a Future).
type Request struct {
	ID       uint64 // unique per agent, chosen by the API
	Group    string // server group; "" means the default group
	Deadline time.Time
	// Gone, when not nil, is closed once the caller gave up (its context's Done). The connection actor
	// checks it just before it writes a request's packet, so that a cancellation stops the write at once,
	// before the Cancel message has made its way through the supervisor.
	Gone   <-chan struct{}
	Authen *AuthenRequest
	Author *AuthorRequest
	Acct   *AcctRequest
}

// GaveUp reports whether the caller has given up (Gone is closed); it never blocks.
func (r *Request) GaveUp() bool {
	if r == nil || r.Gone == nil {
		return false
	}
	select {
	case <-r.Gone:
		return true
	default:
		return false
	}
}

// Kind returns the kind of session the request needs.
func (r *Request) Kind() Kind {
	switch {
	case r.Authen != nil:
		return KindAuthen
	case r.Author != nil:
		return KindAuthor
	}
	return KindAcct
}

// Cancel asks the supervisor to abort request ID: the caller's context ended, or its conversation gave up.
// The supervisor answers the request with an Outcome (ErrAborted unless the session completed first).
// Reason goes to the server in an ABORT where the RFC allows one, so it must not hold secrets.
type Cancel struct {
	ID     uint64
	Reason string
}

// StartSession is sent by the supervisor to a connection actor, which spawns a session for it. The session
// sends every Prompt and its Outcome to ReplyTo (the supervisor), which relays them to the caller.
type StartSession struct {
	Req     *Request
	ReplyTo *actor.PID
	// Caller, when set, is where the request's answers end up (the supervisor's sender). The session sends
	// a final Outcome (Outcome.Final) straight there, and a copy marked Delivered to ReplyTo, so that the
	// answer takes no extra hop; every other answer goes to ReplyTo only.
	Caller  *actor.PID
	Timeout time.Duration // per reply from the server
	Attempt int           // 0 for the first server tried

	claim atomic.Uint32 // 0: nobody's yet; 1: taken by a connection; 2: withdrawn by the supervisor
}

// Take is called by the connection actor that receives the start: it reports whether the start is still
// to be run, that is, whether the supervisor has not withdrawn it. Withdraw is the supervisor's: it takes
// back a start that sits in the mailbox of a connection actor that failed (and would run it only after its
// restart backoff), and reports whether it did so before any connection took it. Exactly one of the two
// wins, once; a start that was withdrawn is never run.
func (s *StartSession) Take() bool { return s.claim.CompareAndSwap(0, 1) }

// Withdraw: see Take.
func (s *StartSession) Withdraw() bool { return s.claim.CompareAndSwap(0, 2) }

// Prompt is a server's request for user input during authentication (GETUSER, GETPASS, GETDATA). The
// answer goes to Session (the session actor, a child of the connection) as a *UserInput carrying ReqID; the
// next Prompt or the Outcome comes back through the supervisor.
type Prompt struct {
	ReqID   uint64
	Session *actor.PID
	Status  tacplus.AuthenStatus // GETUSER, GETPASS or GETDATA
	Message string               // server_msg, to show to the user
	NoEcho  bool                 // do not echo the answer (TAC_PLUS_REPLY_FLAG_NOECHO)
	Server  string
}

// UserInput answers a Prompt. Send it to Prompt.Session; the next *Prompt or the *Outcome reaches the
// caller through the supervisor.
// The session that receives it owns Text: it wipes it once the CONTINUE carrying it is built.
type UserInput struct {
	ReqID uint64 // Prompt.ReqID: a session actor uses only the answer for the request it runs
	Text  []byte
}

// String never shows the answer, which is often a password.
func (u UserInput) String() string { return fmt.Sprintf("input{<%d bytes>}", len(u.Text)) }

// GoString never shows the answer.
func (u UserInput) GoString() string { return u.String() }

// Abort ends a session early (section 5.3 for authentication: a CONTINUE with the ABORT flag when the
// protocol allows one). Reason is sent to the server and must not hold secrets.
type Abort struct {
	ReqID  uint64
	Reason string
}

// Outcome is a session's final answer. Err is nil on success (PASS, PASS_ADD/PASS_REPL, SUCCESS); otherwise
// it is a *tacplus.Error of the taxonomy. The result fields hold what the server said either way.
type Outcome struct {
	ReqID     uint64
	Kind      Kind
	Server    string
	SessionID uint32
	Err       error
	// Retryable is set when the request may safely be sent to another server: nothing reached a server,
	// or no reply was seen and the request carried no password (docs/architecture.md, retry safety).
	Retryable bool
	// SecretSent is set when the session sent a password or CHAP response before it failed.
	SecretSent bool
	// CallerDeadline is set when Err is a timeout of the caller's side, not the server's reply timeout:
	// the request's own Deadline passed (the caller gave up) or the user did not answer a prompt within
	// the session's UserTimeout. It says nothing about the server's health (no dead-time, no retry).
	CallerDeadline bool
	// Delivered: the session sent this Outcome to the caller itself (StartSession.Caller); the supervisor
	// only updates its books.
	Delivered bool
	Started   time.Time
	Finished  time.Time

	// The result of the session's kind, as its state machine recorded it (also set on failure).
	Authen *fsm.AuthenResult
	Author *fsm.AuthorResult
	Acct   *fsm.AcctResult
}

// Final reports whether o ends its request whatever the supervisor's rules say: a success, or a denial by
// the server (FAIL to an authentication, or to an authorization). Such an outcome is never retried,
// changed or held back, so the session may hand it to the caller directly.
func (o *Outcome) Final() bool {
	return o.Err == nil || errors.Is(o.Err, tacplus.ErrAuthenticationFailed) || errors.Is(o.Err, tacplus.ErrDenied)
}

// Outbound carries a packet from a session to its connection, which adds the single-connect flag when
// needed, obfuscates and writes it. Epoch is the connection epoch the session was started on: the
// connection drops packets from another epoch.
type Outbound struct {
	Epoch  uint64
	Header tacplus.Header
	Body   tacplus.Body
}

// Inbound carries a decoded packet (or a body decoding error) from a connection to one session.
type Inbound struct {
	Header tacplus.Header
	Body   tacplus.Body
	Err    error // a body that failed to decode: bad secret, text rules, ...
}

// ConnectionLost tells a session that its connection is gone. Every session of a failed connection gets
// it before the connection stops or restarts; the session answers its caller with ErrConnectionLost.
type ConnectionLost struct {
	Server string
	Epoch  uint64
	Err    error
}

// SessionTimeout is a session's own timer firing; Gen is the timer generation, so a stale timer is
// ignored.
type SessionTimeout struct{ Gen uint64 }

// IgnoreDeadLetterLogging: a timer may fire after its session ended.
func (*SessionTimeout) IgnoreDeadLetterLogging() {}

// Status asks the supervisor for a snapshot; the reply is a *StatusReport.
type Status struct{}

// ServerStatus describes one server in a StatusReport.
type ServerStatus struct {
	Addr          string
	Group         string
	State         string    // "up", "down" or "dead"
	Since         time.Time // when State last changed
	DeadUntil     time.Time
	SingleConnect bool
	InFlight      int
	Queued        int
	Connections   int // long-lived connections configured (connections_per_server)
	Open          int // of those, the ones with an open socket
	LastError     string
	LastErrorAt   time.Time // when LastError happened
}

// StatusReport answers Status.
type StatusReport struct {
	Servers []ServerStatus
	Pending int // requests waiting for a first answer
}

// Drain asks the supervisor to stop accepting requests and to answer when every session has ended or the
// deadline passed. The reply is a *Drained.
type Drain struct{ Deadline time.Time }

// Drained answers Drain; Abandoned counts the sessions still running at the deadline.
type Drained struct{ Abandoned int }

// SessionEnded is sent by a session to its connection just before it stops. Lost says the session ended
// because of ConnectionLost: the connection uses it to tell a failure (someone lost work) from a normal
// close (every session had its answer).
type SessionEnded struct {
	SessionID uint32
	Lost      bool
	// TimedOut says the session timed out without ever getting a reply: on a connection still negotiating
	// single-connect, the server is not answering the connection at all.
	TimedOut bool
	// Desync is set (a bad-packet reason name) when the session ended because it refused a packet the
	// connection routed to it: the connection's stream is in doubt and the connection ends.
	Desync string
}

// Desync tells the supervisor that a connection found a packet it could not match exactly to a live
// session (unknown or ended session_id, unexpected seq_no, wrong type or version, a body that breaks the
// rules) and tore itself down: every session on it got ConnectionLost with an ErrProtocol cause. Reason is
// the bad-packet reason name. The supervisor stops multiplexing to Server for a hold-down.
type Desync struct {
	Server string
	Epoch  uint64
	Reason string
}

// Connected tells the supervisor that a connection actor has a socket (a successful probe).
type Connected struct {
	Server string
	Epoch  uint64
}

// Negotiated tells the supervisor whether the server agreed to single-connect on this connection
// (RFC 8907 section 4.3).
type Negotiated struct {
	Server        string
	Epoch         uint64
	SingleConnect bool
}

// ReturnReason says why a connection handed requests back, and so what the supervisor does with them.
type ReturnReason uint8

// The reasons.
const (
	// ReturnRefused: the server refused single-connect (RFC 8907 section 4.3), or a per-session connection
	// already carried its session. Same server, one connection per session.
	ReturnRefused ReturnReason = iota + 1
	// ReturnBadSecret: the connection is draining after a key mismatch (section 4.4). Next server.
	ReturnBadSecret
	// ReturnRestart: the connection failed before it sent them and is about to be restarted. Same server,
	// same connection actor (the requests wait in its mailbox for the restart); no retry is used up.
	ReturnRestart
	// ReturnNegotiation: the single-connect negotiation was still pending after Config.NegotiationWait, or
	// the first session ended without a reply (its caller gave up), so the negotiation ended unanswered.
	// Same server, one connection per request, nothing used up; the server is NOT marked refused.
	ReturnNegotiation
	// ReturnRetired: the connection was retired (messages.Retire): it takes no new sessions. Same server,
	// another connection, nothing used up.
	ReturnRetired
)

// Returned hands requests back to the supervisor: the connection will not run them. Err is the cause.
type Returned struct {
	Server string
	Starts []*StartSession
	Reason ReturnReason
	Err    error
}

// ConnectionIdle tells the supervisor that a connection closed normally and holds no socket now.
type ConnectionIdle struct {
	Server string
	Reason string
}

// Retire asks a connection to take no new sessions (issue 12 point 9: the supervisor retires connections
// older than max_connection_age). Queued and later requests are handed back (ReturnRetired); the
// connection closes its socket and stops once its running sessions end. It is not a failure.
type Retire struct{}

// ConnectionStatus asks a connection actor for its counts; it responds (ctx.Respond) with a
// *ConnectionCounts.
type ConnectionStatus struct{}

// ConnectionCounts answers ConnectionStatus.
type ConnectionCounts struct {
	Server    string
	Epoch     uint64
	State     string // the connection actor's state: idle, dialing, negotiating, open, draining, failing
	InFlight  int    // sessions running on the socket
	Queued    int    // requests waiting for a session on this connection
	Multiplex bool   // the server agreed to single-connect on this socket
	Retired   bool
}
