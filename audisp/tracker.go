package audisp

import (
	"strconv"
	"strings"
	"time"

	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/tacplus"
)

// RFC 8907 limits: a packet carries at most 255 argument pairs (arg_cnt is one byte, section 7.1), and
// each pair at most 255 bytes (arg_N_len is one byte), "cmd-arg=" included.
const (
	maxPairs   = 255
	maxPairLen = 255
	// daemonPairs are the pairs the daemon adds to every record: caller_uid, caller_gid, caller_pid
	// (localapi.CallerAttributes) and task_id (from the request's task_id).
	daemonPairs = 4
	// senderPairs is kept free for the pair the sender may add (audisp_dropped).
	senderPairs = 1
)

// DefaultMaxOpen bounds the commands tracked between their START and STOP.
const DefaultMaxOpen = 65536

// TrackerConfig configures a Tracker.
type TrackerConfig struct {
	// BootID makes task ids unique across reboots (the audit serial restarts at boot); the plugin uses
	// the first 8 hex digits of /proc/sys/kernel/random/boot_id.
	BootID  string
	Masker  *Masker
	MaxOpen int // default DefaultMaxOpen
}

type taskKey struct {
	node string
	pid  int
}

type task struct {
	id      string
	session localapi.AuditSession
	port    string
	cmd     string
	start   time.Time
}

// Tracker turns facts about the processes of TACACS+ sessions into accounting records: a START at
// execve, a STOP at exit. It holds the commands between the two, by pid. It does no I/O and reads no
// clock; it is not safe for concurrent use.
type Tracker struct {
	cfg  TrackerConfig
	open map[taskKey]*task

	Masked    uint64 // arguments masked
	Truncated uint64 // arguments shortened to the RFC's 255 bytes
	Omitted   uint64 // arguments left out past the RFC's 255 pairs
	Evicted   uint64 // commands stopped early because MaxOpen was reached
}

// NewTracker returns a Tracker.
func NewTracker(cfg TrackerConfig) *Tracker {
	if cfg.MaxOpen <= 0 {
		cfg.MaxOpen = DefaultMaxOpen
	}
	return &Tracker{cfg: cfg, open: make(map[taskKey]*task)}
}

// Open returns the number of commands between START and STOP.
func (t *Tracker) Open() int { return len(t.open) }

// TaskID is the task_id of the command an exec event started: the boot id, the event's time and its
// serial. Stable (the same event always gives the same id, so a resent record is recognisably the same)
// and unique (the serial is unique per boot and the time tells a wrapped serial apart); not a pid.
func (t *Tracker) TaskID(f *Fact) string {
	var b strings.Builder
	b.WriteString(t.cfg.BootID)
	if f.Node != "" {
		b.WriteString("-")
		b.WriteString(f.Node)
	}
	b.WriteString("-")
	b.WriteString(strconv.FormatInt(f.ID.Sec, 10))
	b.WriteString("-")
	b.WriteString(strconv.FormatUint(f.ID.Serial, 10))
	return b.String()
}

// Exec handles a FactExec. s is the TACACS+ session of the process's (auid, ses), or nil when it is not
// one. It returns the records to send, in order: a STOP for the command this process ran before (an exec
// replaces it), then the START of the new one.
func (t *Tracker) Exec(f *Fact, s *localapi.AuditSession) []localapi.AcctRequest {
	var out []localapi.AcctRequest
	k := taskKey{f.Node, f.PID}
	if prev, ok := t.open[k]; ok {
		delete(t.open, k)
		out = append(out, t.stop(prev, f.Time(), nil, "replaced by another execve in the same process"))
	}
	if s == nil {
		return out
	}
	if len(t.open) >= t.cfg.MaxOpen {
		out = append(out, t.evictOldest())
	}
	cmd := f.Exe
	if cmd == "" {
		cmd = f.Path
	}
	if cmd == "" && len(f.Argv) > 0 {
		cmd = f.Argv[0]
	}
	tk := &task{id: t.TaskID(f), session: *s, port: f.TTY, start: f.Time()}
	if tk.port == "" {
		tk.port = s.Port
	}
	tk.cmd, _ = avValue("cmd=", cmd)
	t.open[k] = tk
	return append(out, t.startRecord(tk, f))
}

func (t *Tracker) startRecord(tk *task, f *Fact) localapi.AcctRequest {
	av := []string{
		tacplus.Arg("service", "shell"),
		tacplus.Arg("start_time", strconv.FormatInt(f.ID.Sec, 10)),
		tk.cmd,
	}
	if tk.session.TaskID != "" {
		if v, trunc := avValue("session_task_id*", tk.session.TaskID); !trunc {
			av = append(av, v)
		}
	}
	args := f.Argv
	if len(args) > 0 {
		var n int
		args, n = t.cfg.Masker.Mask(args)
		t.Masked += uint64(n)
		args = args[1:] // argv[0] is the command; cmd= names what really ran
	}
	// Two pairs are kept for the markers below, senderPairs for the sender.
	budget := maxPairs - daemonPairs - senderPairs - len(av) - 2
	omitted := max(0, f.Argc-1-len(args)) // arguments the event had but the plugin did not keep
	if len(args) > budget {
		omitted += len(args) - budget
		args = args[:budget]
	}
	truncated := 0
	for _, a := range args {
		v, trunc := avValue("cmd-arg=", a)
		if trunc {
			truncated++
		}
		av = append(av, v)
	}
	if omitted > 0 {
		av = append(av, tacplus.OptionalArg("args_omitted", strconv.Itoa(omitted)))
		t.Omitted += uint64(omitted)
	}
	if truncated > 0 {
		av = append(av, tacplus.OptionalArg("args_truncated", strconv.Itoa(truncated)))
		t.Truncated += uint64(truncated)
	}
	if f.ArgvFromProctitle {
		av = append(av, tacplus.OptionalArg("args_source", "proctitle"))
	}
	return localapi.AcctRequest{Flags: localapi.FlagStart, User: tk.session.User, TaskID: tk.id, AV: av,
		Port: tk.port, RemAddr: tk.session.RemAddr}
}

