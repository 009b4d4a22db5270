package audisp

import (
	"strconv"
	"strings"
	"time"
)

// FactKind is what an event means to the plugin.
type FactKind uint8

// The kinds of Fact.
const (
	FactNone         FactKind = iota // nothing the plugin acts on
	FactExec                         // a successful execve/execveat
	FactExit                         // exit_group: the process ends with a status
	FactAbend                        // ANOM_ABEND: the process ends on a signal with a core dump
	FactSessionStart                 // LOGIN (pam_loginuid set the auid) or USER_START (PAM session_open)
	FactSessionEnd                   // USER_END (PAM session_close)
)

var factKindNames = [...]string{"none", "exec", "exit", "abend", "session_start", "session_end"}

func (k FactKind) String() string {
	if int(k) < len(factKindNames) {
		return factKindNames[k]
	}
	return "FactKind(" + strconv.Itoa(int(k)) + ")"
}

// UnsetID is the auid and session id of a process no login set them for ((uid_t)-1).
const UnsetID = 4294967295

// maxKeptArgs bounds the arguments kept from one execve: more than a record can carry (RFC 8907: 255
// pairs per packet) is counted, not kept.
const maxKeptArgs = 256

// Fact is the part of an event the plugin acts on.
type Fact struct {
	Kind      FactKind
	Node      string
	ID        EventID
	PID, PPID int
	AUID, SES uint32
	TTY       string
	Exe       string   // SYSCALL exe=: the program that runs (after the kernel resolved interpreters)
	Path      string   // PATH item 0 name: the path execve was given
	Cwd       string   //
	Argv      []string // at most maxKeptArgs arguments; Argc says how many there were
	Argc      int
	// ArgvFromProctitle: the EXECVE records were missing, so Argv comes from PROCTITLE (the kernel keeps
	// only its first 128 bytes).
	ArgvFromProctitle bool
	Status            int // FactExit: the exit status (exit_group's argument, low 8 bits)
	Signal            int // FactAbend: the signal
}

// maxArgBytes bounds what a Fact keeps of one argument: a record carries at most 247 bytes of it
// (255 with "cmd-arg="), so more is never sent; the tracker still sees that it was cut.
const maxArgBytes = 1024

// Detach copies the strings a Fact keeps, cut to what can be sent, so that a queued Fact holds a few KiB
// and not the lines (up to 8 KiB each, hundreds for a huge argument list) its strings pointed into.
func (f *Fact) Detach() {
	cut := func(s string, n int) string { return strings.Clone(s[:min(len(s), n)]) }
	f.Exe, f.Path, f.Cwd, f.TTY = cut(f.Exe, 4096), cut(f.Path, 4096), cut(f.Cwd, 4096), cut(f.TTY, 64)
	for i, a := range f.Argv {
		f.Argv[i] = cut(a, maxArgBytes)
	}
}

// Size estimates the bytes a detached Fact holds.
func (f *Fact) Size() int {
	n := 256 + len(f.Exe) + len(f.Path) + len(f.Cwd) + len(f.TTY)
	for _, a := range f.Argv {
		n += 16 + len(a)
	}
	return n
}

// Time is when the event happened (the kernel's timestamp).
func (f *Fact) Time() time.Time { return time.Unix(f.ID.Sec, int64(f.ID.Msec)*int64(time.Millisecond)) }

// The reasons Interpret refuses an event (counters, like ParseError's).
const (
	ReasonNoSyscall  = "no_syscall_field"
	ReasonBadArgs    = "bad_execve_args"
	ReasonBadHex     = "bad_hex"
	ReasonBadNumber  = "bad_number"
	ReasonIncomplete = "incomplete_event"
)

// syscall numbers per audit arch (linux/audit.h AUDIT_ARCH_*), for the RAW format, where the syscall is a
// number. The ENRICHED format names it (SYSCALL=execve) and is preferred.
var syscallNames = map[uint64]map[uint64]string{
	0xc000003e: {59: "execve", 322: "execveat", 231: "exit_group"}, // x86_64
	0x40000003: {11: "execve", 358: "execveat", 252: "exit_group"}, // i386
	0xc00000b7: {221: "execve", 281: "execveat", 94: "exit_group"}, // aarch64
	0x40000028: {11: "execve", 387: "execveat", 248: "exit_group"}, // arm (EABI)
	0xc00000f3: {221: "execve", 281: "execveat", 94: "exit_group"}, // riscv64
	0xc0000015: {11: "execve", 362: "execveat", 234: "exit_group"}, // ppc64le
	0x80000015: {11: "execve", 362: "execveat", 234: "exit_group"}, // ppc64
	0x80000016: {11: "execve", 354: "execveat", 248: "exit_group"}, // s390x
	0xc0000102: {221: "execve", 281: "execveat", 94: "exit_group"}, // loongarch64
}

