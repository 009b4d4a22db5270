package fsm_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/tacplus"
)

const (
	zIdle  = fsm.AuthorIdle
	zAwait = fsm.AuthorAwaitReply
	zDone  = fsm.AuthorDone
)

var authorEvents = []string{
	evStart, "PASS_ADD", "PASS_REPL", "FAIL", "ERROR", "FOLLOW", evErrorOtherVer,
	evWrongSeq, evWrongSession, evWrongType, evWrongBody, evWrongVersion, evUndecodable, evBadSecret,
	evInput, evTimeout, evLost, evAbort,
}

// authorTable is the authorization machine (RFC 8907 section 6): REQUEST, then one RESPONSE.
var authorTable = []row[fsm.AuthorState]{
	{zIdle, evStart, zAwait, "send REQUEST", nil},
	{zIdle, "PASS_ADD", zIdle, fxRefused, errUnexpected},
	{zIdle, "PASS_REPL", zIdle, fxRefused, errUnexpected},
	{zIdle, "FAIL", zIdle, fxRefused, errUnexpected},
	{zIdle, "ERROR", zIdle, fxRefused, errUnexpected},
	{zIdle, "FOLLOW", zIdle, fxRefused, errUnexpected},
	{zIdle, evErrorOtherVer, zIdle, fxRefused, errUnexpected},
	{zIdle, evWrongSeq, zIdle, fxRefused, errUnexpected},
	{zIdle, evWrongSession, zIdle, fxRefused, errUnexpected},
	{zIdle, evWrongType, zIdle, fxRefused, errUnexpected},
	{zIdle, evWrongBody, zIdle, fxRefused, errUnexpected},
	{zIdle, evWrongVersion, zIdle, fxRefused, errUnexpected},
	{zIdle, evUndecodable, zIdle, fxRefused, errUnexpected},
	{zIdle, evBadSecret, zIdle, fxRefused, errUnexpected},
	{zIdle, evInput, zIdle, fxRefused, errUnexpected},
	{zIdle, evTimeout, zDone, fxComplete, errTimeout},
	{zIdle, evLost, zDone, fxComplete, errLost},
	{zIdle, evAbort, zDone, fxComplete, errAborted},

	{zAwait, evStart, zAwait, fxRefused, errUnexpected},
	{zAwait, "PASS_ADD", zDone, fxComplete, nil},
	{zAwait, "PASS_REPL", zDone, fxComplete, nil},
	{zAwait, "FAIL", zDone, fxComplete, errDenied},
	{zAwait, "ERROR", zDone, fxComplete, errServer},
	{zAwait, "FOLLOW", zDone, fxComplete, errDenied}, // FOLLOW counts as FAIL
	{zAwait, evErrorOtherVer, zDone, fxComplete, errServer},
	{zAwait, evWrongSeq, zDone, fxComplete, errProto},
	{zAwait, evWrongSession, zDone, fxComplete, errProto},
	{zAwait, evWrongType, zDone, fxComplete, errProto},
	{zAwait, evWrongBody, zDone, fxComplete, errProto},
	{zAwait, evWrongVersion, zDone, fxComplete, errProto},
	{zAwait, evUndecodable, zDone, fxComplete, errProto},
	{zAwait, evBadSecret, zDone, fxComplete, errSecret},
	{zAwait, evInput, zAwait, fxRefused, errUnexpected}, // authorization never prompts
	{zAwait, evTimeout, zDone, fxComplete, errTimeout},
	{zAwait, evLost, zDone, fxComplete, errLost},
	{zAwait, evAbort, zDone, fxComplete, errAborted}, // no abort packet exists for authorization

	{zDone, evStart, zDone, fxRefused, errFinished},
	{zDone, "PASS_ADD", zDone, fxRefused, errFinished},
	{zDone, "PASS_REPL", zDone, fxRefused, errFinished},
	{zDone, "FAIL", zDone, fxRefused, errFinished},
	{zDone, "ERROR", zDone, fxRefused, errFinished},
	{zDone, "FOLLOW", zDone, fxRefused, errFinished},
	{zDone, evErrorOtherVer, zDone, fxRefused, errFinished},
	{zDone, evWrongSeq, zDone, fxRefused, errFinished},
	{zDone, evWrongSession, zDone, fxRefused, errFinished},
	{zDone, evWrongType, zDone, fxRefused, errFinished},
	{zDone, evWrongBody, zDone, fxRefused, errFinished},
	{zDone, evWrongVersion, zDone, fxRefused, errFinished},
	{zDone, evUndecodable, zDone, fxRefused, errFinished},
	{zDone, evBadSecret, zDone, fxRefused, errFinished},
	{zDone, evInput, zDone, fxRefused, errFinished},
	{zDone, evTimeout, zDone, fxRefused, errFinished},
	{zDone, evLost, zDone, fxRefused, errFinished},
	{zDone, evAbort, zDone, fxRefused, errFinished},
}

var authorStatuses = map[string]tacplus.AuthorStatus{
	"PASS_ADD": tacplus.AuthorStatusPassAdd, "PASS_REPL": tacplus.AuthorStatusPassRepl,
	"FAIL": tacplus.AuthorStatusFail, "ERROR": tacplus.AuthorStatusError, "FOLLOW": tacplus.AuthorStatusFollow,
	"PASS": tacplus.AuthorStatusPassAdd, // the generic "good packet" of commonPacket
}

func authorResponse(status string) tacplus.Body {
	s, ok := authorStatuses[status]
	if !ok {
		panic("no authorization status " + status)
	}
	return &tacplus.AuthorResponse{Status: s, Args: []string{"priv-lvl=15"}, ServerMsg: "server says " + status}
}

