package localapi

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Version is the API version this package serves and speaks; every path starts with "/" + Version + "/".
const Version = "v1"

// Caller is the process on the other end of the socket, from SO_PEERCRED (socket(7)). The kernel fills it
// in at connect time, so a caller cannot forge it.
type Caller struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
	PID int    `json:"pid"`
}

func (c Caller) String() string { return fmt.Sprintf("uid=%d gid=%d pid=%d", c.UID, c.GID, c.PID) }

// Secret is a password or a prompt answer. Every fmt verb and slog show "[redacted]"; JSON carries the
// real text, because JSON is the wire format: never log a request through a JSON encoder.
type Secret string

const redacted = "[redacted]"

// String returns "[redacted]".
func (Secret) String() string { return redacted }

// GoString returns "[redacted]".
func (Secret) GoString() string { return redacted }

// Format writes "[redacted]" for every verb.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue returns "[redacted]" for log/slog.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// The authentication types, services and actions of AuthenRequest (RFC 8907 section 5.1).
const (
	TypeASCII    = "ascii"
	TypePAP      = "pap"
	TypeCHAP     = "chap"
	TypeMSCHAPv1 = "mschapv1"
	TypeMSCHAPv2 = "mschapv2"

	ServiceLogin  = "login"
	ServiceEnable = "enable"

	ActionLogin  = "login"
	ActionChpass = "chpass"
)

// AuthenRequest is the body of POST /v1/authenticate. Empty strings take the defaults: type ascii, service
// login, action login.
type AuthenRequest struct {
	User string `json:"user,omitempty"`
	// Password is the secret for pap, chap and mschap (for chap and mschap the agent computes the
	// response), or the answer to the first password prompt of an ascii login (a PAM module that already
	// holds PAM_AUTHTOK). Never logged.
	Password Secret `json:"password,omitempty"`
	Type     string `json:"type,omitempty"`
	Service  string `json:"service,omitempty"`
	Action   string `json:"action,omitempty"`
	PrivLvl  int    `json:"priv_lvl,omitempty"` // 0-15
	Port     string `json:"port,omitempty"`
	RemAddr  string `json:"rem_addr,omitempty"`
	// Renew demands a fresh authentication: nothing earlier or cached counts (docs/policy.md).
	Renew bool `json:"renew,omitempty"`
}

// The prompt kinds: what a server asked for (RFC 8907 section 5.2, GETUSER, GETPASS, GETDATA), or a message
// to show with no question (the answer is ignored; send "").
const (
	PromptUser     = "user"
	PromptPassword = "password"
	PromptData     = "data"
	PromptInfo     = "info"
)

// Prompt is one question of an authentication conversation.
type Prompt struct {
	Message string `json:"message"`
	// Echo false means the answer is a secret: do not echo it (TAC_PLUS_REPLY_FLAG_NOECHO).
	Echo bool   `json:"echo"`
	Kind string `json:"kind"` // PromptUser, PromptPassword, PromptData or PromptInfo
}

// Conversation asks the caller one question and returns the answer. The Server implements it for the
// Backend by sending the prompt in an HTTP response and waiting for POST /v1/conversations/{id}; the
// Client's caller implements it for Client.Authenticate. An error means the caller gave up, the
// conversation expired or the server is shutting down: the Backend must abort the session (ErrAborted).
type Conversation func(ctx context.Context, p Prompt) (answer string, err error)

// The results of an authentication (AuthenResult.Result).
const (
	ResultPass        = "pass"
	ResultFail        = "fail"
	ResultPrompt      = "prompt"
	ResultUnavailable = "unavailable"
	ResultError       = "error"
)

// Entry is one thing that was authenticated (a policy.AuthenticationEntry on the wire).
type Entry struct {
	Kind       string    `json:"kind"`  // "user" or "enable"
	Value      string    `json:"value"` // the username, or the privilege level
	User       string    `json:"user"`
	Handler    string    `json:"handler,omitempty"`
	Server     string    `json:"server,omitempty"`
	AuthenType string    `json:"type,omitempty"`
	Time       time.Time `json:"time,omitzero"`
	Attributes []string  `json:"attributes,omitempty"` // "name=value", such as "priv-lvl=15"
}

// ErrorBody is the "error" member of every response that is not a success.
type ErrorBody struct {
	// Code is stable: a taxonomy class name (tacplus.ClassName) or an API code (CodeBadRequest ...).
	Code    string `json:"code"`
	Message string `json:"message"`
	// Explanation tells the whole story of a denial, such as "server A timed out; server B said FAIL".
	Explanation string `json:"explanation,omitempty"`
	// Causes are the other taxonomy classes the error matches, by name: a connection lost because the
	// server sent a packet out of turn is "connection_lost" with the cause "protocol".
	Causes []string `json:"causes,omitempty"`
}