// SyscallName names the syscall of a SYSCALL record: the ENRICHED SYSCALL= field, or the arch and number.
// It knows only the syscalls the plugin acts on.
func SyscallName(r *Record) string {
	if f, ok := r.GetEnriched("SYSCALL"); ok {
		return f.Value
	}
	arch, ok1 := r.Hex("arch")
	nr, ok2 := r.Uint("syscall")
	if !ok1 || !ok2 {
		return ""
	}
	return syscallNames[arch][nr]
}

// Interpret reads an event. reason is "" for events it understood (including those of no interest,
// FactNone), or one of the Reason* constants for a malformed one.
func Interpret(ev *Event) (f Fact, reason string) {
	f.Node, f.ID = ev.Node, ev.ID
	var sys *Record
	for i := range ev.Records {
		r := &ev.Records[i]
		switch r.Type {
		case "SYSCALL":
			sys = r
		case "ANOM_ABEND":
			return abend(f, r)
		case "USER_START", "USER_END", "LOGIN":
			if sys == nil && len(ev.Records) == 1 || r.Type == "LOGIN" {
				return session(f, r)
			}
		}
	}
	if sys == nil {
		return f, ""
	}
	if !ids(&f, sys) {
		return f, ReasonBadNumber
	}
	if f.AUID == UnsetID {
		return Fact{}, "" // no login: not a session's process
	}
	switch SyscallName(sys) {
	case "":
		if _, ok := sys.Get("syscall"); !ok {
			return Fact{}, ReasonNoSyscall
		}
		return Fact{}, ""
	case "execve", "execveat":
		if sf, ok := sys.Get("success"); !ok || sf.Value != "yes" {
			return Fact{}, "" // a failed exec runs nothing
		}
		f.Kind = FactExec
		return execFact(f, ev, sys)
	case "exit_group":
		// exit_group never returns, so the kernel logs its SYSCALL record from the task's exit
		// (audit_free -> audit_log_exit) without success= or exit=; the status is its argument a0.
		a0, ok := sys.Hex("a0")
		if !ok {
			return Fact{}, ReasonBadNumber
		}
		f.Kind, f.Status = FactExit, int(a0&0xff)
		return f, ""
	}
	return Fact{}, ""
}

// ids reads pid, ppid, auid, ses and tty of a SYSCALL or ANOM_ABEND record.
func ids(f *Fact, r *Record) bool {
	pid, ok1 := r.Uint("pid")
	auid, ok2 := r.Uint("auid")
	ses, ok3 := r.Uint("ses")
	if !ok1 || !ok2 || !ok3 || pid > 1<<31 || auid > UnsetID || ses > UnsetID {
		return false
	}
	f.PID, f.AUID, f.SES = int(pid), uint32(auid), uint32(ses)
	if ppid, ok := r.Uint("ppid"); ok && ppid <= 1<<31 {
		f.PPID = int(ppid)
	}
	if t, ok := r.Get("tty"); ok && t.Value != "(none)" {
		f.TTY = t.Value
	}
	if exe, ok := r.Str("exe"); ok {
		f.Exe = exe
	}
	return true
}

func abend(f Fact, r *Record) (Fact, string) {
	if !ids(&f, r) {
		return Fact{}, ReasonBadNumber
	}
	sig, ok := r.Uint("sig")
	if !ok || sig > 255 {
		return Fact{}, ReasonBadNumber
	}
	if f.AUID == UnsetID {
		return Fact{}, ""
	}
	f.Kind, f.Signal = FactAbend, int(sig)
	return f, ""
}

// session reads LOGIN (auid= ses= are the new ones), USER_START and USER_END.
func session(f Fact, r *Record) (Fact, string) {
	auid, ok1 := r.Uint("auid")
	ses, ok2 := r.Uint("ses")
	if !ok1 || !ok2 || auid > UnsetID || ses > UnsetID {
		return Fact{}, ReasonBadNumber
	}
	if auid == UnsetID || ses == UnsetID {
		return Fact{}, ""
	}
	f.AUID, f.SES = uint32(auid), uint32(ses)
	if pid, ok := r.Uint("pid"); ok && pid <= 1<<31 {
		f.PID = int(pid)
	}
	f.Kind = FactSessionStart
	if r.Type == "USER_END" {
		f.Kind = FactSessionEnd
	}
	return f, ""
}

