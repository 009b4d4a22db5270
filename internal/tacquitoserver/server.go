package tacquitoserver

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	tq "github.com/facebookincubator/tacquito"
	"github.com/facebookincubator/tacquito/cmds/server/config"
	"github.com/facebookincubator/tacquito/cmds/server/config/accounters/local"
	tqbcrypt "github.com/facebookincubator/tacquito/cmds/server/config/authenticators/bcrypt"
	"github.com/facebookincubator/tacquito/cmds/server/config/authorizers/stringy"
	"github.com/facebookincubator/tacquito/cmds/server/handlers"
	tqlog "github.com/facebookincubator/tacquito/cmds/server/log"
	"golang.org/x/crypto/bcrypt"
)

// User is one account on the server.
type User struct {
	Name     string
	Password string
	// PrivLvl is returned as priv-lvl on session authorization (service=shell with an empty cmd).
	PrivLvl int
	// Permit and Deny list command names; Permit entries allow any arguments.
	Permit []string
	Deny   []string
}

// Config describes the server.
type Config struct {
	Addr  string // default 127.0.0.1:0
	Key   []byte
	Users []User
	// TLS, when set, serves TACACS+ over TLS 1.3 (RFC 9887) with tacquito's own TLS support
	// (tacquito.NewTLSListener, SetUseTLS): no obfuscation, the UNENCRYPTED flag required. Key is still
	// required by tacquito's secret provider but unused on the wire.
	TLS *tls.Config
	// OnRecord, when set, is called with every accounting record before tacquito replies, so that a
	// process wrapping the server can persist what a client will see acknowledged. It is called from
	// connection goroutines concurrently.
	OnRecord func(Record)
}

// Record is one accounting record the server acknowledged.
type Record struct {
	Flags   uint8
	User    string
	Port    string
	RemAddr string
	Args    []string
}

// Server is a running tacquito server.
type Server struct {
	ln     *trackListener
	cancel context.CancelFunc
	done   chan error

	onRecord func(Record)

	mu      sync.Mutex
	records []Record
}

// Start listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	if len(cfg.Key) == 0 {
		return nil, errors.New("tacquitoserver: a key is required")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	lg := tqlog.New(10, io.Discard) // errors only, discarded: tacquito logs are not ours to print
	s := &Server{done: make(chan error, 1), onRecord: cfg.OnRecord}
	users := make(map[string]*config.AAA, len(cfg.Users))
	for _, u := range cfg.Users {
		aaa, err := s.user(lg, u)
		if err != nil {
			return nil, fmt.Errorf("tacquitoserver: user %s: %w", u.Name, err)
		}
		users[u.Name] = aaa
	}
	tcp, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	start := handlers.NewStart(lg).New(ctx, config.New().New(users), nil)
	var dl tq.DeadlineListener = tcp.(*net.TCPListener)
	var opts []tq.Option
	if cfg.TLS != nil {
		tl, err := tq.NewTLSListener(tcp, cfg.TLS.Clone())
		if err != nil {
			cancel()
			tcp.Close()
			return nil, err
		}
		dl, opts = tl, append(opts, tq.SetUseTLS(true))
	}
	srv := tq.NewServer(lg, staticSecret{key: append([]byte(nil), cfg.Key...), h: start}, opts...)
	s.ln = &trackListener{DeadlineListener: dl}
	go func() { s.done <- srv.Serve(ctx, s.ln) }()
	return s, nil
}

func (s *Server) user(lg *tqlog.Logger, u User) (*config.AAA, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.MinCost)
	if err != nil {
		return nil, err
	}
	authn, err := tqbcrypt.New(lg, nil).New(u.Name, map[string]string{"hash": hex.EncodeToString(hash)})
	if err != nil {
		return nil, err
	}
	cu := config.User{Name: u.Name}
	if u.PrivLvl > 0 {
		cu.Services = []config.Service{{Name: "shell", SetValues: []config.Value{{Name: "priv-lvl", Values: []string{fmt.Sprint(u.PrivLvl)}}}}}
	}
	for _, c := range u.Permit {
		cu.Commands = append(cu.Commands, config.Command{Name: c, Match: []string{".*"}, Action: config.PERMIT})
	}
	for _, c := range u.Deny {
		cu.Commands = append(cu.Commands, config.Command{Name: c, Action: config.DENY})
	}
	authz, err := stringy.New(lg).New(cu)
	if err != nil {
		return nil, err
	}
	acct, err := local.New(lg, local.SetLogSink(sink{s}))
	if err != nil {
		return nil, err
	}
	return config.NewAAA(config.SetAAAUser(cu), config.SetAAAAuthenticator(authn),
		config.SetAAAAuthorizer(authz), config.SetAAAAccounter(acct.New(nil))), nil
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Accounting returns a copy of every accounting record received.
func (s *Server) Accounting() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.records...)
}

// CloseConnections drops every open client connection, as a server restart would, but keeps listening.
func (s *Server) CloseConnections() { s.ln.closeConns() }

// Close stops the server and waits for every goroutine.
func (s *Server) Close() error {
	s.cancel()
	s.ln.Close()
	s.ln.closeConns()
	select {
	case err := <-s.done:
		return err
	case <-time.After(20 * time.Second):
		return errors.New("tacquitoserver: serve did not return")
	}
}

// sink receives tacquito's JSON accounting lines.
type sink struct{ s *Server }

func (k sink) Printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	var r struct {
		Flags   uint8
		User    string
		Port    string
		RemAddr string
		Args    []string
	}
	if json.Unmarshal([]byte(line), &r) != nil {
		return
	}
	rec := Record{Flags: r.Flags, User: r.User, Port: r.Port, RemAddr: r.RemAddr, Args: r.Args}
	if k.s.onRecord != nil {
		k.s.onRecord(rec) // tacquito's accounter logs before it replies
	}
	k.s.mu.Lock()
	k.s.records = append(k.s.records, rec)
	k.s.mu.Unlock()
}

type staticSecret struct {
	key []byte
	h   tq.Handler
}

func (p staticSecret) Get(context.Context, net.Addr) ([]byte, tq.Handler, error) {
	return p.key, p.h, nil
}

// trackListener remembers accepted connections so that Close can end them.
type trackListener struct {
	tq.DeadlineListener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *trackListener) Accept() (net.Conn, error) {
	c, err := l.DeadlineListener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *trackListener) closeConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}
