package fsm_test

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/tacplus"
)

// Golden transcripts, in the manner of etcd-io/raft's testdata: each file under testdata/ is a list of
// blocks
//
//	# comments
//	command key=value key="quoted value" ...
//	----
//	the effects the command produced, one per line, then the machine's state
//
// The test replays every command and compares the whole regenerated file with the one on disk; any
// difference fails. `go test ./fsm -rewrite` writes the regenerated files instead.
var rewrite = flag.Bool("rewrite", false, "rewrite the golden transcripts in testdata/ from the machines' output")

func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := replay(string(raw))
			if err != nil {
				t.Fatal(err)
			}
			if *rewrite {
				if err := os.WriteFile(f, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != string(raw) {
				t.Errorf("%s differs from the machines' output (go test ./fsm -rewrite regenerates it):\n%s", f, firstDiff(string(raw), got))
			}
		})
	}
}

// A transcript whose recorded output is wrong must fail: the comparison is not a formality.
func TestTranscriptMismatchIsDetected(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "ascii_login.txt"))
	if err != nil {
		t.Fatal(err)
	}
	tampered := strings.Replace(string(raw), "state=AwaitUser", "state=Done", 1)
	if tampered == string(raw) {
		t.Fatal("ascii_login.txt has no AwaitUser state to tamper with")
	}
	got, err := replay(tampered)
	if err != nil {
		t.Fatal(err)
	}
	if got == tampered {
		t.Fatal("a tampered transcript replayed as equal")
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  file: %s\n  got:  %s", i+1, wl, gl)
		}
	}
	return "(no line differs)"
}

// replay runs every command of a transcript and returns the transcript with the outputs regenerated.
func replay(text string) (string, error) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	var out strings.Builder
	r := &runner{}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if l == "" || strings.HasPrefix(l, "#") {
			out.WriteString(l + "\n")
			continue
		}
		if i+1 >= len(lines) || lines[i+1] != "----" {
			return "", fmt.Errorf("line %d: command %q is not followed by ----", i+1, l)
		}
		i += 2
		for i < len(lines) && lines[i] != "" {
			i++ // the recorded output, regenerated below
		}
		res, err := r.run(l)
		if err != nil {
			return "", fmt.Errorf("command %q: %w", l, err)
		}
		out.WriteString(l + "\n----\n" + res + "\n")
		if i < len(lines) {
			out.WriteString("\n")
		}
	}
	return out.String(), nil
}

// runner holds the machine of the transcript and what it last sent.
type runner struct {
	m        fsm.Machine
	kind     tacplus.PacketType
	lastSent tacplus.Header
}

func (r *runner) run(line string) (string, error) {
	cmd, args, err := parseCommand(line)
	if err != nil {
		return "", err
	}
	var ev fsm.Event
	switch cmd {
	case "authen", "author", "acct":
		return r.create(cmd, args)
	case "start":
		ev = fsm.Start()
	case "reply":
		if ev, err = r.reply(args); err != nil {
			return "", err
		}
	case "input":
		ev = fsm.Input([]byte(args.str("text", "")))
	case "timeout":
		ev = fsm.Timeout()
	case "lost":
		ev = fsm.ConnectionLost(errors.New(args.str("cause", "EOF")))
	case "abort":
		ev = fsm.Abort(args.str("reason", ""))
	default:
		return "", fmt.Errorf("unknown command %q", cmd)
	}
	if err := args.unused(); err != nil {
		return "", err
	}
	if r.m == nil {
		return "", errors.New("no machine: start the transcript with authen, author or acct")
	}
	effs, err := r.m.Step(ev)
	var b strings.Builder
	if err != nil {
		fmt.Fprintf(&b, "refused: %v\n", err)
	}
	for _, e := range effs {
		b.WriteString(e.String() + "\n")
		if e.Kind == fsm.EffectSend {
			r.lastSent = e.Header
		}
	}
	fmt.Fprintf(&b, "state=%s wait=%s", r.m.StateName(), r.m.Wait())
	return b.String(), nil
}