var shellShow = []string{"service=shell", "cmd=show", "cmd-arg=version"}

func TestAuthorTransitions(t *testing.T) {
	cfg := fsm.AuthorConfig{SessionID: 0xa1, Method: tacplus.MethodTACACSPlus, PrivLvl: 1, User: "alice",
		Service: tacplus.ServiceLogin, Args: shellShow}
	h := harness[fsm.AuthorState]{
		states: fsm.AuthorStates(),
		events: authorEvents,
		state:  func(m fsm.Machine) fsm.AuthorState { return m.(*fsm.Author).State() },
		reach: func(t *testing.T, s fsm.AuthorState) *driven {
			m, err := fsm.NewAuthor(cfg)
			if err != nil {
				t.Fatal(err)
			}
			d := &driven{m: m, sid: cfg.SessionID, ptype: tacplus.TypeAuthor, version: 0xc0}
			if s != zIdle {
				d.step(t, fsm.Start())
			}
			if s == zDone {
				d.step(t, fsm.Packet(d.header(2), authorResponse("PASS_ADD")))
			}
			return d
		},
		packet: func(d *driven, event string) fsm.Event {
			return commonPacket(d, event, authorResponse, &tacplus.AcctReply{Status: tacplus.AcctStatusSuccess})
		},
	}
	runTable(t, h, authorTable)
}

func runAuthor(t *testing.T, cfg fsm.AuthorConfig, resp *tacplus.AuthorResponse) *fsm.AuthorResult {
	t.Helper()
	m, err := fsm.NewAuthor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	effs, err := m.Step(fsm.Start())
	if err != nil {
		t.Fatal(err)
	}
	h := effs[0].Header
	h.SeqNo = 2
	effs, err = m.Step(fsm.Packet(h, resp))
	if err != nil || len(effs) != 1 || effs[0].Author == nil {
		t.Fatalf("reply: %v %v", effs, err)
	}
	return effs[0].Author
}

// Section 6.2: PASS_ADD adds the returned pairs to the request's, PASS_REPL replaces them.
func TestAuthorEffectiveArgs(t *testing.T) {
	cfg := fsm.AuthorConfig{SessionID: 0xa2, User: "alice", Args: shellShow}
	req := fsm.Args{{Name: "service", Value: "shell"}, {Name: "cmd", Value: "show"}, {Name: "cmd-arg", Value: "version"}}
	returned := []string{"priv-lvl=15", "idletime*30"}
	ret := fsm.Args{{Name: "priv-lvl", Value: "15"}, {Name: "idletime", Value: "30", Optional: true}}

	r := runAuthor(t, cfg, &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassAdd, Args: returned})
	if r.Err != nil || !reflect.DeepEqual(r.Returned, ret) || !reflect.DeepEqual(r.Effective, append(append(fsm.Args{}, req...), ret...)) {
		t.Errorf("PASS_ADD: %s", r)
	}
	if a, ok := r.Effective.Get("priv-lvl"); !ok || a.Value != "15" || a.Optional {
		t.Errorf("Get(priv-lvl) = %v, %v", a, ok)
	}
	if got := r.Effective.Mandatory().Strings(); !reflect.DeepEqual(got, append(append([]string{}, shellShow...), "priv-lvl=15")) {
		t.Errorf("Mandatory = %q", got)
	}
	if got := r.Effective.OptionalArgs().Strings(); !reflect.DeepEqual(got, []string{"idletime*30"}) {
		t.Errorf("OptionalArgs = %q", got)
	}

	r = runAuthor(t, cfg, &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassRepl, Args: returned})
	if r.Err != nil || !reflect.DeepEqual(r.Effective, ret) {
		t.Errorf("PASS_REPL: %s", r)
	}
	r = runAuthor(t, cfg, &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassRepl})
	if r.Err != nil || len(r.Effective) != 0 {
		t.Errorf("PASS_REPL without pairs must authorize nothing from the request: %s", r)
	}
	r = runAuthor(t, cfg, &tacplus.AuthorResponse{Status: tacplus.AuthorStatusFail, ServerMsg: "not for you", Args: returned})
	var te *tacplus.Error
	if !errors.Is(r.Err, tacplus.ErrDenied) || !errors.As(r.Err, &te) || te.Msg == "" || r.Effective != nil {
		t.Errorf("FAIL: %s err=%v", r, r.Err)
	}
	r = runAuthor(t, cfg, &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassAdd, Args: []string{"novalue"}})
	if !errors.Is(r.Err, tacplus.ErrProtocol) || tacplus.ReasonOf(r.Err) != tacplus.ReasonAVPair {
		t.Errorf("bad returned pair: %v", r.Err)
	}
}

func TestAuthorConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no service", []string{"cmd=show"}},
		{"two services", []string{"service=shell", "service=ppp", "cmd=x"}},
		{"shell without cmd", []string{"service=shell"}},
		{"bad pair", []string{"service=shell", "cmd=show", "=x"}},
		{"unprintable", []string{"service=shell", "cmd=show\x07"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := fsm.NewAuthor(fsm.AuthorConfig{SessionID: 1, Args: tt.args}); !errors.Is(err, tacplus.ErrConfig) {
				t.Errorf("NewAuthor = %v, want ErrConfig", err)
			}
		})
	}
	if _, err := fsm.NewAuthor(fsm.AuthorConfig{Args: shellShow}); !errors.Is(err, tacplus.ErrConfig) {
		t.Errorf("session 0 accepted: %v", err)
	}
	if _, err := fsm.NewAuthor(fsm.AuthorConfig{SessionID: 1, Args: []string{"service=shell", "cmd*"}}); err != nil {
		t.Errorf("shell authorization with an empty optional cmd refused: %v", err)
	}
}
