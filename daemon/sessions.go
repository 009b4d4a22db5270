package daemon

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/tacplus"
)

// The audit session table: which kernel audit sessions (auid, ses) are TACACS+ sessions, so that the audit
// plugin accounts their commands (docs/audit.md).
//
// A session is registered by the accounting START of the PAM module's open_session: a root caller, flags
// start, no cmd pair (a command record is not a session). The daemon reads the caller's audit ids from
// /proc/PID/loginuid and /proc/PID/sessionid while the caller waits for the answer, so the pid cannot be
// reused meanwhile. When pam_loginuid runs after pam_tacagent in the session stack, the ids are not set
// yet: the entry stays pending with the pid (and its start time, against pid reuse) and is resolved on
// the next question, when the process that opened the session (sshd's privileged child, login) has them.
// The STOP of close_session with the same task_id ends the session; it is forgotten sessionGrace later.
const (
	// maxAuditSessions bounds the table; past it, ended sessions go first, then the oldest.
	maxAuditSessions = 4096
	// sessionGrace keeps an ended session known to the plugin, for commands that outlive the login.
	sessionGrace = 2 * time.Minute
	// pendingMaxAge drops a pending entry whose process never got audit ids.
	pendingMaxAge = 10 * time.Minute
	unsetAuditID  = 4294967295
)

// AuditIDs reads the audit login uid and session id of a process, and its start time (field 22 of
// /proc/PID/stat), which tells a reused pid apart. Tests replace it with Daemon.SetAuditIDs.
type AuditIDs func(pid int) (auid, ses uint32, start uint64, err error)

type auditSession struct {
	localapi.AuditSession
	pid      int
	pidStart uint64
	resolved bool
}

type sessionTable struct {
	mu      sync.Mutex
	ids     AuditIDs
	now     func() time.Time
	entries []*auditSession // oldest first
}

// SetAuditIDs replaces how the daemon reads a caller's audit ids (tests: a fake kernel).
func (d *Daemon) SetAuditIDs(f AuditIDs) {
	t := d.auditSessions()
	t.mu.Lock()
	t.ids = f
	t.mu.Unlock()
}

func (d *Daemon) auditSessions() *sessionTable {
	d.sessOnce.Do(func() { d.sess = &sessionTable{ids: procAuditIDs, now: time.Now} })
	return d.sess
}

// AuditSessions answers GET /v1/sessions (localapi.SessionBackend).
func (b backend) AuditSessions(_ context.Context, auid, ses uint32) ([]localapi.AuditSession, error) {
	return b.d.auditSessions().lookup(auid, ses), nil
}

// isSessionStart reports whether an accounting request is a PAM session's START.
func isSessionStart(caller localapi.Caller, req localapi.AcctRequest) bool {
	if caller.UID != 0 || req.Flags != localapi.FlagStart {
		return false
	}
	for _, a := range req.AV {
		if n, _, _, ok := tacplus.SplitArg(a); ok && n == "cmd" {
			return false
		}
	}
	return true
}

// noteAccounting registers or ends a session from a root caller's accounting record.
func (d *Daemon) noteAccounting(caller localapi.Caller, req localapi.AcctRequest) {
	if caller.UID != 0 || req.TaskID == "" {
		return
	}
	t := d.auditSessions()
	switch {
	case isSessionStart(caller, req):
		if err := t.register(caller.PID, req); err != nil {
			d.log.Debug().Err(err).Int("pid", caller.PID).Msg("session START: no audit ids for the caller")
		}
	case req.Flags == localapi.FlagStop:
		t.end(req.TaskID)
	}
}

func (t *sessionTable) register(pid int, req localapi.AcctRequest) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	auid, ses, start, err := t.ids(pid)
	if err != nil {
		return err
	}
	e := &auditSession{AuditSession: localapi.AuditSession{AUID: auid, SES: ses, User: req.User, TaskID: req.TaskID,
		Port: req.Port, RemAddr: req.RemAddr, Started: t.now()}, pid: pid, pidStart: start,
		resolved: auid != unsetAuditID && ses != unsetAuditID}
	t.sweep()
	if len(t.entries) >= maxAuditSessions {
		t.evict()
	}
	t.entries = append(t.entries, e)
	return nil
}

func (t *sessionTable) end(taskID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.entries {
		if e.TaskID == taskID && e.Ended.IsZero() {
			e.Ended = t.now()
		}
	}
}

// lookup resolves pending entries, forgets old ones and returns the sessions with (auid, ses), the live
// one first.
func (t *sessionTable) lookup(auid, ses uint32) []localapi.AuditSession {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep()
	var out []localapi.AuditSession
	for i := len(t.entries) - 1; i >= 0; i-- {
		e := t.entries[i]
		if e.resolved && e.AUID == auid && e.SES == ses {
			out = append(out, e.AuditSession)
		}
	}
	// The live session first, then the most recent ended one.
	for i := range out {
		if out[i].Ended.IsZero() {
			out[0], out[i] = out[i], out[0]
			break
		}
	}
	return out
}

// sweep resolves pending entries and drops ended ones past their grace and pending ones that cannot be
// resolved any more. Called with t.mu held.
func (t *sessionTable) sweep() {
	now := t.now()
	live := t.entries[:0]
	for _, e := range t.entries {
		if !e.Ended.IsZero() && now.Sub(e.Ended) > sessionGrace {
			continue
		}
		if !e.resolved {
			auid, ses, start, err := t.ids(e.pid)
			switch {
			case err != nil || start != e.pidStart || now.Sub(e.Started) > pendingMaxAge:
				continue // the process is gone, or the pid is someone else's now
			case auid != unsetAuditID && ses != unsetAuditID:
				e.AUID, e.SES, e.resolved = auid, ses, true
			}
		}
		live = append(live, e)
	}
	clear(t.entries[len(live):])
	t.entries = live
}

func (t *sessionTable) evict() {
	for i, e := range t.entries {
		if !e.Ended.IsZero() || !e.resolved {
			t.entries = append(t.entries[:i], t.entries[i+1:]...)
			return
		}
	}
	t.entries = append(t.entries[:0], t.entries[1:]...)
}

// procAuditIDs reads /proc/PID/loginuid, /proc/PID/sessionid and the start time in /proc/PID/stat.
func procAuditIDs(pid int) (auid, ses uint32, start uint64, err error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/"
	read := func(name string) (uint32, error) {
		b, err := os.ReadFile(dir + name)
		if err != nil {
			return 0, err
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
		return uint32(v), err
	}
	if auid, err = read("loginuid"); err != nil {
		return 0, 0, 0, err
	}
	if ses, err = read("sessionid"); err != nil {
		return 0, 0, 0, err
	}
	b, err := os.ReadFile(dir + "stat")
	if err != nil {
		return 0, 0, 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, 0, errors.New("malformed /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, 0, errors.New("malformed /proc/PID/stat")
	}
	start, err = strconv.ParseUint(f[19], 10, 64) // field 22 overall; f[0] is field 3
	return auid, ses, start, err
}
