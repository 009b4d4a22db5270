package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// The truth table of the stack, written from pam.conf(5) (Linux-PAM). Each row is a stack of controls,
// the result each handler would give if it is called, and what the stack must do: its result, how many
// handlers it calls (handlers run in order, so that is a prefix), and which handler's error it returns
// (-1: none, the stack's controls denied on their own).
//
// The man page's words, quoted where a row depends on them:
//
//	required:   "failure of such a PAM will ultimately lead to the PAM-API returning failure but only after
//	            the remaining stacked modules ... have been invoked"
//	requisite:  "like required, however, in the case that such a module returns a failure, control is
//	            directly returned to the application"
//	sufficient: "if such a module succeeds and no prior required module has failed the PAM framework
//	            returns success to the application ... immediately without calling any further modules in
//	            the stack. A failure of a sufficient module is ignored and processing of the PAM module
//	            stack continues unaffected."
//	optional:   "the success or failure of this module is only important if it is the only module in the
//	            stack associated with this service+type"
//	bad:        "if this module is the first in the stack to fail, its status value will be used for that
//	            of the whole stack"
//	ok:         "if the former state of the stack holds some value that is indicative of a modules
//	            failure, this 'ok' value will not be used to override that value"
//	reset:      "clear all memory of the state of the module stack and start again with the next stacked
//	            module"
//
// Results: S success, F fail, U unavailable, E error.
var truthTable = []struct {
	name    string
	stack   []string
	results string
	want    Result
	calls   int
	cause   int
}{
	// One handler: every flag decides alone ("optional ... only important if it is the only module").
	{"required S", []string{"required"}, "S", Success, 1, -1},
	{"required F", []string{"required"}, "F", Fail, 1, 0},
	{"required U", []string{"required"}, "U", Unavailable, 1, 0},
	{"required E", []string{"required"}, "E", Error, 1, 0},
	{"requisite S", []string{"requisite"}, "S", Success, 1, -1},
	{"requisite F", []string{"requisite"}, "F", Fail, 1, 0},
	{"requisite U", []string{"requisite"}, "U", Unavailable, 1, 0},
	{"requisite E", []string{"requisite"}, "E", Error, 1, 0},
	{"sufficient S", []string{"sufficient"}, "S", Success, 1, -1},
	// A stack where no module set the outcome is denied: Linux-PAM returns PAM_PERM_DENIED (its
	// PAM_MUST_FAIL_CODE), never the result of a line whose control ignored it. (An earlier version of
	// this table reported "the first result that was not a success" here, which turned a FAIL after an
	// ignored unavailable line into unavailable: the field report's bug.)
	{"sufficient F alone is denied", []string{"sufficient"}, "F", Denied, 1, -1},
	{"sufficient U alone is denied", []string{"sufficient"}, "U", Denied, 1, -1},
	{"sufficient E alone is denied", []string{"sufficient"}, "E", Denied, 1, -1},
	{"optional S alone succeeds", []string{"optional"}, "S", Success, 1, -1},
	{"optional F alone is denied", []string{"optional"}, "F", Denied, 1, -1},
	{"optional U alone is denied", []string{"optional"}, "U", Denied, 1, -1},

	// required: a failure fails the stack, but the rest still run.
	{"required S S", []string{"required", "required"}, "SS", Success, 2, -1},
	{"required F runs the rest", []string{"required", "required"}, "FS", Fail, 2, 0},
	{"required: the first failure is returned", []string{"required", "required"}, "UF", Unavailable, 2, 0},
	{"required: the first failure is returned (F then U)", []string{"required", "required"}, "FU", Fail, 2, 0},
	{"required S then F", []string{"required", "required"}, "SF", Fail, 2, 1},

	// requisite: a failure returns at once.
	{"requisite F short-circuits", []string{"requisite", "required"}, "FS", Fail, 1, 0},
	{"requisite U short-circuits", []string{"requisite", "required"}, "UF", Unavailable, 1, 0},
	{"requisite S continues", []string{"requisite", "required"}, "SF", Fail, 2, 1},
	{"required F then requisite U: first failure kept", []string{"required", "requisite", "required"}, "FUS", Fail, 2, 0},
	{"requisite in the middle", []string{"required", "requisite", "required"}, "SFS", Fail, 2, 1},

	// sufficient: a success returns at once unless a required failed before; a failure is ignored.
	{"sufficient S returns at once", []string{"sufficient", "required"}, "SF", Success, 1, -1},
	{"required S then sufficient S returns", []string{"required", "sufficient", "required"}, "SSF", Success, 2, -1},
	{"sufficient ignored after a required failure", []string{"required", "sufficient", "required"}, "FSS", Fail, 3, 0},
	{"sufficient F is ignored", []string{"sufficient", "required"}, "FS", Success, 2, -1},
	{"sufficient F then sufficient S", []string{"sufficient", "sufficient"}, "FS", Success, 2, -1},
	{"sufficient F F: nothing decided", []string{"sufficient", "sufficient"}, "FF", Denied, 2, -1},
	{"sufficient U F: denied, never unavailable", []string{"sufficient", "sufficient"}, "UF", Denied, 2, -1},
	{"optional U then required F: the FAIL", []string{"optional", "required"}, "UF", Fail, 2, 1},
	{"sufficient U then requisite F: the FAIL", []string{"sufficient", "requisite", "required"}, "UFS", Fail, 2, 1},
	{"requisite S then sufficient S", []string{"requisite", "sufficient", "required"}, "SSF", Success, 2, -1},
	{"sufficient after optional F", []string{"optional", "sufficient", "required"}, "FSF", Success, 2, -1},

	// optional: matters only when nothing else decides.
	{"optional F is ignored beside a required S", []string{"optional", "required"}, "FS", Success, 2, -1},
	{"optional S does not save a required F", []string{"optional", "required"}, "SF", Fail, 2, 1},
	{"required S then optional F", []string{"required", "optional"}, "SF", Success, 2, -1},
	{"optional F then optional S", []string{"optional", "optional"}, "FS", Success, 2, -1},
	{"optional S beside a sufficient F", []string{"optional", "sufficient"}, "SF", Success, 2, -1},
	{"optional F F: nothing decided", []string{"optional", "optional"}, "FF", Denied, 2, -1},
	{"optional U F: nothing decided", []string{"optional", "optional"}, "UF", Denied, 2, -1},

	// The bracket form.
	{"MethodList S", []string{mlist}, "S", Success, 1, -1},
	{"MethodList F stops", []string{mlist, mlist}, "FS", Fail, 1, 0},
	{"MethodList U moves on to S", []string{mlist, mlist}, "US", Success, 2, -1},
	{"MethodList U moves on to F", []string{mlist, mlist}, "UF", Fail, 2, 1},
	{"MethodList U U: nothing decided", []string{mlist, mlist}, "UU", Denied, 2, -1},
	{"MethodList U then MethodListEnd U: unavailable", []string{mlist, mend}, "UU", Unavailable, 2, 1},
	{"MethodList U then MethodListEnd F", []string{mlist, mend}, "UF", Fail, 2, 1},
	{"MethodList U then MethodListEnd E", []string{mlist, mend}, "UE", Error, 2, 1},
	{"MethodList E stops", []string{mlist, mlist}, "ES", Error, 1, 0},
	{"local fallback only when unreachable: F", []string{mlist, "[success=done default=die]"}, "UF", Fail, 2, 1},
	{"local fallback only when unreachable: S", []string{mlist, "[success=done default=die]"}, "US", Success, 2, -1},
	{"local fallback not tried after FAIL", []string{mlist, "[success=done default=die]"}, "FS", Fail, 1, 0},
	{"bad: a success counted as failure", []string{"[success=bad default=ignore]"}, "S", Denied, 1, -1},
	{"ok never overrides an earlier failure", []string{"[default=ok]", "required"}, "FS", Fail, 2, 0},
	{"ok after bad keeps the failure", []string{"required", "[default=ok]"}, "FS", Fail, 2, 0},
	{"done with a failed positive outcome returns", []string{"[default=ok]", "[success=done default=bad]", "required"}, "FSS", Fail, 2, 0},
	{"done does not return after a failure", []string{"required", "[success=done default=bad]", "required"}, "FSS", Fail, 3, 0},
	{"fail=done returns the failure", []string{"[fail=done default=ignore]", "required"}, "FS", Fail, 1, 0},
	{"die in the middle", []string{"required", "[fail=die default=ok]", "required"}, "SFS", Fail, 2, 1},
	{"unavailable=ignore", []string{"[unavailable=ignore default=bad]", "required"}, "US", Success, 2, -1},
	{"missing values default to bad", []string{"[success=ok]", "required"}, "US", Unavailable, 2, 0},
	{"reset forgets a failure", []string{"required", "[success=reset default=ignore]", "required"}, "FSS", Success, 3, -1},
	{"reset then nothing decided", []string{"required", "[default=reset]", "optional"}, "FUF", Denied, 3, -1},
	{"reset forgets a success", []string{"required", "[default=reset]", "required"}, "SUF", Fail, 3, 2},
	{"reset after done-less ok", []string{"[default=ok]", "[default=reset]"}, "FS", Denied, 2, -1},
	{"ignore everywhere: nothing decided, all succeeded", []string{"[default=ignore]"}, "S", Denied, 1, -1},

	// Jumps: N skips the next N lines and changes nothing; past the end the stack is denied.
	{"success=1 skips a line", []string{"[success=1 default=ignore]", "requisite", "required"}, "SFS", Success, 2, -1},
	{"success=1 skips to a FAIL", []string{"[success=1 default=ignore]", "requisite", "required"}, "SSF", Fail, 2, 2},
	{"default=2 skips two lines", []string{"[success=ok default=2]", "required", "required", "required"}, "FSSF", Fail, 2, 3},
	{"a jump does not decide", []string{"[success=1 default=bad]", "required", "optional"}, "SFS", Success, 2, -1},
	{"a jump after a failure keeps it", []string{"required", "[success=1 default=ignore]", "required", "required"}, "FSSS", Fail, 3, 0},
	{"a jump past the end is denied", []string{"[success=2 default=ignore]", "required"}, "SS", Denied, 1, -1},
	{"a jump past the end overrides a failure", []string{"required", "[default=3]", "required"}, "FSS", Denied, 2, -1},
	{"a jump to the end is no jump past it", []string{"required", "[default=1]", "required"}, "SSF", Success, 2, -1},
}

