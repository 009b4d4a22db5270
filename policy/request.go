package policy

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// AuthenType is how the user proves who they are (RFC 8907 section 5.1, authen_type).
type AuthenType uint8

// The authentication types a request may ask for.
const (
	ASCII    AuthenType = iota + 1 // interactive login: the server drives the prompts (section 5.4.2.1)
	PAP                            // the password in the START packet (section 5.4.2.2)
	CHAP                           // section 5.4.2.3
	MSCHAPv1                       // section 5.4.2.4
	MSCHAPv2                       // section 5.4.2.5
)

var authenTypeNames = [...]string{ASCII: "ascii", PAP: "pap", CHAP: "chap", MSCHAPv1: "mschapv1", MSCHAPv2: "mschapv2"}

func (t AuthenType) valid() bool { return t >= ASCII && t <= MSCHAPv2 }

func (t AuthenType) String() string {
	if t.valid() {
		return authenTypeNames[t]
	}
	return "authen_type(" + strconv.Itoa(int(t)) + ")"
}

// ParseAuthenType parses "ascii", "pap", "chap", "mschapv1" or "mschapv2".
func ParseAuthenType(s string) (AuthenType, error) {
	for t := ASCII; t <= MSCHAPv2; t++ {
		if authenTypeNames[t] == s {
			return t, nil
		}
	}
	return 0, configErr("unknown authen_type %q (want ascii, pap, chap, mschapv1 or mschapv2)", s)
}

// Service is what the user authenticates for (RFC 8907 section 5.1, authen_service).
type Service uint8

// The services.
const (
	Login  Service = iota + 1 // a login: the entry's kind is KindUser
	Enable                    // a privilege level (enable): the entry's kind is KindEnable
)

func (s Service) valid() bool { return s == Login || s == Enable }

func (s Service) String() string {
	switch s {
	case Login:
		return "login"
	case Enable:
		return "enable"
	}
	return "service(" + strconv.Itoa(int(s)) + ")"
}

// Password is a secret typed by a user. Every way of printing or logging it (fmt verbs, %#v, JSON, text
// and slog marshalling) shows "[redacted]"; handlers get the text with string(p).
type Password string

const redactedText = "[redacted]"

// String returns "[redacted]".
func (Password) String() string { return redactedText }

// GoString returns "[redacted]".
func (Password) GoString() string { return redactedText }

// Format writes "[redacted]" for every verb, so that even %x or %d cannot print the secret.
func (Password) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redactedText)) }

// MarshalText returns "[redacted]", for encoding/json and loggers that use it.
func (Password) MarshalText() ([]byte, error) { return []byte(redactedText), nil }

// LogValue returns "[redacted]" for log/slog.
func (Password) LogValue() slog.Value { return slog.StringValue(redactedText) }

// Request is one authentication request, as the local API or a Go caller hands it to the stack.
type Request struct {
	User     string     // the user; for Enable, the user asking for the level
	Password Password   // may be empty: the handlers then ask through the Conversation
	Type     AuthenType // how the password is proven to the server
	Service  Service    // Login or Enable
	PrivLvl  uint8      // 0-15 (RFC 8907 section 5.1); for Enable, the level asked for
	Port     string     // the user's port, such as "tty1" or "ssh"
	RemAddr  string     // where the user comes from
	// Renew demands an authentication made at or after Arrival: no earlier or cached entry counts, and
	// handlers must not answer from a cache.
	Renew bool
	// Arrival is when the request arrived. Zero: the stack sets it from its clock.
	Arrival time.Time
}

// String describes r without the password.
func (r Request) String() string {
	return fmt.Sprintf("%s user=%q priv_lvl=%d type=%s port=%q rem_addr=%q renew=%t",
		r.Service, r.User, r.PrivLvl, r.Type, r.Port, r.RemAddr, r.Renew)
}

// GoString describes r without the password, as String does.
func (r Request) GoString() string { return "policy.Request{" + r.String() + "}" }

// What returns what the request authenticates: (KindUser, user) for a login, (KindEnable, level) for
// enable.
func (r Request) What() (Kind, string) {
	if r.Service == Enable {
		return KindEnable, strconv.Itoa(int(r.PrivLvl))
	}
	return KindUser, r.User
}

// Validate checks the fields a stack relies on. Its errors belong to tacplus.ErrProtocol: the caller sent
// a request the agent cannot make sense of.
func (r Request) Validate() error {
	bad := func(format string, args ...any) error {
		return &tacplus.Error{Class: tacplus.ErrProtocol, Msg: "invalid request: " + fmt.Sprintf(format, args...)}
	}
	switch {
	case !r.Service.valid():
		return bad("service %s", r.Service)
	case !r.Type.valid():
		return bad("authen_type %s", r.Type)
	case r.PrivLvl > 15:
		return bad("priv_lvl %d above 15", r.PrivLvl)
	case r.User == "" && r.Service == Login && r.Type != ASCII:
		// ASCII login may leave the user to the server's GETUSER prompt (RFC 8907 section 5.4.2.1).
		return bad("no user")
	}
	return nil
}

// Prompt is one question of a conversation.
type Prompt struct {
	Text string // what to show, such as "Password: "
	Echo bool   // false: the answer is a secret and must not be echoed (RFC 8907 TAC_PLUS_REPLY_FLAG_NOECHO)
}

// Conversation asks the user. It has the shape of x/crypto/ssh's KeyboardInteractiveChallenge and of a
// PAM conversation: show instruction (which may be empty), ask each prompt, return one answer per prompt.
// With no prompts it only shows the instruction (a server_msg). An error means the user or the front end
// gave up; handlers report it as tacplus.ErrAborted.
type Conversation func(ctx context.Context, instruction string, prompts []Prompt) (answers []string, err error)

// Attr is one attribute a handler returned with its answer, such as priv-lvl=15.
type Attr struct {
	Name, Value string
}

func (a Attr) String() string { return a.Name + "=" + a.Value }

// Attempt is one server a handler tried and passed over before its final answer (a failover inside a
// server group).
type Attempt struct {
	Server string // "host:port"
	Err    error  // why it was passed over; never nil in a Reply's Attempts
}

// Reply is what a handler reports along with its error. On success it describes the authentication; on
// failure only Server and Attempts matter.
type Reply struct {
	Server   string    // the server that gave the final answer; empty for local handlers
	User     string    // the user the handler learned, when the request had none (ASCII GETUSER)
	Message  string    // server_msg or a handler's note, safe to show the user
	Attrs    []Attr    // returned attributes, such as priv-lvl
	Time     time.Time // when the authentication was made; zero means now. Earlier: from a cache
	Attempts []Attempt // servers tried before Server, in order, with why each was passed over
}
