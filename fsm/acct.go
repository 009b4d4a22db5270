package fsm

import (
	"fmt"

	"github.com/tacagent/tacagent/tacplus"
)

// AcctState is the state of an accounting session (RFC 8907 section 7).
type AcctState uint8

// The accounting states. The zero value is not a state.
const (
	AcctIdle       AcctState = oneShotIdle  // made, REQUEST not sent
	AcctAwaitReply AcctState = oneShotAwait // REQUEST sent (seq_no 1), waiting for the REPLY (seq_no 2)
	AcctDone       AcctState = oneShotDone  // completed
)

func (s AcctState) String() string { return oneShotName("AcctState", uint8(s)) }

// AcctStates lists every accounting state.
func AcctStates() []AcctState { return []AcctState{AcctIdle, AcctAwaitReply, AcctDone} }

// AcctConfig is one accounting record (section 7.1).
type AcctConfig struct {
	SessionID uint32 // must not be 0
	// Flags is START, STOP, WATCHDOG, or WATCHDOG|START for an update (section 7.2). MORE is refused.
	Flags   tacplus.AcctFlag
	Method  tacplus.AuthenMethod
	PrivLvl uint8
	Type    tacplus.AuthenType
	Service tacplus.AuthenService
	User    string
	Port    string
	RemAddr string
	// Args in wire form. Exactly one non-empty task_id is required: it ties the START, WATCHDOG and STOP
	// records of a task together (section 8.3); and a service pair (section 8.2). The accounting pairs of
	// section 8.3 are moved ahead of the others, as that section requires; the order among each group is
	// kept.
	Args []string
}

// AcctResult is the outcome of an accounting session.
type AcctResult struct {
	// Status is the REPLY's status, or 0 when none was accepted.
	Status    tacplus.AcctStatus
	ServerMsg string
	Data      string
	// Err is nil for SUCCESS. ERROR and FOLLOW (unsupported) are tacplus.ErrServerError: the record was not
	// taken and may go to another server.
	Err error
}

func (r AcctResult) String() string {
	return fmt.Sprintf("acct{status=%s server_msg=%q data=%q}", statusName(r.Status, r.Status == 0), r.ServerMsg, r.Data)
}

// Acct is the client's accounting session machine: one REQUEST, one REPLY (section 7). It is not safe for
// concurrent use.
type Acct struct {
	oneShotMachine[AcctState]
	req    *tacplus.AcctRequest
	result AcctResult
}

// NewAcct validates the record and returns a machine in AcctIdle; a malformed record is a *tacplus.Error
// of class tacplus.ErrConfig.
func NewAcct(cfg AcctConfig) (*Acct, error) {
	m := new(Acct)
	if err := m.Reset(cfg); err != nil {
		return nil, err
	}
	return m, nil
}

// isAccountingArg reports whether name is one of the pairs section 8.3 defines for accounting only; they
// must precede the authorization pairs of section 6.
func isAccountingArg(name string) bool {
	switch name {
	case "task_id", "start_time", "stop_time", "elapsed_time", "timezone", "event", "reason",
		"bytes", "bytes_in", "bytes_out", "paks", "paks_in", "paks_out", "err_msg":
		return true
	}
	return false
}

// isNumericArg reports whether name's value must be a decimal integer (section 8.1: times are seconds
// since the epoch, or durations in seconds).
func isNumericArg(name string) bool {
	return name == "start_time" || name == "stop_time" || name == "elapsed_time"
}

