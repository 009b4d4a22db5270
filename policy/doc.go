// Package policy is tacagent's authentication policy, the authentication stack of docs/policy.md:
// it decides what one authentication request means when several server groups and methods are configured.
//
// A Stack is an ordered list of handlers (a TACACS+ server group, a local credential file, a deny), each
// with a Control: the Linux-PAM flags required, requisite, sufficient and optional, or the bracket form
// "[success=ok fail=die unavailable=ignore error=bad default=...]" with the actions ok, done, bad, die,
// ignore, reset and jumps, evaluated exactly as Linux-PAM's dispatcher does (pam/libpamdiff_test.go
// compares it with the real libpam). Each handler's outcome is one Result (success, fail, unavailable,
// error), mapped from the project's error taxonomy by ResultOf; the stack's outcome is one of those or
// Denied (no line decided: libpam's PAM_PERM_DENIED). MethodList is the network-gear rule (FAIL stops;
// no usable answer moves on), MethodListEnd its last line, and DefaultStack applies them over every
// server group.
//
// A request that passes yields an Authentication, a set of AuthenticationEntry values (what, how, when,
// with which attributes); every request yields a RequestContext recording each handler's outcome and
// every error, so that a denial (a *Denial, matching the taxonomy's classes with errors.Is) can be
// explained completely. Request.Renew demands an entry made at or after the request's arrival.
//
// The decision logic is pure: no I/O, and no clock but the one injected into NewStack. Handlers do their
// own I/O: Local reads its file when made and on Reload; Tacacs calls the actor core through the
// Authenticator interface. Passwords never appear in errors, String methods or logs.
//
// It imports tacplus for the error taxonomy only, and must not import the actor, agent, supervisor,
// metrics or logging packages: the agent implements Authenticator, not the other way round.
package policy
