package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tacagent/tacagent/internal/tacquitoserver"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// user is one entry of the -users file.
type user struct {
	Name     string   `json:"name"`
	Password string   `json:"password"`
	PrivLvl  int      `json:"priv_lvl"`
	Permit   []string `json:"permit"`
	Deny     []string `json:"deny"`
}

// acctLine is one record of the -acct-log file; the fields match cmd/tacplus-testserver's where they
// overlap, so that one reader handles both servers' logs.
type acctLine struct {
	Received time.Time `json:"received"`
	Flags    uint8     `json:"flags_bits"`
	User     string    `json:"user"`
	Port     string    `json:"port"`
	RemAddr  string    `json:"rem_addr"`
	TaskID   string    `json:"task_id"`
	Args     []string  `json:"args"`
}

// run is main without the process: it returns the exit status once a signal arrives on sig.
func run(args []string, stdout, stderr io.Writer, sig <-chan os.Signal) int {
	fs := flag.NewFlagSet("tacquito-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "loopback address to listen on")
	keyFile := fs.String("key-file", "", "file holding the shared key (trailing newline ignored)")
	usersPath := fs.String("users", "", "JSON list of accounts")
	acctLog := fs.String("acct-log", "", "append every accounting record to this file as a JSON line")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "tacquito-server: "+format+"\n", a...)
		return exitError
	}
	if err := checkLoopback(*listen); err != nil {
		return fail("%v", err)
	}
	key, err := readKey(*keyFile)
	if err != nil {
		return fail("%v", err)
	}
	cfg := tacquitoserver.Config{Addr: *listen, Key: key}
	if *usersPath != "" {
		if cfg.Users, err = readUsers(*usersPath); err != nil {
			return fail("%v", err)
		}
	}
	if *acctLog != "" {
		f, err := os.OpenFile(*acctLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fail("accounting log: %v", err)
		}
		defer f.Close()
		cfg.OnRecord = writeRecords(f, stderr)
	}
	srv, err := tacquitoserver.Start(cfg)
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

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("listen address %q is not a loopback IP", addr)
	}
	return nil
}

// readKey reads the shared key; it never shows it.
func readKey(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("no shared key: give -key-file")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	key := strings.TrimRight(string(raw), "\r\n")
	if key == "" {
		return nil, fmt.Errorf("key file %s is empty", path)
	}
	return []byte(key), nil
}

func readUsers(path string) ([]tacquitoserver.User, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var in []user
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make([]tacquitoserver.User, 0, len(in))
	for _, u := range in {
		out = append(out, tacquitoserver.User{Name: u.Name, Password: u.Password, PrivLvl: u.PrivLvl, Permit: u.Permit, Deny: u.Deny})
	}
	return out, nil
}

// writeRecords returns the accounting hook: one JSON line per record, written with one write(2) before
// tacquito replies. A record that cannot be written ends the process: acknowledging it would be a lie.
func writeRecords(w, stderr io.Writer) func(tacquitoserver.Record) {
	var mu sync.Mutex
	return func(r tacquitoserver.Record) {
		line, err := json.Marshal(acctLine{Received: time.Now(), Flags: r.Flags, User: r.User, Port: r.Port,
			RemAddr: r.RemAddr, TaskID: taskID(r.Args), Args: r.Args})
		if err == nil {
			line = append(line, '\n')
			mu.Lock()
			_, err = w.Write(line)
			mu.Unlock()
		}
		if err != nil {
			fmt.Fprintf(stderr, "tacquito-server: accounting log: %v\n", err)
			os.Exit(exitError)
		}
	}
}

// taskID returns the value of the task_id argument (RFC 8907 section 8.3), "" when absent.
func taskID(args []string) string {
	for _, a := range args {
		for _, sep := range []string{"=", "*"} {
			if v, ok := strings.CutPrefix(a, "task_id"+sep); ok {
				return v
			}
		}
	}
	return ""
}
