package tacplustest

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// wrongKeySuffix turns the configured key into the different key the WrongKey fault obfuscates with.
const wrongKeySuffix = "-not-the-key"

// acceptBackoff is the pause after a failed Accept that was not caused by Close.
const acceptBackoff = 10 * time.Millisecond

// Server is a running TACACS+ test server. Its methods are safe for concurrent use.
type Server struct {
	cfg        *compiled
	codec      *tacplus.Codec // RoleServer, the configured key
	wrongCodec *tacplus.Codec // the same with a different key, for the WrongKey fault
	ln         net.Listener
	done       chan struct{} // closed by Close

	wg sync.WaitGroup // the accept loop, every connection's reader, every delayed reply

	mu     sync.Mutex // guards conns, closed, nconn
	conns  map[*conn]struct{}
	closed bool
	nconn  uint64

	umu   sync.RWMutex // guards users; entries are replaced, never mutated
	users map[string]*User

	fmu    sync.Mutex // guards faults and counts
	faults Faults
	counts FaultCounts
	armed  atomic.Bool // faults.armed(), read without the lock on every reply

	amu   sync.Mutex // guards acct and authz
	acct  []AcctRecord
	authz []AuthorRecord

	st counters
}

// counters are the live Stats.
type counters struct {
	conns, open, sessions, pktIn, pktOut, bad       atomic.Int64
	scAgreed, scRefused, idleClosed, aborts         atomic.Int64
	authenPass, authenFail, authenError, authorPass atomic.Int64
	authorFail, acctRecords, protocolErrors         atomic.Int64
}

// Stats counts what the server saw and did since it started.
type Stats struct {
	Connections          int64 // accepted
	OpenConnections      int64 // currently open
	Sessions             int64 // started: packets with seq_no 1
	PacketsIn            int64 // framed packets read, valid or not
	PacketsOut           int64 // replies written (faulted ones included, dropped ones not)
	BadPackets           int64 // packets that failed to decode, wrong key included
	ProtocolErrors       int64 // well-formed packets out of place: unknown session, wrong seq_no
	SingleConnectAgreed  int64 // connections whose first packet asked for single-connect and got it
	SingleConnectRefused int64 // ... and were refused
	IdleClosed           int64 // connections closed by the idle timeout
	AuthenPass           int64
	AuthenFail           int64
	AuthenError          int64
	Aborts               int64 // authentication sessions the client aborted (section 5.4.4)
	AuthorPass           int64 // PASS_ADD and PASS_REPL
	AuthorFail           int64
	AcctRecords          int64
	Faults               FaultCounts
}

// AcctRecord is one accounting REQUEST as received (section 7.1).
type AcctRecord struct {
	Conn      uint64 // the server's number for the connection, from 1
	SessionID uint32
	Flags     tacplus.AcctFlag
	Method    tacplus.AuthenMethod
	PrivLvl   uint8
	Type      tacplus.AuthenType
	Service   tacplus.AuthenService
	User      string
	Port      string
	RemAddr   string
	Args      []string
	TaskID    string // the value of the task_id argument (section 8.3), empty when absent
	// Status is the reply the server chose: SUCCESS, or ERROR when ErrorReplies or OnAccounting said so.
	// A reply that a fault then dropped or garbled still shows the status it would have had.
	Status   tacplus.AcctStatus
	Received time.Time
}

// AuthorRecord is one authorization REQUEST as received (section 6.1) and the status the server chose.
type AuthorRecord struct {
	Conn      uint64
	SessionID uint32
	PrivLvl   uint8
	User      string
	Port      string
	RemAddr   string
	Args      []string
	Status    tacplus.AuthorStatus
	ServerMsg string
	Received  time.Time
}

// Start validates cfg, listens on its loopback address and serves until Close. It returns once the listener
// is bound, so Addr is immediately usable: that is the readiness signal.
func Start(cfg Config) (*Server, error) {
	cc, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	codec, err := tacplus.NewCodec(serverCodecOptions(cc.key, cfg.TLS))
	if err != nil {
		return nil, err
	}
	wrong, err := tacplus.NewCodec(tacplus.Options{Role: tacplus.RoleServer, Key: append(append([]byte(nil), cc.key...), wrongKeySuffix...)})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cc.addr)
	if err != nil {
		return nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: "tacplustest: listen", Err: err}
	}
	ln = wrapTLS(ln, cfg.TLS)
	s := &Server{cfg: cc, codec: codec, wrongCodec: wrong, ln: ln, done: make(chan struct{}), conns: make(map[*conn]struct{}),
		users: copyUsers(cfg.Users)}
	s.setFaults(cfg.Faults)
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr returns the address the server listens on, "127.0.0.1:port".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops accepting, closes every connection (pending delayed replies are not sent) and returns once
// every goroutine the server started has ended. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	err := s.ln.Close()
	s.CloseConnections() // the accept loop adds no connection once closed is set
	s.wg.Wait()
	return err
}

// CloseConnections closes every open connection but keeps listening, as a server restart or a cut would
// look to clients. Pending delayed replies are abandoned. It returns how many connections it closed.
func (s *Server) CloseConnections() int {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	return len(conns)
}

