package tacplustest

import (
	"crypto/tls"
	"fmt"
	"net"
	"regexp"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// Defaults for Config fields left zero.
const (
	// DefaultAddr listens on an ephemeral loopback port.
	DefaultAddr = "127.0.0.1:0"
	// DefaultIdleTimeout matches tacquito's server, which closes a connection after 15 s without traffic.
	DefaultIdleTimeout = 15 * time.Second
)

// Config describes the server. Every field is optional except Key. The server copies what it needs at
// Start, so changing a Config afterwards has no effect; use SetFaults for what changes at run time.
type Config struct {
	// Addr is the loopback address to listen on. Default DefaultAddr. Addresses outside 127.0.0.0/8 and ::1
	// are refused: this server holds test passwords and must never be reachable from the network.
	Addr string
	// Key is the shared secret (RFC 8907 section 4.5). Required.
	Key []byte
	// Users maps a username to its credentials and behaviour.
	Users map[string]User
	// AuthorRules decide authorization requests; the first rule that matches wins, and a request that no
	// rule matches is denied (section 6.2: FAIL).
	AuthorRules []AuthorRule
	// SingleConnect agrees to single-connect mode when a client asks for it (section 4.3). When false the
	// server refuses: it replies without the flag and closes the connection after the session.
	SingleConnect bool
	// KeepOpen keeps a connection open after each session even when single-connect was not negotiated, as
	// tacquito's server does. Without it the connection is closed after the session, as classic servers do.
	KeepOpen bool
	// IdleTimeout closes a connection that received nothing for this long while no reply was pending.
	// Default DefaultIdleTimeout; negative disables it.
	IdleTimeout time.Duration
	// Faults is the initial fault set; see Server.SetFaults.
	Faults Faults
	// OnAccounting, when set, is called with every accounting record before the reply is sent, so that a
	// record the client saw acknowledged has been handed over (the standalone binary writes it to a file).
	// An error makes the server reply ERROR (section 7.2). It is called from connection goroutines
	// concurrently and must be safe for that.
	OnAccounting func(AcctRecord) error
	// TLS, when set, serves TACACS+ over TLS (RFC 9887) with this configuration: bodies travel with the
	// UNENCRYPTED flag and no obfuscation, Key is not used for them. The TLS faults (expired certificate,
	// wrong name, TLS 1.2 only, client certificate required) are choices of this configuration; see tls.go.
	TLS *tls.Config
	// Logf, when set, receives one line per connection-level event (bad packets, write errors). It never
	// receives a key or a password.
	Logf func(format string, args ...any)
}

// User is one account.
type User struct {
	// Password is the login password, checked by ASCII, PAP, CHAP and MS-CHAP authentication.
	Password string
	// EnablePassword is checked when the START asks for the ENABLE service (section 5.4.2.6). Empty means
	// enable always fails for this user.
	EnablePassword string
	// Prompts are extra steps of an ASCII login after the password: each is a GETDATA reply whose answer
	// must equal Answer, such as a one-time code (section 5.4.2.1).
	Prompts []Prompt
	// Delay holds back every reply of this user's sessions. Sessions of users with different delays that
	// are interleaved on one connection are therefore answered out of order.
	Delay time.Duration
	// Groups the user belongs to, matched by AuthorRule.Group.
	Groups []string
}

// Prompt is one extra GETDATA step of an ASCII login.
type Prompt struct {
	Message string // server_msg of the GETDATA reply, such as "OTP code: "
	Answer  string // the user_msg that passes
	NoEcho  bool   // set TAC_PLUS_REPLY_FLAG_NOECHO
}

// AuthorRule is one authorization rule (section 6). Empty match fields match anything.
type AuthorRule struct {
	User    string // the request's user
	Group   string // a group of the request's user
	Service string // the value of the request's service= argument
	// Command is an RE2 expression matched against the whole command line: the cmd= value followed by
	// each cmd-arg= value, separated by single spaces ("show running-config"). It is anchored at both ends;
	// use regexp.QuoteMeta for an exact match. A request without cmd= has the empty command line.
	Command string
	// Permit answers PASS_ADD with Args (PASS_REPL when Replace is set); otherwise FAIL with ServerMsg.
	Permit    bool
	Replace   bool
	Args      []string // AV pairs returned on permit, such as "priv-lvl=15"
	ServerMsg string
}

// rule is a compiled AuthorRule.
type rule struct {
	AuthorRule
	cmd *regexp.Regexp
}

// compiled is the validated, immutable part of a Config.
type compiled struct {
	addr     string
	key      []byte
	rules    []rule
	single   bool
	keepOpen bool
	idle     time.Duration
	onAcct   func(AcctRecord) error
	logf     func(string, ...any)
}

// compile validates c and fills in the defaults. Errors belong to tacplus.ErrConfig and never show a
// secret.
func (c Config) compile() (*compiled, error) {
	cc := &compiled{addr: c.Addr, key: append([]byte(nil), c.Key...), single: c.SingleConnect,
		keepOpen: c.KeepOpen, idle: c.IdleTimeout, onAcct: c.OnAccounting, logf: c.Logf}
	if cc.addr == "" {
		cc.addr = DefaultAddr
	}
	if err := checkLoopback(cc.addr); err != nil {
		return nil, err
	}
	if len(cc.key) == 0 {
		return nil, tacplus.NewError(tacplus.ErrConfig, "tacplustest: no shared key")
	}
	if cc.idle == 0 {
		cc.idle = DefaultIdleTimeout
	}
	for name, u := range c.Users {
		if name == "" {
			return nil, tacplus.NewError(tacplus.ErrConfig, "tacplustest: empty username")
		}
		for i, p := range u.Prompts {
			r := tacplus.AuthenReply{Status: tacplus.AuthenStatusGetData, ServerMsg: p.Message}
			if _, err := r.AppendBody(nil); err != nil {
				return nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: fmt.Sprintf("tacplustest: user %q prompt %d", name, i), Err: err}
			}
		}
		if u.Delay < 0 {
			return nil, tacplus.NewError(tacplus.ErrConfig, "tacplustest: user %q has a negative delay", name)
		}
	}
	for i, r := range c.AuthorRules {
		re, err := regexp.Compile("^(?:" + r.Command + ")$")
		if err != nil {
			return nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: fmt.Sprintf("tacplustest: rule %d command", i), Err: err}
		}
		resp := tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassAdd, Args: r.Args, ServerMsg: r.ServerMsg}
		if _, err := resp.AppendBody(nil); err != nil {
			return nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: fmt.Sprintf("tacplustest: rule %d reply", i), Err: err}
		}
		r.Args = append([]string(nil), r.Args...)
		cc.rules = append(cc.rules, rule{AuthorRule: r, cmd: re})
	}
	if err := c.Faults.validate(); err != nil {
		return nil, err
	}
	return cc, nil
}

// checkLoopback refuses listen addresses outside loopback.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return &tacplus.Error{Class: tacplus.ErrConfig, Msg: "tacplustest: listen address", Err: err}
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return tacplus.NewError(tacplus.ErrConfig, "tacplustest: listen address %q is not a loopback IP", addr)
	}
	return nil
}

// copyUsers deep-copies the user table so that the server owns it (CHPASS changes passwords).
func copyUsers(in map[string]User) map[string]*User {
	out := make(map[string]*User, len(in))
	for name, u := range in {
		u.Prompts = append([]Prompt(nil), u.Prompts...)
		u.Groups = append([]string(nil), u.Groups...)
		out[name] = &u
	}
	return out
}