// AuthenResult is the body of a 200 answer to POST /v1/authenticate and POST /v1/conversations/{id}.
//
// A Backend fills User, Entries, Attributes, Server, SessionID and ServerMsg (and may set Result and
// Error itself); the Server derives Result and Error from the Backend's error when they are empty, and
// sets Conversation and Prompt.
type AuthenResult struct {
	Result       string     `json:"result"`
	Conversation string     `json:"conversation,omitempty"` // with ResultPrompt: where to POST the answer
	Prompt       *Prompt    `json:"prompt,omitempty"`       // with ResultPrompt
	User         string     `json:"user,omitempty"`
	Entries      []Entry    `json:"entries,omitempty"`
	Attributes   []string   `json:"attributes,omitempty"` // returned with the authentication, such as "priv-lvl=15"
	Server       string     `json:"server,omitempty"`
	SessionID    uint32     `json:"session_id,omitempty"`
	ServerMsg    string     `json:"server_msg,omitempty"`
	Error        *ErrorBody `json:"error,omitempty"`
}

// ConversationRequest is the body of POST /v1/conversations/{id}: either an answer or an abort.
type ConversationRequest struct {
	Answer Secret `json:"answer"`
	Abort  bool   `json:"abort,omitempty"`
}

// AuthorRequest is the body of POST /v1/authorize (RFC 8907 section 6.1). Give either Service, Cmd and
// Args (the agent builds "service=", "cmd=" and "cmd-arg=" pairs) or the raw pairs in AV, not both.
type AuthorRequest struct {
	User    string   `json:"user"`
	Service string   `json:"service,omitempty"` // default "shell"
	Cmd     string   `json:"cmd,omitempty"`
	Args    []string `json:"args,omitempty"`
	AV      []string `json:"av,omitempty"`
	PrivLvl int      `json:"priv_lvl,omitempty"`
	Port    string   `json:"port,omitempty"`
	RemAddr string   `json:"rem_addr,omitempty"`
	// Start, when set, asks for an accounting START of the command when (and only when) it is permitted,
	// in the same request: the record /v1/account would send for flags "start", this task_id and the
	// authorization's pairs. Its outcome is AuthorResult.Start.
	Start *StartRequest `json:"start,omitempty"`
}

// StartRequest is the accounting START an authorization asks for (AuthorRequest.Start).
type StartRequest struct {
	TaskID string   `json:"task_id"`
	AV     []string `json:"av,omitempty"` // further pairs after the authorization's, such as "start_time=..."
	// Ack is AcctRequest.Ack for the START: when the authorization is answered.
	Ack string `json:"ack,omitempty"`
}

// The acknowledgements of an accounting record (AcctRequest.Ack, StartRequest.Ack).
const (
	AckDelivered = "delivered"
	AckDurable   = "durable"
	AckQueued    = "queued"
)

// ResultDurable is the result of a record sent with AckDurable: the agent's spool has committed and
// fsynced it (it survives a crash of the agent) and delivers it in order; no server has answered it yet.
const ResultDurable = "durable"

// ResultQueued is the result of a record sent with AckQueued: the agent's spool holds it in order (a
// record of the same task sent later is delivered after it) and commits it with its next group commit;
// it is not durable yet, and a crash of the agent before that commit loses it.
const ResultQueued = "queued"

// Pairs returns the AV pairs the request stands for: AV when given, otherwise service=, cmd= and one
// cmd-arg= per argument (section 6.1). With service shell and no Cmd it is the shell start: "cmd=".
func (r AuthorRequest) Pairs() []string {
	if len(r.AV) > 0 {
		return append([]string(nil), r.AV...)
	}
	svc := r.Service
	if svc == "" {
		svc = "shell"
	}
	out := []string{"service=" + svc}
	// service=shell always carries cmd= (RFC 8907 section 8.2): empty, it asks whether the shell itself
	// may start, as shells and NSS do at login.
	if r.Cmd != "" || len(r.Args) > 0 || svc == "shell" {
		out = append(out, "cmd="+r.Cmd)
	}
	for _, a := range r.Args {
		out = append(out, "cmd-arg="+a)
	}
	return out
}

// The results of an authorization.
const (
	ResultPermit = "permit"
	ResultDeny   = "deny"
)

// AuthorResult is the body of a 200 answer to POST /v1/authorize. Result is ResultPermit, ResultDeny or
// ResultError.
type AuthorResult struct {
	Result    string     `json:"result"`
	Args      []string   `json:"args,omitempty"`      // the pairs the server returned
	Effective []string   `json:"effective,omitempty"` // the pairs to apply (section 6.2)
	ServerMsg string     `json:"server_msg,omitempty"`
	Server    string     `json:"server,omitempty"`
	SessionID uint32     `json:"session_id,omitempty"`
	Error     *ErrorBody `json:"error,omitempty"`
	// Start is the outcome of the accounting START the request asked for; absent when none was asked for
	// or the command was not permitted (then no START was sent).
	Start *AcctResult `json:"start,omitempty"`
}

// The accounting flags (RFC 8907 section 7.2): "update" is WATCHDOG with START, an interim record that
// also carries the START's attributes.
const (
	FlagStart    = "start"
	FlagStop     = "stop"
	FlagWatchdog = "watchdog"
	FlagUpdate   = "update"
)

