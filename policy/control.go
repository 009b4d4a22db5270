package policy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tacagent/tacagent/tacplus"
)

// Result is what one handler's attempt came to. The zero value is not a result: a handler outcome that is
// somehow left unset is treated as a failure, never as a success.
type Result uint8

// The results (docs/policy.md). ResultOf maps a handler's error to one of them.
const (
	Success     Result = iota + 1 // the handler authenticated the request (TACACS+ PASS, local hash match)
	Fail                          // the handler refused it (TACACS+ FAIL, wrong local password, locked account)
	Unavailable                   // no usable answer: unreachable, timeout, connection lost, ERROR, bad secret, garbled reply
	Error                         // the handler could not run: aborted by the user, misconfigured, or an unclassified error

	// Denied is never a handler's result, only a stack's outcome: no line decided, or the controls alone
	// refused (a success whose action was bad, a jump past the end). Linux-PAM returns PAM_PERM_DENIED
	// (its PAM_MUST_FAIL_CODE) for exactly these cases. It is a refusal, like Fail, never a reason to
	// fall back: it is not a valid value in a bracket control.
	Denied
)

// Results lists every result, in the order they are written in a bracket control.
var Results = [...]Result{Success, Fail, Unavailable, Error}

var resultNames = [...]string{Success: "success", Fail: "fail", Unavailable: "unavailable", Error: "error", Denied: "denied"}

// valid reports whether r is a handler result (Denied is not one).
func (r Result) valid() bool { return r >= Success && r <= Error }

func (r Result) String() string {
	if r >= Success && r <= Denied {
		return resultNames[r]
	}
	return "result(" + strconv.Itoa(int(r)) + ")"
}

// Action is what a control does with one result (pam.conf(5), "actionN"). The zero value is not an
// action; the stack treats it as Bad.
type Action uint8

// The actions, with the meaning pam.conf(5) gives them.
const (
	// Ignore: the result does not contribute to the stack's outcome.
	Ignore Action = iota + 1
	// OK: if the stack has not already failed, this result becomes its outcome ("if the former state of
	// the stack would lead to a return of PAM_SUCCESS, the module's return code will override this value").
	OK
	// Done: as OK, and if the stack's outcome is now positive, return at once.
	Done
	// Bad: the stack fails; if this is the first failure, this result is the stack's outcome.
	Bad
	// Die: as Bad, and return at once.
	Die
	// Reset: forget the stack's state so far and carry on with the next handler.
	Reset
)

// jumpBase is the Action value of a jump over zero lines (not itself valid): Jump(n) is jumpBase+n.
const jumpBase Action = 32

// MaxJump is the longest jump a control may hold.
const MaxJump = 200

// Jump returns the action that skips the next n lines (pam.conf(5) "N"), 1 <= n <= MaxJump. As in
// Linux-PAM, a jump neither sets nor changes the stack's outcome, and a jump past the last line makes the
// stack fail (PAM_PERM_DENIED there, Denied here). An n out of range gives an invalid action.
func Jump(n int) Action {
	if n < 1 || n > MaxJump {
		return 0
	}
	return jumpBase + Action(n)
}

// JumpLen returns n for Jump(n), and false for any other action.
func (a Action) JumpLen() (int, bool) {
	if a > jumpBase && a <= jumpBase+MaxJump {
		return int(a - jumpBase), true
	}
	return 0, false
}

var actionNames = [...]string{Ignore: "ignore", OK: "ok", Done: "done", Bad: "bad", Die: "die", Reset: "reset"}

func (a Action) valid() bool {
	_, jump := a.JumpLen()
	return (a >= Ignore && a <= Reset) || jump
}