const (
	mlist = "[success=done fail=die unavailable=ignore default=die]"
	mend  = "[success=done default=die]"
)

func parseResults(s string) []Result {
	out := make([]Result, len(s))
	for i, c := range s {
		out[i] = map[rune]Result{'S': Success, 'F': Fail, 'U': Unavailable, 'E': Error}[c]
	}
	return out
}

func TestTruthTable(t *testing.T) {
	for _, tc := range truthTable {
		t.Run(tc.name, func(t *testing.T) {
			results := parseResults(tc.results)
			if len(results) != len(tc.stack) {
				t.Fatalf("bad row: %d controls, %d results", len(tc.stack), len(results))
			}
			handlers := make([]*scripted, len(results))
			elems := make([]Element, len(results))
			for i, r := range results {
				c, err := ParseControl(tc.stack[i])
				if err != nil {
					t.Fatal(err)
				}
				handlers[i] = &scripted{err: errFor(r, i)}
				elems[i] = Element{Name: fmt.Sprintf("h%d", i), Handler: handlers[i], Control: c}
			}
			st, err := NewStack(newClock().Now, elems...)
			if err != nil {
				t.Fatal(err)
			}
			auth, rc, err := st.Authenticate(context.Background(), Request{User: "alice", Password: "pw", Type: PAP, Service: Login}, nil, nil)

			calls := 0
			for i, h := range handlers {
				if h.calls > 1 {
					t.Errorf("handler %d called %d times", i, h.calls)
				}
				if h.calls == 1 {
					if i != calls && !strings.ContainsAny(strings.Join(tc.stack, ""), "0123456789") {
						t.Errorf("handler %d called after a handler that was not", i)
					}
					calls++
				}
				if rc.Steps[i].Tried != (h.calls == 1) {
					t.Errorf("step %d Tried = %t, calls = %d", i, rc.Steps[i].Tried, h.calls)
				}
			}
			if calls != tc.calls {
				t.Errorf("called %d handlers, want %d", calls, tc.calls)
			}
			if rc.Result != tc.want {
				t.Errorf("result %s, want %s", rc.Result, tc.want)
			}
			if tc.want == Success {
				if err != nil || auth == nil {
					t.Fatalf("err = %v, auth = %v; want success", err, auth)
				}
				return
			}
			var d *Denial
			if !errors.As(err, &d) {
				t.Fatalf("err = %v, want a *Denial", err)
			}
			if auth != nil {
				t.Errorf("a denial returned an Authentication")
			}
			if d.Result != tc.want {
				t.Errorf("Denial.Result = %s, want %s", d.Result, tc.want)
			}
			wantClass := map[Result]error{Fail: tacplus.ErrAuthenticationFailed, Unavailable: tacplus.ErrUnreachable,
				Error: tacplus.ErrAborted, Denied: tacplus.ErrAuthenticationFailed}[tc.want]
			if tc.cause < 0 {
				if d.Cause != nil {
					t.Errorf("cause = %v, want none", d.Cause)
				}
			} else if tc.cause >= 0 && d.Cause != handlers[tc.cause].err {
				t.Errorf("cause = %v, want handler %d's error %v", d.Cause, tc.cause, handlers[tc.cause].err)
			}
			if tc.cause < 0 && !strings.Contains(err.Error(), "(denied by the stack's controls)") && !strings.Contains(err.Error(), "(no line of the stack decided") {
				t.Errorf("err %q does not say the controls denied", err)
			}
			if !errors.Is(err, wantClass) {
				t.Errorf("errors.Is(%v, %v) = false", err, wantClass)
			}
		})
	}
}

