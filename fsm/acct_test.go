package fsm_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/tacplus"
)

const (
	cIdle  = fsm.AcctIdle
	cAwait = fsm.AcctAwaitReply
	cDone  = fsm.AcctDone
)

var acctEvents = []string{
	evStart, "SUCCESS", "ERROR", "FOLLOW", evErrorOtherVer,
	evWrongSeq, evWrongSession, evWrongType, evWrongBody, evWrongVersion, evUndecodable, evBadSecret,
	evInput, evTimeout, evLost, evAbort,
}

// acctTable is the accounting machine (RFC 8907 section 7): REQUEST, then one REPLY.
var acctTable = []row[fsm.AcctState]{
	{cIdle, evStart, cAwait, "send REQUEST", nil},
	{cIdle, "SUCCESS", cIdle, fxRefused, errUnexpected},
	{cIdle, "ERROR", cIdle, fxRefused, errUnexpected},
	{cIdle, "FOLLOW", cIdle, fxRefused, errUnexpected},
	{cIdle, evErrorOtherVer, cIdle, fxRefused, errUnexpected},
	{cIdle, evWrongSeq, cIdle, fxRefused, errUnexpected},
	{cIdle, evWrongSession, cIdle, fxRefused, errUnexpected},
	{cIdle, evWrongType, cIdle, fxRefused, errUnexpected},
	{cIdle, evWrongBody, cIdle, fxRefused, errUnexpected},
	{cIdle, evWrongVersion, cIdle, fxRefused, errUnexpected},
	{cIdle, evUndecodable, cIdle, fxRefused, errUnexpected},
	{cIdle, evBadSecret, cIdle, fxRefused, errUnexpected},
	{cIdle, evInput, cIdle, fxRefused, errUnexpected},
	{cIdle, evTimeout, cDone, fxComplete, errTimeout},
	{cIdle, evLost, cDone, fxComplete, errLost},
	{cIdle, evAbort, cDone, fxComplete, errAborted},

	{cAwait, evStart, cAwait, fxRefused, errUnexpected},
	{cAwait, "SUCCESS", cDone, fxComplete, nil},
	{cAwait, "ERROR", cDone, fxComplete, errServer},
	{cAwait, "FOLLOW", cDone, fxComplete, errServer}, // not taken: the record may go elsewhere
	{cAwait, evErrorOtherVer, cDone, fxComplete, errServer},
	{cAwait, evWrongSeq, cDone, fxComplete, errProto},
	{cAwait, evWrongSession, cDone, fxComplete, errProto},
	{cAwait, evWrongType, cDone, fxComplete, errProto},
	{cAwait, evWrongBody, cDone, fxComplete, errProto},
	{cAwait, evWrongVersion, cDone, fxComplete, errProto},
	{cAwait, evUndecodable, cDone, fxComplete, errProto},
	{cAwait, evBadSecret, cDone, fxComplete, errSecret},
	{cAwait, evInput, cAwait, fxRefused, errUnexpected},
	{cAwait, evTimeout, cDone, fxComplete, errTimeout},
	{cAwait, evLost, cDone, fxComplete, errLost},
	{cAwait, evAbort, cDone, fxComplete, errAborted}, // no abort packet exists for accounting

	{cDone, evStart, cDone, fxRefused, errFinished},
	{cDone, "SUCCESS", cDone, fxRefused, errFinished},
	{cDone, "ERROR", cDone, fxRefused, errFinished},
	{cDone, "FOLLOW", cDone, fxRefused, errFinished},
	{cDone, evErrorOtherVer, cDone, fxRefused, errFinished},
	{cDone, evWrongSeq, cDone, fxRefused, errFinished},
	{cDone, evWrongSession, cDone, fxRefused, errFinished},
	{cDone, evWrongType, cDone, fxRefused, errFinished},
	{cDone, evWrongBody, cDone, fxRefused, errFinished},
	{cDone, evWrongVersion, cDone, fxRefused, errFinished},
	{cDone, evUndecodable, cDone, fxRefused, errFinished},
	{cDone, evBadSecret, cDone, fxRefused, errFinished},
	{cDone, evInput, cDone, fxRefused, errFinished},
	{cDone, evTimeout, cDone, fxRefused, errFinished},
	{cDone, evLost, cDone, fxRefused, errFinished},
	{cDone, evAbort, cDone, fxRefused, errFinished},
}

var acctStatuses = map[string]tacplus.AcctStatus{
	"SUCCESS": tacplus.AcctStatusSuccess, "ERROR": tacplus.AcctStatusError, "FOLLOW": tacplus.AcctStatusFollow,
	"PASS": tacplus.AcctStatusSuccess, // the generic "good packet" of commonPacket
}

