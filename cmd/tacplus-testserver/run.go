package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// defaultKeyEnv names the environment variable the key is read from when no -key-file is given.
const defaultKeyEnv = "TACPLUS_TESTSERVER_KEY"

// fileConfig is the -config file.
type fileConfig struct {
	Users         map[string]fileUser `yaml:"users"`
	AuthorRules   []fileRule          `yaml:"author_rules"`
	SingleConnect bool                `yaml:"single_connect"`
	KeepOpen      bool                `yaml:"keep_open"`
	IdleTimeout   time.Duration       `yaml:"idle_timeout"`
	Faults        fileFaults          `yaml:"faults"`
}

type fileUser struct {
	Password       string        `yaml:"password"`
	EnablePassword string        `yaml:"enable_password"`
	Delay          time.Duration `yaml:"delay"`
	Groups         []string      `yaml:"groups"`
	Prompts        []filePrompt  `yaml:"prompts"`
}

type filePrompt struct {
	Message string `yaml:"message"`
	Answer  string `yaml:"answer"`
	NoEcho  bool   `yaml:"noecho"`
}

type fileRule struct {
	User      string   `yaml:"user"`
	Group     string   `yaml:"group"`
	Service   string   `yaml:"service"`
	Command   string   `yaml:"command"`
	Permit    bool     `yaml:"permit"`
	Replace   bool     `yaml:"replace"`
	Args      []string `yaml:"args"`
	ServerMsg string   `yaml:"server_msg"`
}

// fileFaults are tacplustest.Faults; counts are replies (-1: every reply).
type fileFaults struct {
	User            string        `yaml:"user"`
	Delay           time.Duration `yaml:"delay"`
	DropReplies     int           `yaml:"drop_replies"` // -1: accept TCP, never answer
	CloseMidSession int           `yaml:"close_mid_session"`
	Truncate        int           `yaml:"truncate"`
	Garbage         int           `yaml:"garbage"`
	ErrorReplies    int           `yaml:"error_replies"`
	WrongKey        int           `yaml:"wrong_key"`
	WrongSeq        int           `yaml:"wrong_seq"`     // seq_no 2 higher: skips one
	WrongSession    int           `yaml:"wrong_session"` // session_id XOR a mask: nobody's
	CrossSession    int           `yaml:"cross_session"` // another live session's id on the same connection
	CloseAfterReply int           `yaml:"close_after_reply"`
	PromptForever   bool          `yaml:"prompt_forever"` // GETDATA loop
	FailDelay       time.Duration `yaml:"fail_delay"`     // hold back FAIL replies
}

func (f fileFaults) faults() tacplustest.Faults {
	return tacplustest.Faults{User: f.User, Delay: f.Delay, DropReplies: f.DropReplies, CloseMidSession: f.CloseMidSession,
		Truncate: f.Truncate, Garbage: f.Garbage, ErrorReplies: f.ErrorReplies, WrongKey: f.WrongKey, WrongSeq: f.WrongSeq,
		WrongSession: f.WrongSession, CrossSession: f.CrossSession, CloseAfterReply: f.CloseAfterReply,
		PromptForever: f.PromptForever, FailDelay: f.FailDelay}
}

// acctLine is one record of the -acct-log file.
type acctLine struct {
	Received  time.Time `json:"received"`
	Conn      uint64    `json:"conn"`
	SessionID uint32    `json:"session_id"`
	Flags     string    `json:"flags"`
	Method    string    `json:"authen_method"`
	PrivLvl   uint8     `json:"priv_lvl"`
	Type      string    `json:"authen_type"`
	Service   string    `json:"authen_service"`
	User      string    `json:"user"`
	Port      string    `json:"port"`
	RemAddr   string    `json:"rem_addr"`
	TaskID    string    `json:"task_id"`
	Args      []string  `json:"args"`
	Status    string    `json:"status"`
}