// TestFlagProperties checks, over every stack of up to three flag words and every sequence of results,
// the sentences of pam.conf(5) as properties, independently of the table above.
func TestFlagProperties(t *testing.T) {
	flags := []string{"required", "requisite", "sufficient", "optional"}
	var stacks [][]string
	var grow func(prefix []string)
	grow = func(prefix []string) {
		if len(prefix) > 0 {
			stacks = append(stacks, append([]string(nil), prefix...))
		}
		if len(prefix) == 3 {
			return
		}
		for _, f := range flags {
			grow(append(prefix, f))
		}
	}
	grow(nil)
	n := 0
	for _, stack := range stacks {
		forEachResults(len(stack), func(results []Result) {
			n++
			got, calls := runFlags(t, stack, results)
			desc := fmt.Sprintf("%v with %v", stack, results)
			requiredFailed := false
			for i := 0; i < calls; i++ {
				f, r := stack[i], results[i]
				switch {
				case (f == "required" || f == "requisite") && r != Success:
					requiredFailed = true
					if got == Success {
						t.Errorf("%s: a %s failure must fail the stack", desc, f)
					}
					if f == "requisite" && calls != i+1 {
						t.Errorf("%s: requisite failure at %d must return at once (calls=%d)", desc, i, calls)
					}
				case f == "sufficient" && r == Success && !requiredFailed:
					if got != Success || calls != i+1 {
						t.Errorf("%s: sufficient success at %d must return success at once (got %s, calls=%d)", desc, i, got, calls)
					}
				}
			}
			if calls < len(stack) && got == Success && stack[calls-1] != "sufficient" {
				t.Errorf("%s: only a sufficient success may end a stack early with success", desc)
			}
			if calls < len(stack) && got != Success && stack[calls-1] != "requisite" {
				t.Errorf("%s: only a requisite failure may end a stack early with failure", desc)
			}
			if got == Success {
				counted := false
				for i := 0; i < calls; i++ {
					if results[i] == Success {
						counted = true
					}
				}
				if !counted {
					t.Errorf("%s: success with no handler succeeding", desc)
				}
			}
			// "optional ... only important if it is the only module": an optional's result never changes
			// the outcome when a required or requisite handler ran.
			for i := 0; i < calls; i++ {
				if stack[i] != "optional" {
					continue
				}
				hasRequired := false
				for j := 0; j < len(stack); j++ {
					if stack[j] == "required" || stack[j] == "requisite" {
						hasRequired = true
					}
				}
				if !hasRequired {
					continue
				}
				flipped := append([]Result(nil), results...)
				if flipped[i] == Success {
					flipped[i] = Fail
				} else {
					flipped[i] = Success
				}
				g2, _ := runFlags(t, stack, flipped)
				if (g2 == Success) != (got == Success) {
					t.Errorf("%s: optional at %d changed the outcome beside a required module", desc, i)
				}
			}
		})
	}
	t.Logf("%d stacks checked", n)
}