func acctReply(status string) tacplus.Body {
	s, ok := acctStatuses[status]
	if !ok {
		panic("no accounting status " + status)
	}
	return &tacplus.AcctReply{Status: s, ServerMsg: "server says " + status}
}

func TestAcctTransitions(t *testing.T) {
	for _, flags := range []tacplus.AcctFlag{tacplus.AcctFlagStart, tacplus.AcctFlagStop, tacplus.AcctFlagWatchdog,
		tacplus.AcctFlagWatchdog | tacplus.AcctFlagStart} {
		t.Run(flags.String(), func(t *testing.T) {
			cfg := fsm.AcctConfig{SessionID: 0xac, Flags: flags, Method: tacplus.MethodTACACSPlus, User: "alice",
				Args: []string{"task_id=42", "start_time=1700000000", "service=shell", "cmd=show"}}
			h := harness[fsm.AcctState]{
				states: fsm.AcctStates(),
				events: acctEvents,
				state:  func(m fsm.Machine) fsm.AcctState { return m.(*fsm.Acct).State() },
				reach: func(t *testing.T, s fsm.AcctState) *driven {
					m, err := fsm.NewAcct(cfg)
					if err != nil {
						t.Fatal(err)
					}
					d := &driven{m: m, sid: cfg.SessionID, ptype: tacplus.TypeAcct, version: 0xc0}
					if s != cIdle {
						d.step(t, fsm.Start())
					}
					if s == cDone {
						d.step(t, fsm.Packet(d.header(2), acctReply("SUCCESS")))
					}
					return d
				},
				packet: func(d *driven, event string) fsm.Event {
					return commonPacket(d, event, acctReply, &tacplus.AuthenReply{Status: tacplus.AuthenStatusPass})
				},
			}
			runTable(t, h, acctTable)
		})
	}
}

// Section 7.2 and 8.3: the caller's record is checked before anything is sent.
func TestAcctConfigErrors(t *testing.T) {
	ok := []string{"task_id=1", "service=shell", "cmd=ls"}
	tests := []struct {
		name  string
		flags tacplus.AcctFlag
		args  []string
	}{
		{"no flags", 0, ok},
		{"stop and watchdog", tacplus.AcctFlagStop | tacplus.AcctFlagWatchdog, ok},
		{"start and stop", tacplus.AcctFlagStart | tacplus.AcctFlagStop, ok},
		{"more", tacplus.AcctFlagStart | tacplus.AcctFlagMore, ok},
		{"no task_id", tacplus.AcctFlagStart, []string{"service=shell", "cmd=ls"}},
		{"empty task_id", tacplus.AcctFlagStop, []string{"task_id=", "service=shell", "cmd=ls"}},
		{"two task_ids", tacplus.AcctFlagWatchdog, []string{"task_id=1", "task_id=2", "service=shell", "cmd=ls"}},
		{"no service", tacplus.AcctFlagStart, []string{"task_id=1"}},
		{"start_time not a number", tacplus.AcctFlagStart, []string{"task_id=1", "start_time=yesterday", "service=shell", "cmd=ls"}},
		{"negative elapsed_time", tacplus.AcctFlagStop, []string{"task_id=1", "elapsed_time=-3", "service=shell", "cmd=ls"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := fsm.NewAcct(fsm.AcctConfig{SessionID: 1, Flags: tt.flags, Args: tt.args}); !errors.Is(err, tacplus.ErrConfig) {
				t.Errorf("NewAcct = %v, want ErrConfig", err)
			}
		})
	}
}

// Section 8.3: the accounting pairs precede the authorization pairs; each group keeps its order.
func TestAcctArgOrder(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"task_id=7", "start_time=1", "service=shell", "cmd=ls"}, []string{"task_id=7", "start_time=1", "service=shell", "cmd=ls"}},
		{[]string{"service=shell", "task_id=7", "cmd=ls", "stop_time=9", "elapsed_time=3"},
			[]string{"task_id=7", "stop_time=9", "elapsed_time=3", "service=shell", "cmd=ls"}},
	}
	for _, tt := range tests {
		m, err := fsm.NewAcct(fsm.AcctConfig{SessionID: 1, Flags: tacplus.AcctFlagStop, Args: tt.in})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Request().Args; !reflect.DeepEqual(got, tt.want) {
			t.Errorf("args %q sent as %q, want %q", tt.in, got, tt.want)
		}
	}
}