func (r *runner) create(kind string, a cmdArgs) (string, error) {
	sid := uint32(a.num("session", 0))
	var m fsm.Machine
	var err error
	switch kind {
	case "authen":
		cfg := fsm.AuthenConfig{
			SessionID: sid, PrivLvl: uint8(a.num("priv", 1)), User: a.str("user", ""), Port: a.str("port", ""),
			RemAddr: a.str("rem_addr", ""), Password: []byte(a.str("password", "")), ChallengeID: byte(a.num("chap_id", 0)),
			Challenge: a.hex("challenge"), PeerChallenge: a.hex("peer_challenge"),
		}
		cfg.Action = map[string]tacplus.AuthenAction{"": 0, "login": tacplus.ActionLogin, "chpass": tacplus.ActionChPass, "sendauth": tacplus.ActionSendAuth}[a.str("action", "")]
		cfg.Type = map[string]tacplus.AuthenType{"": 0, "ascii": tacplus.AuthenTypeASCII, "pap": tacplus.AuthenTypePAP,
			"chap": tacplus.AuthenTypeCHAP, "mschap": tacplus.AuthenTypeMSCHAP, "mschapv2": tacplus.AuthenTypeMSCHAPv2}[a.str("type", "")]
		cfg.Service = map[string]tacplus.AuthenService{"": 0, "login": tacplus.ServiceLogin, "enable": tacplus.ServiceEnable, "ppp": tacplus.ServicePPP}[a.str("service", "")]
		m, err = fsm.NewAuthen(cfg)
		r.kind = tacplus.TypeAuthen
	case "author":
		m, err = fsm.NewAuthor(fsm.AuthorConfig{
			SessionID: sid, Method: tacplus.MethodTACACSPlus, PrivLvl: uint8(a.num("priv", 1)), Type: tacplus.AuthenTypeASCII,
			Service: tacplus.ServiceLogin, User: a.str("user", ""), Port: a.str("port", ""), RemAddr: a.str("rem_addr", ""),
			Args: a.all("arg"),
		})
		r.kind = tacplus.TypeAuthor
	case "acct":
		flags := map[string]tacplus.AcctFlag{"start": tacplus.AcctFlagStart, "stop": tacplus.AcctFlagStop,
			"watchdog": tacplus.AcctFlagWatchdog, "update": tacplus.AcctFlagWatchdog | tacplus.AcctFlagStart,
			"start|stop": tacplus.AcctFlagStart | tacplus.AcctFlagStop}[a.str("flags", "")]
		m, err = fsm.NewAcct(fsm.AcctConfig{
			SessionID: sid, Flags: flags, Method: tacplus.MethodTACACSPlus, PrivLvl: uint8(a.num("priv", 1)),
			Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin, User: a.str("user", ""), Port: a.str("port", ""),
			RemAddr: a.str("rem_addr", ""), Args: a.all("arg"),
		})
		r.kind = tacplus.TypeAcct
	}
	if err := a.unused(); err != nil {
		return "", err
	}
	r.lastSent = tacplus.Header{}
	if err != nil {
		r.m = nil
		return "config error: " + err.Error(), nil
	}
	r.m = m
	return fmt.Sprintf("state=%s wait=%s", m.StateName(), m.Wait()), nil
}

