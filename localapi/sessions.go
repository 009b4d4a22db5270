package localapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// AuditSession is a login session that the agent opened through PAM (an accounting START from the PAM
// module), known to the kernel by the audit login uid and session id of the process that opened it
// (/proc/PID/loginuid and /proc/PID/sessionid, set by pam_loginuid). The audit plugin asks for it to
// tell a TACACS+ user's commands from everyone else's (docs/audit.md).
type AuditSession struct {
	AUID    uint32    `json:"auid"`
	SES     uint32    `json:"ses"`
	User    string    `json:"user"`              // the TACACS+ user of the session's accounting START
	TaskID  string    `json:"task_id,omitempty"` // the session's own task_id
	Port    string    `json:"port,omitempty"`
	RemAddr string    `json:"rem_addr,omitempty"`
	Started time.Time `json:"started"`
	// Ended is set once the session's STOP was seen; the entry stays a while for the commands that
	// outlive it.
	Ended time.Time `json:"ended,omitzero"`
}

// AuditSessions is the body of a 200 answer to GET /v1/sessions.
type AuditSessions struct {
	Sessions []AuditSession `json:"sessions"`
}

// SessionBackend is implemented by a Backend that knows the sessions it opened. GET /v1/sessions answers
// 404 not_found when the Backend does not implement it.
type SessionBackend interface {
	// AuditSessions returns the sessions with this auid and session id (at most one in practice).
	AuditSessions(ctx context.Context, auid, ses uint32) ([]AuditSession, error)
}

const epSessions = "sessions"

// sessions answers GET /v1/sessions?auid=N&ses=N. Only root may ask: the answer names users and their
// sessions, and the audit plugin runs as root under auditd.
func (s *Server) sessions(r *http.Request, c Caller) response {
	if c.UID != s.rule.rootUID {
		return fail(&apiError{status: http.StatusForbidden, code: CodeForbidden, reason: "peer",
			msg: "only root may list sessions"})
	}
	sb, has := s.cfg.Backend.(SessionBackend)
	if !has {
		return fail(notFound(r.URL.Path))
	}
	q := r.URL.Query()
	auid, err1 := strconv.ParseUint(q.Get("auid"), 10, 32)
	ses, err2 := strconv.ParseUint(q.Get("ses"), 10, 32)
	if err1 != nil || err2 != nil {
		return fail(badRequest("auid and ses must be decimal numbers (the audit login uid and session id)"))
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	list, err := sb.AuditSessions(ctx, uint32(auid), uint32(ses))
	if err != nil {
		return fail(&apiError{status: http.StatusInternalServerError, code: CodeInternal, msg: "sessions: " + err.Error()})
	}
	if list == nil {
		list = []AuditSession{}
	}
	return ok(AuditSessions{Sessions: list}, "ok")
}

// AuditSessions asks the agent which TACACS+ session, if any, has this audit login uid and session id.
// An empty list means none.
func (c *Client) AuditSessions(ctx context.Context, auid, ses uint32) ([]AuditSession, error) {
	var res AuditSessions
	q := url.Values{"auid": {strconv.FormatUint(uint64(auid), 10)}, "ses": {strconv.FormatUint(uint64(ses), 10)}}
	if err := c.do(ctx, http.MethodGet, "/sessions?"+q.Encode(), nil, &res); err != nil {
		return nil, err
	}
	return res.Sessions, nil
}