func (a Action) String() string {
	if n, ok := a.JumpLen(); ok {
		return strconv.Itoa(n)
	}
	if a >= Ignore && a <= Reset {
		return actionNames[a]
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Control maps each Result to the Action the stack takes for it: the control flag of one stack element.
// The zero Control maps every result to an invalid action, which the stack treats as Bad.
type Control struct {
	actions [Error + 1]Action // indexed by Result; [0] unused
}

// The four control flags, each equal to the bracket form pam.conf(5) gives for it, restricted to this
// package's results (success, fail, unavailable, error):
//
//	required   = [success=ok new_authtok_reqd=ok ignore=ignore default=bad]
//	requisite  = [success=ok new_authtok_reqd=ok ignore=ignore default=die]
//	sufficient = [success=done new_authtok_reqd=done default=ignore]
//	optional   = [success=ok new_authtok_reqd=ok default=ignore]
//
// MethodList is the network-gear rule of AAA method lists (docs/architecture.md, retry safety): a PASS ends the stack, a
// FAIL ends it with a failure, no usable answer moves on to the next handler, and a local error (the
// user aborted, a misconfiguration) ends it with that error.
var (
	Required   = mustBracket("[success=ok default=bad]")
	Requisite  = mustBracket("[success=ok default=die]")
	Sufficient = mustBracket("[success=done default=ignore]")
	Optional   = mustBracket("[success=ok default=ignore]")
	MethodList = mustBracket("[success=done fail=die unavailable=ignore default=die]")
	// MethodListEnd is the network-gear rule on the last line of a stack: there is no next method to move
	// on to, so "no usable answer" ends the stack as Unavailable (die) rather than being ignored, which
	// in Linux-PAM's semantics would leave the stack undecided: Denied (PAM_PERM_DENIED). A caller's
	// fallback (docs/pam.md's sshd recipe) depends on this Unavailable.
	MethodListEnd = mustBracket("[success=done default=die]")
)

// flagWord returns the control a flag word stands for.
func flagWord(s string) (Control, bool) {
	switch s {
	case "required":
		return Required, true
	case "requisite":
		return Requisite, true
	case "sufficient":
		return Sufficient, true
	case "optional":
		return Optional, true
	}
	return Control{}, false
}

func mustBracket(s string) Control {
	c, err := parseBracket(s)
	if err != nil {
		panic(err)
	}
	return c
}

// NewControl builds a control from explicit actions. Results missing from the map take def, as a
// bracket's "default=" does.
func NewControl(actions map[Result]Action, def Action) Control {
	var c Control
	for _, r := range Results {
		a, ok := actions[r]
		if !ok {
			a = def
		}
		c.actions[r] = a
	}
	return c
}

// Action returns the action c takes for r; Bad for a result or action that is not valid, as Linux-PAM
// does for an out-of-range return code.
func (c Control) Action(r Result) Action {
	if !r.valid() || !c.actions[r].valid() {
		return Bad
	}
	return c.actions[r]
}

// Valid reports whether c names a valid action for every result.
func (c Control) Valid() bool {
	for _, r := range Results {
		if !c.actions[r].valid() {
			return false
		}
	}
	return true
}

// String renders c as its flag word when it is one, else in the canonical bracket form listing every
// result, such as "[success=done fail=die unavailable=ignore error=die]".
func (c Control) String() string {
	switch c {
	case Required:
		return "required"
	case Requisite:
		return "requisite"
	case Sufficient:
		return "sufficient"
	case Optional:
		return "optional"
	}
	var b strings.Builder
	b.WriteByte('[')
	for i, r := range Results {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(r.String())
		b.WriteByte('=')
		b.WriteString(c.actions[r].String())
	}
	b.WriteByte(']')
	return b.String()
}

// ParseControl parses a control flag word (required, requisite, sufficient, optional) or the bracket form
// "[value=action ...]" of pam.conf(5). The values are success, fail, unavailable, error and default; the
// actions are ok, done, die, bad, ignore, reset and a jump count N (1 to MaxJump: skip the next N lines).
// As in Linux-PAM, a result that is neither named nor covered by "default=" takes bad. Unlike Linux-PAM,
// a value named twice and an unknown value (such as PAM's user_unknown) are errors, so that a copied
// pam.d line cannot silently mean something else here. Errors belong to tacplus.ErrConfig.
func ParseControl(s string) (Control, error) {
	s = strings.TrimSpace(s)
	if c, ok := flagWord(s); ok {
		return c, nil
	}
	return parseBracket(s)
}

func parseBracket(s string) (Control, error) {
	inner, ok := strings.CutPrefix(s, "[")
	if ok {
		inner, ok = strings.CutSuffix(inner, "]")
	}
	if !ok {
		return Control{}, configErr("control %q: want required, requisite, sufficient, optional or [value=action ...]", s)
	}
	var (
		set  = map[Result]Action{}
		def  = Bad
		seen = map[string]bool{}
	)
	for _, kv := range strings.Fields(inner) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return Control{}, configErr("control %q: %q is not value=action", s, kv)
		}
		if seen[k] {
			return Control{}, configErr("control %q: %q given twice", s, k)
		}
		seen[k] = true
		a, err := parseAction(v)
		if err != nil {
			return Control{}, configErr("control %q: %s: %v", s, k, err)
		}
		if k == "default" {
			def = a
			continue
		}
		r, ok := parseResult(k)
		if !ok {
			return Control{}, configErr("control %q: unknown value %q (want success, fail, unavailable, error or default)", s, k)
		}
		set[r] = a
	}
	if len(seen) == 0 {
		return Control{}, configErr("control %q: empty brackets", s)
	}
	return NewControl(set, def), nil
}

func parseResult(s string) (Result, bool) {
	for _, r := range Results {
		if resultNames[r] == s {
			return r, true
		}
	}
	return 0, false
}

func parseAction(s string) (Action, error) {
	for a := Ignore; a <= Reset; a++ {
		if actionNames[a] == s {
			return a, nil
		}
	}
	if s != "" && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxJump {
			return 0, fmt.Errorf("jump %q: want 1 to %d lines", s, MaxJump)
		}
		return Jump(n), nil
	}
	return 0, fmt.Errorf("unknown action %q (want ok, done, die, bad, ignore, reset or a jump count)", s)
}

func configErr(format string, args ...any) error {
	return &tacplus.Error{Class: tacplus.ErrConfig, Msg: fmt.Sprintf(format, args...)}
}