func execFact(f Fact, ev *Event, sys *Record) (Fact, string) {
	var execve []*Record
	for i := range ev.Records {
		r := &ev.Records[i]
		switch r.Type {
		case "EXECVE":
			execve = append(execve, r)
		case "CWD":
			if s, ok := r.Str("cwd"); ok {
				f.Cwd = s
			}
		case "PATH":
			if item, ok := r.Get("item"); ok && item.Value == "0" {
				if s, ok := r.Str("name"); ok {
					f.Path = s
				}
			}
		}
	}
	if len(execve) > 0 {
		argv, argc, reason := argvOf(execve)
		if reason == "" && !ev.Truncated {
			f.Argv, f.Argc = argv, argc
			return f, ""
		}
		if reason == "" {
			reason = ReasonIncomplete
		}
		// Fall through to PROCTITLE, but count the event as malformed.
		f.Argv, f.Argc = argv, argc
		if pt, ok := proctitle(ev); ok && len(pt) > len(argv) {
			f.Argv, f.Argc, f.ArgvFromProctitle = pt, len(pt), true
		}
		return f, reason
	}
	if pt, ok := proctitle(ev); ok {
		f.Argv, f.Argc, f.ArgvFromProctitle = pt, len(pt), true
	}
	return f, ""
}

func proctitle(ev *Event) ([]string, bool) {
	for i := range ev.Records {
		r := &ev.Records[i]
		if r.Type == "PROCTITLE" {
			s, ok := r.Str("proctitle")
			if !ok {
				return nil, false
			}
			parts := strings.Split(s, "\x00")
			if len(parts) > maxKeptArgs {
				parts = parts[:maxKeptArgs]
			}
			return parts, true
		}
	}
	return nil, false
}

// argvOf rebuilds argv from the EXECVE records of an event (kernel/auditsc.c audit_log_execve_info):
// "argc=N a0=... a1=...", possibly over several records; an argument longer than the record allows is
// split as "aI_len=L aI[0]=... aI[1]=...", each piece hex (or quoted) on its own, joined before decoding.
func argvOf(recs []*Record) (argv []string, argc int, reason string) {
	c, ok := recs[0].Uint("argc")
	if !ok || c > 1<<24 {
		return nil, 0, ReasonBadArgs
	}
	argc = int(c)
	keep := min(argc, maxKeptArgs)
	argv = make([]string, keep)
	seen := make([]bool, keep)
	type split struct {
		pieces []string
		quoted bool
	}
	var splits map[int]*split
	for _, r := range recs {
		for _, fl := range r.Fields {
			k := fl.Key
			if len(k) < 2 || k[0] != 'a' || k[1] < '0' || k[1] > '9' {
				continue
			}
			j := 1
			for j < len(k) && k[j] >= '0' && k[j] <= '9' {
				j++
			}
			idx, err := strconv.Atoi(k[1:j])
			if err != nil || idx >= argc {
				return argv, argc, ReasonBadArgs
			}
			if idx >= keep {
				continue
			}
			switch suffix := k[j:]; {
			case suffix == "":
				s, ok := DecodeString(fl)
				if !ok {
					return argv, argc, ReasonBadHex
				}
				argv[idx], seen[idx] = s, true
			case suffix == "_len":
				if splits == nil {
					splits = make(map[int]*split)
				}
				if splits[idx] == nil {
					splits[idx] = &split{}
				}
			case len(suffix) >= 3 && suffix[0] == '[' && suffix[len(suffix)-1] == ']':
				n, err := strconv.Atoi(suffix[1 : len(suffix)-1])
				if err != nil || n < 0 || n > 1<<20 {
					return argv, argc, ReasonBadArgs
				}
				if splits == nil {
					splits = make(map[int]*split)
				}
				sp := splits[idx]
				if sp == nil {
					sp = &split{}
					splits[idx] = sp
				}
				if n != len(sp.pieces) {
					return argv, argc, ReasonBadArgs // pieces out of order or missing
				}
				sp.pieces = append(sp.pieces, fl.Value)
				sp.quoted = fl.Quoted
			default:
				return argv, argc, ReasonBadArgs
			}
		}
	}
	for idx, sp := range splits {
		if len(sp.pieces) == 0 {
			return argv, argc, ReasonBadArgs
		}
		s, ok := DecodeString(Field{Value: strings.Join(sp.pieces, ""), Quoted: sp.quoted})
		if !ok {
			return argv, argc, ReasonBadHex
		}
		argv[idx], seen[idx] = s, true
	}
	for _, s := range seen {
		if !s {
			return argv, argc, ReasonIncomplete
		}
	}
	return argv, argc, ""
}
