package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind is what an entry authenticated.
type Kind uint8

// The kinds.
const (
	KindUser   Kind = iota + 1 // a login; the value is the username
	KindEnable                 // a privilege level; the value is the level, "0" to "15"
)

func (k Kind) String() string {
	switch k {
	case KindUser:
		return "user"
	case KindEnable:
		return "enable"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// AuthenticationEntry records one thing that was authenticated: what (Kind and Value), how (the handler,
// the server, the authen_type), when (Time, from the stack's clock) and the attributes returned with it.
type AuthenticationEntry struct {
	Kind        Kind
	Value       string // the username (KindUser) or the privilege level (KindEnable)
	User        string // the user who authenticated; equal to Value for KindUser
	Handler     string // the stack element's name
	HandlerKind string // "tacacs", "local" or "deny"
	Server      string // the server that said PASS; empty for a local handler
	AuthenType  AuthenType
	Time        time.Time
	Attrs       []Attr
}

func (e AuthenticationEntry) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s=%s", e.Kind, e.Value)
	if e.Kind != KindUser {
		fmt.Fprintf(&b, " user=%s", e.User)
	}
	fmt.Fprintf(&b, " by %s (%s", e.Handler, e.HandlerKind)
	if e.Server != "" {
		b.WriteString(" " + e.Server)
	}
	fmt.Fprintf(&b, ", %s) at %s", e.AuthenType, e.Time.UTC().Format(time.RFC3339Nano))
	for _, a := range e.Attrs {
		b.WriteString(" " + a.String())
	}
	return b.String()
}

// Attr returns the value of the first attribute named name.
func (e AuthenticationEntry) Attr(name string) (string, bool) {
	for _, a := range e.Attrs {
		if a.Name == name {
			return a.Value, true
		}
	}
	return "", false
}

func (e AuthenticationEntry) sameKey(o AuthenticationEntry) bool {
	return e.Kind == o.Kind && e.Value == o.Value && e.User == o.User && e.Handler == o.Handler
}

// Authentication is the set of entries a user holds: a login, then perhaps enable levels. An entry is
// keyed by (Kind, Value, User, Handler); adding one with the same key replaces the older. The zero value
// is an empty set; a nil *Authentication is an empty set too.
type Authentication struct {
	Entries []AuthenticationEntry
}

// Add puts e in the set, replacing an entry with the same key.
func (a *Authentication) Add(e AuthenticationEntry) {
	for i := range a.Entries {
		if a.Entries[i].sameKey(e) {
			a.Entries[i] = e
			return
		}
	}
	a.Entries = append(a.Entries, e)
}

// Clone returns a copy that shares nothing mutable with a.
func (a *Authentication) Clone() *Authentication {
	out := &Authentication{}
	if a == nil {
		return out
	}
	out.Entries = make([]AuthenticationEntry, len(a.Entries))
	for i, e := range a.Entries {
		e.Attrs = append([]Attr(nil), e.Attrs...)
		out.Entries[i] = e
	}
	return out
}

// Lookup returns the newest entry of the given kind, user and value made at or after notBefore (zero
// notBefore: any time).
func (a *Authentication) Lookup(kind Kind, user, value string, notBefore time.Time) (AuthenticationEntry, bool) {
	var (
		best  AuthenticationEntry
		found bool
	)
	if a == nil {
		return best, false
	}
	for _, e := range a.Entries {
		if e.Kind != kind || e.Value != value || e.User != user || e.Time.Before(notBefore) {
			continue
		}
		if !found || e.Time.After(best.Time) {
			best, found = e, true
		}
	}
	return best, found
}

// Satisfies returns an entry that answers req without asking any handler: same kind, value and user, and,
// when req.Renew is set, made at or after req.Arrival, so that no earlier or cached entry counts.
// "At or after" rather than "after": a clock's resolution must not turn a fresh entry into a stale one.
func (a *Authentication) Satisfies(req Request) (AuthenticationEntry, bool) {
	kind, value := req.What()
	var notBefore time.Time
	if req.Renew {
		notBefore = req.Arrival
		if notBefore.IsZero() {
			return AuthenticationEntry{}, false // a renew with no arrival time can be satisfied by nothing
		}
	}
	return a.Lookup(kind, req.User, value, notBefore)
}