// SetFaults replaces the fault set; it applies to the next reply. Counts already injected stay in Stats.
func (s *Server) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.setFaults(f)
	return nil
}

func (s *Server) setFaults(f Faults) {
	f.Restart = append([]tacplus.AuthenType(nil), f.Restart...)
	s.fmu.Lock()
	s.faults = f
	s.armed.Store(f.armed())
	s.fmu.Unlock()
}

// Faults returns the current fault set, with the counts that remain.
func (s *Server) Faults() Faults {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	f := s.faults
	f.Restart = append([]tacplus.AuthenType(nil), f.Restart...)
	return f
}

// SetUser adds or replaces a user while the server runs.
func (s *Server) SetUser(name string, u User) {
	nu := copyUsers(map[string]User{name: u})[name]
	s.umu.Lock()
	s.users[name] = nu
	s.umu.Unlock()
}

// Password returns the user's current login password (CHPASS changes it) and whether the user exists.
func (s *Server) Password(name string) (string, bool) {
	u := s.user(name)
	if u == nil {
		return "", false
	}
	return u.Password, true
}

// Accounting returns a copy of every accounting record received, in the order they were received.
func (s *Server) Accounting() []AcctRecord {
	s.amu.Lock()
	defer s.amu.Unlock()
	out := make([]AcctRecord, len(s.acct))
	for i, r := range s.acct {
		r.Args = append([]string(nil), r.Args...)
		out[i] = r
	}
	return out
}

// Authorizations returns a copy of every authorization request received and the status answered, in
// the order they were received.
func (s *Server) Authorizations() []AuthorRecord {
	s.amu.Lock()
	defer s.amu.Unlock()
	out := make([]AuthorRecord, len(s.authz))
	for i, r := range s.authz {
		r.Args = append([]string(nil), r.Args...)
		out[i] = r
	}
	return out
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Connections: s.st.conns.Load(), OpenConnections: s.st.open.Load(), Sessions: s.st.sessions.Load(),
		PacketsIn: s.st.pktIn.Load(), PacketsOut: s.st.pktOut.Load(), BadPackets: s.st.bad.Load(),
		ProtocolErrors: s.st.protocolErrors.Load(), SingleConnectAgreed: s.st.scAgreed.Load(),
		SingleConnectRefused: s.st.scRefused.Load(), IdleClosed: s.st.idleClosed.Load(),
		AuthenPass: s.st.authenPass.Load(), AuthenFail: s.st.authenFail.Load(),
		AuthenError: s.st.authenError.Load(), Aborts: s.st.aborts.Load(), AuthorPass: s.st.authorPass.Load(),
		AuthorFail: s.st.authorFail.Load(), AcctRecords: s.st.acctRecords.Load(),
	}
	s.fmu.Lock()
	st.Faults = s.counts
	s.fmu.Unlock()
	return st
}

// user returns the current entry for name, or nil.
func (s *Server) user(name string) *User {
	s.umu.RLock()
	u := s.users[name]
	s.umu.RUnlock()
	return u
}

// setPassword records a CHPASS (section 5.4.2.7).
func (s *Server) setPassword(name, password string) {
	s.umu.Lock()
	if u := s.users[name]; u != nil {
		nu := *u
		nu.Password = password
		s.users[name] = &nu
	}
	s.umu.Unlock()
}

// plan chooses the faults for the next reply of a session of user.
func (s *Server) plan(user string) plan {
	if !s.armed.Load() {
		return plan{}
	}
	s.fmu.Lock()
	p := s.faults.choose(user, &s.counts)
	s.armed.Store(s.faults.armed())
	s.fmu.Unlock()
	return p
}

// promptForever reports whether an authentication packet of user is answered GETDATA (Faults.PromptForever).
func (s *Server) promptForever(user string) bool {
	if !s.armed.Load() {
		return false
	}
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return s.faults.promptForever(user, &s.counts)
}

// failDelay is the extra delay of a FAIL reply to user (Faults.FailDelay).
func (s *Server) failDelay(user string) time.Duration {
	if !s.armed.Load() {
		return 0
	}
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return s.faults.failDelay(user, &s.counts)
}

// restart reports whether a START of type t from user must be answered RESTART.
func (s *Server) restart(user string, t tacplus.AuthenType) bool {
	if !s.armed.Load() {
		return false
	}
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return s.faults.restart(user, t, &s.counts)
}

func (s *Server) record(r AcctRecord) {
	s.amu.Lock()
	s.acct = append(s.acct, r)
	s.amu.Unlock()
	s.st.acctRecords.Add(1)
}

func (s *Server) recordAuthor(r AuthorRecord) {
	s.amu.Lock()
	s.authz = append(s.authz, r)
	s.amu.Unlock()
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.logf != nil {
		s.cfg.logf(format, args...)
	}
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.logf("tacplustest: accept: %v", err)
			select { // a resource shortage such as EMFILE passes; do not spin on it
			case <-time.After(acceptBackoff):
				continue
			case <-s.done:
				return
			}
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.nconn++
		c := newConn(s, nc, s.nconn)
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.st.conns.Add(1)
		s.st.open.Add(1)
		go c.serve()
	}
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.st.open.Add(-1)
}