// run is main without the process: it returns the exit status once a signal arrives on sig.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer, sig <-chan os.Signal) int {
	fs := flag.NewFlagSet("tacplus-testserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", tacplustest.DefaultAddr, "loopback address to listen on")
	configPath := fs.String("config", "", "users, authorization rules and settings (YAML or JSON)")
	keyFile := fs.String("key-file", "", "file holding the shared key (trailing newline ignored)")
	keyEnv := fs.String("key-env", defaultKeyEnv, "environment variable holding the shared key, when no -key-file")
	acctLog := fs.String("acct-log", "", "append every accounting record to this file as a JSON line")
	single := fs.Bool("single-connect", false, "agree to single-connect (RFC 8907 section 4.3)")
	keepOpen := fs.Bool("keep-open", false, "keep connections open after a session without single-connect")
	idle := fs.Duration("idle-timeout", tacplustest.DefaultIdleTimeout, "close connections idle this long (<0: never)")
	// Faults (issue 12): counts are how many replies get the fault, -1 every reply; they override the file.
	var ff fileFaults
	fs.IntVar(&ff.DropReplies, "fault-drop-replies", 0, "drop this many replies (-1: accept TCP and never answer)")
	fs.IntVar(&ff.WrongSession, "fault-wrong-session", 0, "reply under a session_id nobody has")
	fs.IntVar(&ff.CrossSession, "fault-cross-session", 0, "reply under another live session's id on the same connection (misrouting)")
	fs.IntVar(&ff.WrongSeq, "fault-wrong-seq", 0, "reply with a seq_no that skips one")
	fs.IntVar(&ff.CloseAfterReply, "fault-close-after-reply", 0, "close the connection after the reply")
	fs.IntVar(&ff.ErrorReplies, "fault-error-replies", 0, "answer ERROR")
	fs.BoolVar(&ff.PromptForever, "fault-prompt-forever", false, "answer every authentication packet with GETDATA")
	fs.DurationVar(&ff.FailDelay, "fault-fail-delay", 0, "hold back authentication FAIL replies this long")
	fs.DurationVar(&ff.Delay, "fault-delay", 0, "hold back every reply this long")
	tf := addTLSFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "tacplus-testserver: "+format+"\n", a...)
		return exitError
	}

	var fc fileConfig
	if *configPath != "" {
		if err := readConfig(*configPath, &fc); err != nil {
			return fail("%v", err)
		}
	}
	cfg := fc.config()
	cfg.Addr = *listen
	fs.Visit(func(f *flag.Flag) { // flags given explicitly override the file
		switch f.Name {
		case "single-connect":
			cfg.SingleConnect = *single
		case "keep-open":
			cfg.KeepOpen = *keepOpen
		case "idle-timeout":
			cfg.IdleTimeout = *idle
		case "fault-drop-replies":
			cfg.Faults.DropReplies = ff.DropReplies
		case "fault-wrong-session":
			cfg.Faults.WrongSession = ff.WrongSession
		case "fault-cross-session":
			cfg.Faults.CrossSession = ff.CrossSession
		case "fault-wrong-seq":
			cfg.Faults.WrongSeq = ff.WrongSeq
		case "fault-close-after-reply":
			cfg.Faults.CloseAfterReply = ff.CloseAfterReply
		case "fault-error-replies":
			cfg.Faults.ErrorReplies = ff.ErrorReplies
		case "fault-prompt-forever":
			cfg.Faults.PromptForever = ff.PromptForever
		case "fault-fail-delay":
			cfg.Faults.FailDelay = ff.FailDelay
		case "fault-delay":
			cfg.Faults.Delay = ff.Delay
		}
	})

	key, err := readKey(*keyFile, *keyEnv, getenv)
	if err != nil {
		return fail("%v", err)
	}
	cfg.Key = key

	if *acctLog != "" {
		f, err := os.OpenFile(*acctLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fail("accounting log: %v", err)
		}
		defer f.Close()
		cfg.OnAccounting = writeRecords(f)
	}
	cfg.Logf = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	if cfg.TLS, err = tf.config(); err != nil {
		return fail("%v", err)
	}

	srv, err := tacplustest.Start(cfg)
	if err != nil {
		return fail("%v", err)
	}
	if _, err := fmt.Fprintln(stdout, srv.Addr()); err != nil {
		srv.Close()
		return fail("readiness line: %v", err)
	}
	<-sig
	if err := srv.Close(); err != nil {
		return fail("close: %v", err)
	}
	return exitOK
}

func readConfig(path string, fc *fileConfig) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(fc); err != nil && err != io.EOF {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// readKey reads the shared key from a file, or else from the environment. It never shows the key.
func readKey(file, env string, getenv func(string) string) ([]byte, error) {
	if file != "" {
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("key file: %w", err)
		}
		key := strings.TrimRight(string(raw), "\r\n")
		if key == "" {
			return nil, fmt.Errorf("key file %s is empty", file)
		}
		return []byte(key), nil
	}
	if key := getenv(env); key != "" {
		return []byte(key), nil
	}
	return nil, fmt.Errorf("no shared key: give -key-file or set %s", env)
}

func (fc fileConfig) config() tacplustest.Config {
	cfg := tacplustest.Config{SingleConnect: fc.SingleConnect, KeepOpen: fc.KeepOpen, IdleTimeout: fc.IdleTimeout,
		Users:  make(map[string]tacplustest.User, len(fc.Users)),
		Faults: fc.Faults.faults()}
	for name, u := range fc.Users {
		tu := tacplustest.User{Password: u.Password, EnablePassword: u.EnablePassword, Delay: u.Delay, Groups: u.Groups}
		for _, p := range u.Prompts {
			tu.Prompts = append(tu.Prompts, tacplustest.Prompt{Message: p.Message, Answer: p.Answer, NoEcho: p.NoEcho})
		}
		cfg.Users[name] = tu
	}
	for _, r := range fc.AuthorRules {
		cfg.AuthorRules = append(cfg.AuthorRules, tacplustest.AuthorRule{User: r.User, Group: r.Group, Service: r.Service,
			Command: r.Command, Permit: r.Permit, Replace: r.Replace, Args: r.Args, ServerMsg: r.ServerMsg})
	}
	return cfg
}

// writeRecords returns the accounting sink: one JSON line per record, written with one write(2) before the
// server replies, so that a record the client saw acknowledged survives a SIGKILL of this process.
func writeRecords(w io.Writer) func(tacplustest.AcctRecord) error {
	var mu sync.Mutex
	return func(r tacplustest.AcctRecord) error {
		line, err := json.Marshal(acctLine{Received: r.Received, Conn: r.Conn, SessionID: r.SessionID,
			Flags: r.Flags.String(), Method: r.Method.String(), PrivLvl: r.PrivLvl, Type: r.Type.String(),
			Service: r.Service.String(), User: r.User, Port: r.Port, RemAddr: r.RemAddr, TaskID: r.TaskID,
			Args: r.Args, Status: r.Status.String()})
		if err != nil {
			return err
		}
		line = append(line, '\n')
		mu.Lock()
		defer mu.Unlock()
		_, err = w.Write(line)
		return err
	}
}