// AcctRequest is the body of POST /v1/account (section 7.1).
type AcctRequest struct {
	Flags   string   `json:"flags"`
	User    string   `json:"user"`
	TaskID  string   `json:"task_id,omitempty"` // becomes task_id=; required by the RFC for start and stop
	AV      []string `json:"av,omitempty"`      // further pairs, such as "service=shell", "cmd=show"
	PrivLvl int      `json:"priv_lvl,omitempty"`
	Port    string   `json:"port,omitempty"`
	RemAddr string   `json:"rem_addr,omitempty"`
	// Ack is when the record is answered: AckDelivered (the default: a server took it, or the spool
	// committed it and its first delivery attempt ended), AckDurable (once the spool committed it, before
	// any delivery: result ResultDurable) or AckQueued (once the spool holds it in order, before its
	// commit: result ResultQueued). An agent without a spool sends the record either way.
	Ack string `json:"ack,omitempty"`
}

// The result of an accounting record that was taken.
const ResultOK = "ok"

// AcctResult is the body of a 200 answer to POST /v1/account. Result is ResultOK or ResultError.
type AcctResult struct {
	Result    string `json:"result"`
	Server    string `json:"server,omitempty"`
	SessionID uint32 `json:"session_id,omitempty"`
	ServerMsg string `json:"server_msg,omitempty"`
	// Spooled is true when no server took the record yet and the agent keeps it to send later.
	Spooled bool       `json:"spooled,omitempty"`
	Error   *ErrorBody `json:"error,omitempty"`
}

// ServerStatus is one TACACS+ server in Status. Times are RFC 3339 with their zone; absent when zero.
type ServerStatus struct {
	Name          string    `json:"name"`            // the configured name
	Addr          string    `json:"addr"`            // host:port
	Group         string    `json:"group,omitempty"` // the first of Groups (API v1 clients read this one)
	Groups        []string  `json:"groups,omitempty"`
	State         string    `json:"state"`          // "up", "down" or "dead"
	Since         time.Time `json:"since,omitzero"` // when State last changed
	DeadUntil     time.Time `json:"dead_until,omitzero"`
	SingleConnect bool      `json:"single_connect"`
	InFlight      int       `json:"in_flight"`             // requests running on the server's connections
	Queued        int       `json:"queued"`                // requests waiting for a free slot on them
	Connections   int       `json:"connections,omitempty"` // long-lived connections configured (connections_per_server)
	Open          int       `json:"connections_open"`      // of those, the ones with an open socket
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
	TLS           *TLSInfo  `json:"tls,omitempty"` // the last verified TLS handshake; absent for plaintext
}

// TLSInfo is what the last verified TLS handshake with a server established (RFC 9887).
type TLSInfo struct {
	Version      string    `json:"version"`       // "TLS 1.3"
	PeerIdentity string    `json:"peer_identity"` // the subjectAltName that matched: "DNS:tacacs.example.net"
	PeerExpiry   time.Time `json:"peer_expiry"`   // notAfter of the server's certificate
	ClientExpiry time.Time `json:"client_expiry,omitzero"`
	Resumed      bool      `json:"resumed"`
	At           time.Time `json:"at"` // when the handshake completed
}

// Status is the body of GET /v1/status. The Backend fills Version, Servers, Pending and SpoolDepth; the
// Server sets APIVersion and Conversations.
type Status struct {
	Version       string         `json:"version"`
	APIVersion    string         `json:"api_version"`
	Servers       []ServerStatus `json:"servers"`
	Pending       int            `json:"pending"`       // requests waiting for a first answer from a server
	Conversations int            `json:"conversations"` // authentications in progress through this API
	SpoolDepth    int            `json:"spool_depth"`
	// The accounting spool: its file ("" when the spool is off), bytes waiting, the acceptance time and
	// age of the oldest waiting record (absent when empty), the dead-letter bucket's records, and whether
	// delivery is paused because no server could be reached.
	SpoolPath        string    `json:"spool_path,omitempty"`
	SpoolBytes       int64     `json:"spool_bytes,omitempty"`
	SpoolOldest      time.Time `json:"spool_oldest,omitzero"`
	SpoolOldestAge   float64   `json:"spool_oldest_age_seconds,omitempty"`
	SpoolDeadLetters int       `json:"spool_dead_letters,omitempty"`
	SpoolOutage      bool      `json:"spool_outage,omitempty"`
}

// Backend is what the Server serves: the daemon implements it over the policy stack and the agent.
//
// Authenticate, Authorize and Account return a nil error only on success (pass, permit, ok); otherwise an
// error of the project's taxonomy (tacplus/errors.go), such as a *policy.Denial or a *tacplus.Error, from
// which the Server derives the result and the stable error code. Caller is who asked, for logs and
// accounting. Every method must respect ctx.
type Backend interface {
	Authenticate(ctx context.Context, caller Caller, req AuthenRequest, conv Conversation) (AuthenResult, error)
	Authorize(ctx context.Context, caller Caller, req AuthorRequest) (AuthorResult, error)
	Account(ctx context.Context, caller Caller, req AcctRequest) (AcctResult, error)
	Status(ctx context.Context) (Status, error)
}