// reply builds a server packet. By default it is the right next packet of the session: seq_no one above the
// last sent, the session's id, type and version; seq, session, version and type override them.
func (r *runner) reply(a cmdArgs) (fsm.Event, error) {
	h := tacplus.Header{
		Version:   uint8(a.num("version", int64(r.lastSent.Version))),
		Type:      r.kind,
		SeqNo:     uint8(a.num("seq", int64(r.lastSent.SeqNo)+1)),
		SessionID: uint32(a.num("session", int64(r.lastSent.SessionID))),
	}
	if h.Version == 0 {
		h.Version = tacplus.VersionByte(0)
	}
	if h.SessionID == 0 && r.m != nil {
		h.SessionID = r.m.SessionID()
	}
	if t := a.str("type", ""); t != "" {
		h.Type = map[string]tacplus.PacketType{"authen": tacplus.TypeAuthen, "author": tacplus.TypeAuthor, "acct": tacplus.TypeAcct}[t]
	}
	if reason := a.str("undecodable", ""); reason != "" {
		r := map[string]tacplus.Reason{"bad_secret": tacplus.ReasonBadSecret, "text": tacplus.ReasonText, "enum": tacplus.ReasonEnum}[reason]
		return fsm.BadPacket(h, &tacplus.DecodeError{Reason: r, Field: "body"}), nil
	}
	status, msg, data := a.str("status", ""), a.str("msg", ""), a.str("data", "")
	var body tacplus.Body
	switch h.Type {
	case tacplus.TypeAuthen:
		s, ok := authenStatuses[status]
		if !ok {
			return fsm.Event{}, fmt.Errorf("no authentication status %q", status)
		}
		var f tacplus.AuthenReplyFlag
		if a.str("flags", "") == "noecho" {
			f = tacplus.FlagNoEcho
		}
		body = &tacplus.AuthenReply{Status: s, Flags: f, ServerMsg: msg, Data: data}
	case tacplus.TypeAuthor:
		s, ok := authorStatuses[status]
		if !ok {
			return fsm.Event{}, fmt.Errorf("no authorization status %q", status)
		}
		body = &tacplus.AuthorResponse{Status: s, ServerMsg: msg, Data: data, Args: a.all("arg")}
	case tacplus.TypeAcct:
		s, ok := acctStatuses[status]
		if !ok {
			return fsm.Event{}, fmt.Errorf("no accounting status %q", status)
		}
		body = &tacplus.AcctReply{Status: s, ServerMsg: msg, Data: data}
	}
	return fsm.Packet(h, body), nil
}

// cmdArgs are a command's key=value pairs; keys may repeat (arg=...).
type cmdArgs struct {
	kv   [][2]string
	used map[int]bool
}

func (a *cmdArgs) lookup(key string) (string, bool) {
	for i, p := range a.kv {
		if p[0] == key {
			a.used[i] = true
			return p[1], true
		}
	}
	return "", false
}

func (a *cmdArgs) str(key, def string) string {
	if v, ok := a.lookup(key); ok {
		return v
	}
	return def
}

func (a *cmdArgs) num(key string, def int64) int64 {
	v, ok := a.lookup(key)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 0, 64)
	if err != nil {
		panic(fmt.Sprintf("%s=%q is not a number", key, v))
	}
	return n
}

func (a *cmdArgs) hex(key string) []byte {
	v, ok := a.lookup(key)
	if !ok {
		return nil
	}
	b, err := hex.DecodeString(v)
	if err != nil {
		panic(fmt.Sprintf("%s=%q is not hex", key, v))
	}
	return b
}

func (a *cmdArgs) all(key string) []string {
	var out []string
	for i, p := range a.kv {
		if p[0] == key {
			a.used[i] = true
			out = append(out, p[1])
		}
	}
	return out
}

// unused catches misspelt keys, which would otherwise be silently ignored.
func (a *cmdArgs) unused() error {
	for i, p := range a.kv {
		if !a.used[i] {
			return fmt.Errorf("unknown key %q", p[0])
		}
	}
	return nil
}

// parseCommand splits `cmd key=value key="quoted value"`; quoted values use Go syntax.
func parseCommand(line string) (string, cmdArgs, error) {
	a := cmdArgs{used: map[int]bool{}}
	cmd, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	for rest = strings.TrimLeft(rest, " "); rest != ""; rest = strings.TrimLeft(rest, " ") {
		key, after, ok := strings.Cut(rest, "=")
		if !ok || key == "" || strings.Contains(key, " ") {
			return "", a, fmt.Errorf("expected key=value at %q", rest)
		}
		var val string
		if strings.HasPrefix(after, `"`) {
			q, err := strconv.QuotedPrefix(after)
			if err != nil {
				return "", a, fmt.Errorf("bad quoted value at %q: %w", after, err)
			}
			val, _ = strconv.Unquote(q)
			rest = after[len(q):]
		} else {
			val, rest, _ = strings.Cut(after, " ")
		}
		a.kv = append(a.kv, [2]string{key, val})
	}
	return cmd, a, nil
}