func forEachResults(n int, f func([]Result)) {
	rs := make([]Result, n)
	var rec func(i int)
	rec = func(i int) {
		if i == n {
			f(rs)
			return
		}
		for _, r := range Results {
			rs[i] = r
			rec(i + 1)
		}
	}
	rec(0)
}

func runFlags(t *testing.T, stack []string, results []Result) (Result, int) {
	t.Helper()
	elems := make([]Element, len(stack))
	hs := make([]*scripted, len(stack))
	for i, f := range stack {
		c, _ := ParseControl(f)
		hs[i] = &scripted{err: errFor(results[i], i)}
		elems[i] = Element{Name: fmt.Sprint(i), Handler: hs[i], Control: c}
	}
	st, err := NewStack(newClock().Now, elems...)
	if err != nil {
		t.Fatal(err)
	}
	_, rc, _ := st.Authenticate(context.Background(), Request{User: "u", Password: "p", Type: PAP, Service: Login}, nil, nil)
	calls := 0
	for _, h := range hs {
		calls += h.calls
	}
	return rc.Result, calls
}

// TestNetworkGearRule is the rule network operators rely on (docs/architecture.md, retry safety), through the default
// stack over two server groups: FAIL stops; unreachable, timeout, ERROR, a lost connection, a bad secret
// or a garbled reply moves on to the next group.
func TestNetworkGearRule(t *testing.T) {
	moveOn := []error{
		&tacplus.Error{Class: tacplus.ErrUnreachable, Server: "a:49"},
		&tacplus.Error{Class: tacplus.ErrTimeout, Server: "a:49"},
		&tacplus.Error{Class: tacplus.ErrServerError, Server: "a:49", Msg: "database down"},
		&tacplus.Error{Class: tacplus.ErrConnectionLost, Server: "a:49"},
		&tacplus.Error{Class: tacplus.ErrBadSecret, Server: "a:49"},
		&tacplus.Error{Class: tacplus.ErrProtocol, Server: "a:49"},
		context.DeadlineExceeded,
	}
	for _, first := range moveOn {
		for _, second := range []error{nil, failAt("b:49", "no"), timeoutAt("b:49")} {
			name := fmt.Sprintf("%v then %v", tacplus.ClassName(first), tacplus.ClassName(second))
			t.Run(name, func(t *testing.T) {
				agent := &fakeAgent{groups: map[string][]fakeServer{
					"core": {{addr: "a:49", err: first}}, "backup": {{addr: "b:49", err: second}},
				}}
				st, err := DefaultStack(Registry{Tacacs: agent, Groups: []string{"core", "backup"}, Now: newClock().Now})
				if err != nil {
					t.Fatal(err)
				}
				_, rc, err := st.Authenticate(context.Background(), Request{User: "alice", Password: "pw", Type: PAP, Service: Login}, nil, nil)
				if agent.calls["backup"] != 1 {
					t.Fatalf("backup group not tried after %v", first)
				}
				switch {
				case second == nil && err != nil:
					t.Errorf("err = %v, want success from backup", err)
				case second != nil && tacplus.ClassOf(second) == tacplus.ErrAuthenticationFailed && !errors.Is(err, tacplus.ErrAuthenticationFailed):
					t.Errorf("err = %v, want the backup's FAIL", err)
				case second != nil && tacplus.ClassOf(second) == tacplus.ErrTimeout && (!errors.Is(err, tacplus.ErrUnreachable) || rc.Result != Unavailable):
					t.Errorf("err = %v, want unreachable", err)
				}
			})
		}
	}
	t.Run("FAIL stops", func(t *testing.T) {
		agent := &fakeAgent{groups: map[string][]fakeServer{
			"core": {{addr: "a:49", err: failAt("a:49", "bad password")}}, "backup": {{addr: "b:49"}},
		}}
		st, _ := DefaultStack(Registry{Tacacs: agent, Groups: []string{"core", "backup"}, Now: newClock().Now})
		_, rc, err := st.Authenticate(context.Background(), Request{User: "alice", Password: "pw", Type: PAP, Service: Login}, nil, nil)
		if !errors.Is(err, tacplus.ErrAuthenticationFailed) || agent.calls["backup"] != 0 {
			t.Errorf("err = %v, backup calls = %d; want FAIL and backup untried", err, agent.calls["backup"])
		}
		if rc.Steps[1].Tried {
			t.Error("backup step marked tried")
		}
	})
	t.Run("aborted stops", func(t *testing.T) {
		agent := &fakeAgent{groups: map[string][]fakeServer{
			"core": {{addr: "a:49", err: &tacplus.Error{Class: tacplus.ErrAborted, Msg: "user hit ^C"}}}, "backup": {{addr: "b:49"}},
		}}
		st, _ := DefaultStack(Registry{Tacacs: agent, Groups: []string{"core", "backup"}, Now: newClock().Now})
		_, _, err := st.Authenticate(context.Background(), Request{User: "alice", Type: ASCII, Service: Login}, nil, nil)
		if !errors.Is(err, tacplus.ErrAborted) || agent.calls["backup"] != 0 {
			t.Errorf("err = %v, backup calls = %d; want aborted and backup untried", err, agent.calls["backup"])
		}
	})
}

func TestResultOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Result
	}{
		{nil, Success},
		{tacplus.ErrAuthenticationFailed, Fail},
		{tacplus.ErrDenied, Fail},
		{tacplus.ErrUnreachable, Unavailable},
		{tacplus.ErrTimeout, Unavailable},
		{tacplus.ErrServerError, Unavailable},
		{tacplus.ErrConnectionLost, Unavailable},
		{tacplus.ErrBadSecret, Unavailable},
		{tacplus.ErrProtocol, Unavailable},
		{&tacplus.DecodeError{Reason: tacplus.ReasonBadSecret}, Unavailable},
		{context.DeadlineExceeded, Unavailable},
		{tacplus.ErrAborted, Error},
		{tacplus.ErrConfig, Error},
		{context.Canceled, Error},
		{errors.New("something unclassified"), Error},
		{fmt.Errorf("wrapped: %w", &tacplus.Error{Class: tacplus.ErrTimeout}), Unavailable},
	} {
		if got := ResultOf(tc.err); got != tc.want {
			t.Errorf("ResultOf(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

// TestExplainDenial is the example: "server A timed out; server B said FAIL; local not tried".
func TestExplainDenial(t *testing.T) {
	agent := &fakeAgent{groups: map[string][]fakeServer{
		"core": {{addr: "192.0.2.1:49", err: timeoutAt("192.0.2.1:49")}, {addr: "192.0.2.2:49", err: failAt("192.0.2.2:49", "bad password")}},
	}}
	st, err := NewStack(newClock().Now,
		Element{Name: "core", Handler: NewTacacs("core", agent), Control: MethodList},
		Element{Name: "local", Handler: Deny{}, Control: MethodList},
	)
	if err != nil {
		t.Fatal(err)
	}
	_, rc, err := st.Authenticate(context.Background(), Request{User: "alice", Password: "s3cret", Type: PAP, Service: Login}, nil, nil)
	want := `core: server 192.0.2.1:49 timed out (no reply within 5s); core: server 192.0.2.2:49 said FAIL (bad password); local: not tried`
	if got := rc.Explain(); got != want {
		t.Errorf("Explain() =\n  %s\nwant\n  %s", got, want)
	}
	if got := err.Error(); got != "authentication failed: "+want {
		t.Errorf("err = %q", got)
	}
	errs := rc.Errors()
	if len(errs) != 2 || !errors.Is(errs[0], tacplus.ErrTimeout) || !errors.Is(errs[1], tacplus.ErrAuthenticationFailed) {
		t.Errorf("Errors() = %v, want [timeout, FAIL]", errs)
	}
	var te *tacplus.Error
	if !errors.As(err, &te) || te.Server != "192.0.2.2:49" || te.SessionID != 0x5678 || te.State != "continue" {
		t.Errorf("errors.As(*tacplus.Error) = %+v, want the deciding server's error", te)
	}
	if tacplus.ClassName(err) != "authentication_failed" {
		t.Errorf("ClassName = %q", tacplus.ClassName(err))
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Error("the password leaked into the error")
	}

	// Nothing answered: the stack's error is ErrUnreachable, and still matches each server's own class.
	agent.groups["core"] = []fakeServer{{addr: "192.0.2.1:49", err: timeoutAt("192.0.2.1:49")},
		{addr: "192.0.2.2:49", err: &tacplus.Error{Class: tacplus.ErrUnreachable, Server: "192.0.2.2:49", Msg: "connection refused"}}}
	st, _ = DefaultStack(Registry{Tacacs: agent, Groups: []string{"core"}, Now: newClock().Now})
	_, rc, err = st.Authenticate(context.Background(), Request{User: "alice", Password: "s3cret", Type: PAP, Service: Login}, nil, nil)
	if !errors.Is(err, tacplus.ErrUnreachable) || rc.Result != Unavailable {
		t.Errorf("err = %v (result %s), want unreachable", err, rc.Result)
	}
	if want := "server unreachable: core: server 192.0.2.1:49 timed out (no reply within 5s); core: server 192.0.2.2:49 is unreachable (connection refused)"; err.Error() != want {
		t.Errorf("err =\n  %s\nwant\n  %s", err, want)
	}
}

func TestNewStackRefuses(t *testing.T) {
	h := &scripted{}
	now := newClock().Now
	for _, tc := range []struct {
		name  string
		now   func() time.Time
		elems []Element
	}{
		{"no clock", nil, []Element{{Name: "a", Handler: h, Control: Required}}},
		{"empty", now, nil},
		{"no name", now, []Element{{Handler: h, Control: Required}}},
		{"no handler", now, []Element{{Name: "a", Control: Required}}},
		{"zero control", now, []Element{{Name: "a", Handler: h}}},
		{"duplicate", now, []Element{{Name: "a", Handler: h, Control: Required}, {Name: "a", Handler: h, Control: Required}}},
	} {
		if _, err := NewStack(tc.now, tc.elems...); !errors.Is(err, tacplus.ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", tc.name, err)
		}
	}
}

func TestContextEndsStack(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	second := &scripted{}
	first := &scripted{hook: cancel} // the caller gives up while the first handler runs
	st, _ := NewStack(newClock().Now,
		Element{Name: "a", Handler: first, Control: Required},
		Element{Name: "b", Handler: second, Control: Required})
	_, rc, err := st.Authenticate(ctx, Request{User: "u", Password: "p", Type: PAP, Service: Login}, nil, nil)
	if !errors.Is(err, tacplus.ErrAborted) || !errors.Is(err, context.Canceled) || second.calls != 0 {
		t.Errorf("err = %v, second calls = %d; want aborted, second untried", err, second.calls)
	}
	if !strings.Contains(rc.Explain(), "b: not tried; stopped: context canceled") {
		t.Errorf("Explain() = %q", rc.Explain())
	}

	ctx, cancel = context.WithTimeout(context.Background(), 0)
	defer cancel()
	<-ctx.Done()
	first.calls = 0
	_, _, err = st.Authenticate(ctx, Request{User: "u", Password: "p", Type: PAP, Service: Login}, nil, nil)
	if !errors.Is(err, tacplus.ErrTimeout) || !errors.Is(err, tacplus.ErrUnreachable) || first.calls != 0 {
		t.Errorf("err = %v, calls = %d; want timeout with no handler called", err, first.calls)
	}
}

func TestInvalidRequest(t *testing.T) {
	st, _ := NewStack(newClock().Now, Element{Name: "a", Handler: &scripted{}, Control: Required})
	for _, req := range []Request{
		{User: "u", Type: PAP},                               // no service
		{User: "u", Service: Login},                          // no type
		{User: "u", Service: Enable, Type: PAP, PrivLvl: 16}, // level out of range
		{Service: Login, Type: PAP},                          // no user
	} {
		if _, _, err := st.Authenticate(context.Background(), req, nil, nil); !errors.Is(err, tacplus.ErrProtocol) {
			t.Errorf("%v: err = %v, want ErrProtocol", req, err)
		}
	}
}

// TestFailNeverUnavailable is the field report's invariant (issue 13 point 1) as a property, over every
// stack of up to three lines of the flags and the network-gear controls and every sequence of results:
// when a line that ran said FAIL and every line that said unavailable or error had that result ignored
// by its control, the outcome is never unavailable or error, which a PAM fallback
// (authinfo_unavail=ignore) would skip to a local password.
func TestFailNeverUnavailable(t *testing.T) {
	controls := []string{"required", "requisite", "sufficient", "optional", mlist, mend}
	n, guarded := 0, 0
	var rec func(stack []string)
	rec = func(stack []string) {
		if len(stack) > 0 {
			forEachResults(len(stack), func(results []Result) {
				n++
				elems := make([]Element, len(stack))
				for i, c := range stack {
					ctl, err := ParseControl(c)
					if err != nil {
						t.Fatal(err)
					}
					elems[i] = Element{Name: fmt.Sprintf("h%d", i), Handler: &scripted{err: errFor(results[i], i)}, Control: ctl}
				}
				st, err := NewStack(newClock().Now, elems...)
				if err != nil {
					t.Fatal(err)
				}
				_, rc, _ := st.Authenticate(context.Background(), Request{User: "u", Password: "p", Type: PAP, Service: Login}, nil, nil)
				sawFail, onlyIgnored := false, true
				for _, s := range rc.Steps {
					if !s.Tried {
						continue
					}
					switch s.Result {
					case Fail:
						sawFail = true
					case Unavailable, Error:
						if s.Action != Ignore {
							onlyIgnored = false
						}
					}
				}
				if sawFail && onlyIgnored {
					guarded++
					if rc.Result == Unavailable || rc.Result == Error {
						t.Errorf("%v with %v: a FAIL behind ignored lines came out as %s", stack, results, rc.Result)
					}
				}
			})
		}
		if len(stack) == 3 {
			return
		}
		for _, c := range controls {
			rec(append(append([]string(nil), stack...), c))
		}
	}
	rec(nil)
	if guarded == 0 {
		t.Fatal("no stack exercised the invariant")
	}
	t.Logf("%d stacks, %d with a FAIL behind ignored unavailable/error lines", n, guarded)
}