// Exit handles a FactExit or FactAbend: the STOP of the process's command, if it has one.
func (t *Tracker) Exit(f *Fact) (localapi.AcctRequest, bool) {
	k := taskKey{f.Node, f.PID}
	tk, ok := t.open[k]
	if !ok {
		return localapi.AcctRequest{}, false
	}
	delete(t.open, k)
	var status []string
	errMsg := ""
	switch f.Kind {
	case FactExit:
		status = []string{tacplus.Arg("status", strconv.Itoa(f.Status))}
	case FactAbend:
		// RFC 8907 section 8.3: negative statuses are errors. The signal, negated.
		status = []string{tacplus.Arg("status", strconv.Itoa(-f.Signal))}
		errMsg = "killed by signal " + strconv.Itoa(f.Signal) + signalName(f.Signal) + " (core dumped)"
	}
	return t.stop(tk, f.Time(), status, errMsg), true
}

// Reap ends the commands whose process is gone without an exit record (killed by a signal that dumps no
// core, or records lost): their STOP has no status. alive reports whether a pid still runs.
func (t *Tracker) Reap(alive func(node string, pid int) bool, now time.Time) []localapi.AcctRequest {
	var out []localapi.AcctRequest
	for k, tk := range t.open {
		if !alive(k.node, k.pid) {
			delete(t.open, k)
			out = append(out, t.stop(tk, now, nil, "process ended without an exit record (killed by a signal, or audit records lost)"))
		}
	}
	return out
}

func (t *Tracker) evictOldest() localapi.AcctRequest {
	var (
		oldest *task
		oldKey taskKey
	)
	for k, tk := range t.open {
		if oldest == nil || tk.start.Before(oldest.start) {
			oldest, oldKey = tk, k
		}
	}
	delete(t.open, oldKey)
	t.Evicted++
	return t.stop(oldest, oldest.start, nil, "no longer tracked: too many commands running")
}

func (t *Tracker) stop(tk *task, at time.Time, status []string, errMsg string) localapi.AcctRequest {
	av := []string{
		tacplus.Arg("service", "shell"),
		tacplus.Arg("stop_time", strconv.FormatInt(at.Unix(), 10)),
		tacplus.Arg("elapsed_time", strconv.FormatInt(max(0, int64(at.Sub(tk.start)/time.Second)), 10)),
		tk.cmd,
	}
	if tk.session.TaskID != "" {
		if v, trunc := avValue("session_task_id*", tk.session.TaskID); !trunc {
			av = append(av, v)
		}
	}
	av = append(av, status...)
	if errMsg != "" {
		v, _ := avValue("err_msg=", errMsg)
		av = append(av, v)
	}
	return localapi.AcctRequest{Flags: localapi.FlagStop, User: tk.session.User, TaskID: tk.id, AV: av,
		Port: tk.port, RemAddr: tk.session.RemAddr}
}

// avValue returns prefix+v with v escaped to printable US-ASCII (RFC 8907 section 3.7: AV pairs are
// US-ASCII; the codec refuses anything else) and cut to the RFC's 255 bytes per pair. Bytes outside 0x20-
// 0x7e become \xHH and a backslash becomes \\, so the escaping is unambiguous. An escape is never cut in
// the middle. truncated reports a cut.
func avValue(prefix, v string) (string, bool) {
	const hexdig = "0123456789abcdef"
	b := make([]byte, 0, min(maxPairLen, len(prefix)+len(v)))
	b = append(b, prefix...)
	for i := 0; i < len(v); i++ {
		c := v[i]
		var esc []byte
		switch {
		case c == '\\':
			esc = []byte{'\\', '\\'}
		case c < 0x20 || c > 0x7e:
			esc = []byte{'\\', 'x', hexdig[c>>4], hexdig[c&0xf]}
		default:
			esc = []byte{c}
		}
		if len(b)+len(esc) > maxPairLen {
			return string(b), true
		}
		b = append(b, esc...)
	}
	return string(b), false
}

// signalName names the common signals (signal(7), x86 and arm numbering).
func signalName(sig int) string {
	names := map[int]string{1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
		7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 11: "SIGSEGV", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM",
		24: "SIGXCPU", 25: "SIGXFSZ", 31: "SIGSYS"}
	if n, ok := names[sig]; ok {
		return " (" + n + ")"
	}
	return ""
}
