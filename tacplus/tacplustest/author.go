package tacplustest

import (
	"slices"
	"strings"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// Argument names of RFC 8907 section 8.2 (authorization) and 8.3 (accounting) the server reads.
const (
	argService = "service"
	argCmd     = "cmd"
	argCmdArg  = "cmd-arg"
	argTaskID  = "task_id"
	msgNoRule  = "no rule permits this request"
	msgNoUser  = "unknown user"
)

// author decides an authorization REQUEST (section 6) with the first matching rule.
func (c *conn) author(s *session, h tacplus.Header, b *tacplus.AuthorRequest) {
	c.setUser(s, b.User)
	resp := &tacplus.AuthorResponse{Status: tacplus.AuthorStatusFail, ServerMsg: msgNoRule}
	if u := c.s.user(b.User); u == nil {
		resp.ServerMsg = msgNoUser
	} else if r := c.s.match(b.User, u, b.Args); r != nil {
		switch {
		case !r.Permit:
			resp.ServerMsg = r.ServerMsg
		case r.Replace: // section 6.2: the returned arguments replace the requested ones
			resp = &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassRepl, Args: r.Args, ServerMsg: r.ServerMsg}
		default: // section 6.2: the returned arguments are added to the requested ones
			resp = &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassAdd, Args: r.Args, ServerMsg: r.ServerMsg}
		}
	}
	c.s.recordAuthor(AuthorRecord{Conn: c.id, SessionID: h.SessionID, PrivLvl: b.PrivLvl, User: b.User, Port: b.Port,
		RemAddr: b.RemAddr, Args: append([]string(nil), b.Args...), Status: resp.Status, ServerMsg: resp.ServerMsg,
		Received: time.Now()})
	if resp.Status == tacplus.AuthorStatusFail {
		c.s.st.authorFail.Add(1)
	} else {
		c.s.st.authorPass.Add(1)
	}
	c.answer(s, h, resp, true, c.s.plan(s.user))
}

// match returns the first rule that matches the request, or nil.
func (s *Server) match(name string, u *User, args []string) *rule {
	service, cmdline := commandLine(args)
	for i := range s.cfg.rules {
		r := &s.cfg.rules[i]
		if (r.User != "" && r.User != name) || (r.Group != "" && !slices.Contains(u.Groups, r.Group)) ||
			(r.Service != "" && r.Service != service) || !r.cmd.MatchString(cmdline) {
			continue
		}
		return r
	}
	return nil
}

// commandLine extracts the service and joins cmd and every cmd-arg with spaces (section 8.2).
func commandLine(args []string) (service, cmdline string) {
	var b strings.Builder
	for _, a := range args {
		name, value, _, ok := tacplus.SplitArg(a)
		if !ok {
			continue
		}
		switch name {
		case argService:
			service = value
		case argCmd:
			if b.Len() > 0 {
				value = value + " " + b.String()
				b.Reset()
			}
			b.WriteString(value)
		case argCmdArg:
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(value)
		}
	}
	return service, b.String()
}

// account records an accounting REQUEST (section 7) and acknowledges it.
func (c *conn) account(s *session, h tacplus.Header, b *tacplus.AcctRequest) {
	c.setUser(s, b.User)
	p := c.s.plan(s.user)
	rec := AcctRecord{
		Conn: c.id, SessionID: h.SessionID, Flags: b.Flags, Method: b.Method, PrivLvl: b.PrivLvl, Type: b.Type,
		Service: b.Service, User: b.User, Port: b.Port, RemAddr: b.RemAddr,
		Args: append([]string(nil), b.Args...), Status: tacplus.AcctStatusSuccess, Received: time.Now(),
	}
	for _, a := range b.Args {
		if name, value, _, ok := tacplus.SplitArg(a); ok && name == argTaskID {
			rec.TaskID = value
		}
	}
	var reply tacplus.Body = &tacplus.AcctReply{Status: tacplus.AcctStatusSuccess}
	if p.f&fError != 0 {
		rec.Status = tacplus.AcctStatusError
	}
	if c.s.cfg.onAcct != nil {
		if err := c.s.cfg.onAcct(rec); err != nil {
			c.s.logf("tacplustest: conn %d session 0x%08x: accounting sink: %v", c.id, h.SessionID, err)
			rec.Status = tacplus.AcctStatusError
			reply = errorBody(tacplus.TypeAcct, "accounting sink failed")
		}
	}
	c.s.record(rec)
	c.answer(s, h, reply, true, p)
}