// Reset makes m a new machine for cfg, as NewAcct does.
func (m *Acct) Reset(cfg AcctConfig) error {
	sid := cfg.SessionID
	if sid == 0 {
		return configError(0, nil, "session_id 0: the caller must draw a random session_id (RFC 8907 section 4.1)")
	}
	if !cfg.Flags.Valid() || cfg.Flags&tacplus.AcctFlagMore != 0 {
		return configError(sid, nil, "flags %s: a record is START, STOP, WATCHDOG or WATCHDOG|START (RFC 8907 section 7.2)", cfg.Flags)
	}
	switch n, id := argCount(cfg.Args, "task_id"); {
	case n != 1:
		return configError(sid, nil, "%d task_id arguments, a %s record needs exactly one (RFC 8907 section 8.3)", n, cfg.Flags)
	case id == "":
		return configError(sid, nil, "empty task_id (RFC 8907 section 8.3)")
	}
	for _, s := range cfg.Args {
		if k, v, _, ok := tacplus.SplitArg(s); ok && isNumericArg(k) && !decimal(v) {
			return configError(sid, nil, "%s=%q is not a decimal number (RFC 8907 section 8.1)", k, v)
		}
	}
	// A service pair is required (section 8.2), but not cmd: that rule is authorization's. The START and
	// STOP records of a shell session carry service=shell and no cmd.
	if n, _ := argCount(cfg.Args, "service"); n != 1 {
		return configError(sid, nil, "%d service arguments, want exactly one (RFC 8907 section 8.2)", n)
	}
	req := &tacplus.AcctRequest{
		Flags: cfg.Flags, Method: cfg.Method, PrivLvl: cfg.PrivLvl, Type: cfg.Type, Service: cfg.Service,
		User: cfg.User, Port: cfg.Port, RemAddr: cfg.RemAddr, Args: accountingFirst(cfg.Args),
	}
	var scratch [512]byte
	if _, err := req.AppendBody(scratch[:0]); err != nil {
		return configError(sid, err, "invalid accounting REQUEST")
	}
	// Accounting always uses minor version 0 (section 5.4.1).
	m.core.reset(sid, tacplus.VersionByte(tacplus.MinorVersionDefault), tacplus.TypeAcct)
	m.state = AcctIdle
	m.req = req
	m.result = AcctResult{}
	return nil
}

// accountingFirst returns args with the accounting pairs ahead of the others (section 8.3), copying only
// when the order must change.
func accountingFirst(args []string) []string {
	seenOther := false
	for _, s := range args {
		name, _, _, _ := tacplus.SplitArg(s)
		if !isAccountingArg(name) {
			seenOther = true
		} else if seenOther {
			out := make([]string, 0, len(args))
			for _, want := range [2]bool{true, false} {
				for _, s := range args {
					if n, _, _, _ := tacplus.SplitArg(s); isAccountingArg(n) == want {
						out = append(out, s)
					}
				}
			}
			return out
		}
	}
	return args
}

func decimal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Request returns the REQUEST the machine sends (its Args in the order they are sent).
func (m *Acct) Request() *tacplus.AcctRequest { return m.req }

// Result returns the result; it is final once the machine is Done.
func (m *Acct) Result() *AcctResult { return &m.result }

// Step implements Machine. See the transition table in acct_test.go.
func (m *Acct) Step(ev Event) ([]Effect, error) {
	return m.step(ev, m.req, m)
}

func (m *Acct) fail(class, cause error, msg string) { m.finish(0, class, cause, msg) }

func (m *Acct) finish(status tacplus.AcctStatus, class, cause error, msg string) {
	m.result.Status = status
	if class != nil {
		m.result.Err = m.sessionError(class, m.state.String(), cause, msg)
	}
	m.state = AcctDone
	m.complete(Effect{Err: m.result.Err, Acct: &m.result})
}

func (m *Acct) onPacket(ev Event) {
	r, class, cause := acceptReply(&m.core, &ev, "an accounting REPLY",
		func(r *tacplus.AcctReply) bool { return r.Status == tacplus.AcctStatusError })
	if class != nil {
		m.finish(0, class, cause, "bad reply")
		return
	}
	m.replied = true
	m.result.ServerMsg, m.result.Data = r.ServerMsg, r.Data
	switch r.Status {
	case tacplus.AcctStatusSuccess:
		m.finish(r.Status, nil, nil, "")
	case tacplus.AcctStatusError:
		m.finish(r.Status, tacplus.ErrServerError, nil, serverSaid(r.ServerMsg, "the server answered ERROR"))
	case tacplus.AcctStatusFollow:
		m.finish(r.Status, tacplus.ErrServerError, nil,
			serverSaid(r.ServerMsg, "FOLLOW is not supported; the record was not accepted (RFC 8907 section 7.2)"))
	default:
		m.finish(0, tacplus.ErrProtocol, badPacket(tacplus.ReasonEnum, "status", "%s", r.Status), "bad reply")
	}
}
