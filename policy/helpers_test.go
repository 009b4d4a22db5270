package policy

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// fakeClock starts at t0 and advances one second on every reading, so that every timestamp in a test is
// distinct and predictable without sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// scripted is a handler that gives a fixed result and counts its calls.
type scripted struct {
	kind  string
	reply Reply
	err   error
	calls int
	mu    sync.Mutex
	hook  func() // run on each call, before answering
}

func (s *scripted) Kind() string {
	if s.kind == "" {
		return "fake"
	}
	return s.kind
}

func (s *scripted) Authenticate(context.Context, Request, Conversation) (Reply, error) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	if s.hook != nil {
		s.hook()
	}
	return s.reply, s.err
}

// errFor returns an error of the class that maps to r, distinct per index so that tests can tell which
// handler's error a Denial carries.
func errFor(r Result, i int) error {
	server := fmt.Sprintf("192.0.2.%d:49", i+1)
	switch r {
	case Success:
		return nil
	case Fail:
		return &tacplus.Error{Class: tacplus.ErrAuthenticationFailed, Server: server, Msg: fmt.Sprintf("fail #%d", i)}
	case Unavailable:
		return &tacplus.Error{Class: tacplus.ErrTimeout, Server: server, Msg: fmt.Sprintf("timeout #%d", i)}
	case Error:
		return &tacplus.Error{Class: tacplus.ErrAborted, Msg: fmt.Sprintf("aborted #%d", i)}
	}
	panic("bad result")
}

// fakeAgent is a fake of the actor core's Go API: per server group, the servers it tries in order, each
// with its outcome; it fails over on anything but PASS and FAIL, as a group does.
type fakeAgent struct {
	mu     sync.Mutex
	groups map[string][]fakeServer
	calls  map[string]int
	seen   []Request
}

type fakeServer struct {
	addr  string
	err   error
	attrs []Attr
}

func (a *fakeAgent) Authenticate(_ context.Context, group string, req Request, _ Conversation) (Reply, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.calls == nil {
		a.calls = map[string]int{}
	}
	a.calls[group]++
	a.seen = append(a.seen, req)
	var r Reply
	servers, ok := a.groups[group]
	if !ok {
		return r, &tacplus.Error{Class: tacplus.ErrConfig, Msg: "no group " + group}
	}
	var last error = &tacplus.Error{Class: tacplus.ErrUnreachable, Msg: "empty group"}
	for _, s := range servers {
		r.Server = s.addr
		if s.err == nil || tacplus.ClassOf(s.err) == tacplus.ErrAuthenticationFailed {
			r.Attrs = s.attrs
			return r, s.err
		}
		r.Attempts = append(r.Attempts, Attempt{Server: s.addr, Err: s.err})
		last = s.err
	}
	// Every server was passed over: the last one's error is the group's answer.
	r.Attempts = r.Attempts[:len(r.Attempts)-1]
	return r, last
}

func timeoutAt(addr string) error {
	return &tacplus.Error{Class: tacplus.ErrTimeout, Server: addr, SessionID: 0x1234, State: "start", Msg: "no reply within 5s"}
}

func failAt(addr, msg string) error {
	return &tacplus.Error{Class: tacplus.ErrAuthenticationFailed, Server: addr, SessionID: 0x5678, State: "continue", Msg: msg}
}
