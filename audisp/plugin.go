package audisp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/tacplus"
)

// Defaults of Config.
const (
	// DefaultQueueSize bounds the facts waiting for the agent. A fact is a few hundred bytes; 16384 of
	// them ride out a short agent restart on a busy host. Past it, facts are dropped and counted: the
	// reader never waits, because a plugin that stops reading stalls auditd and then the whole host.
	DefaultQueueSize = 16384
	// DefaultQueueBytes bounds the bytes the queued facts hold (an execve with 255 long arguments is
	// ~256 KiB): the queue is full at QueueSize facts or at this many bytes, whichever comes first.
	DefaultQueueBytes = 64 << 20
	// DefaultFlushEvery is how often events without EOE are checked against the EOE timeout.
	DefaultFlushEvery = 250 * time.Millisecond
	// DefaultReapEvery is how often commands are checked for a process that ended without an exit record.
	DefaultReapEvery = 30 * time.Second
	// DefaultSendTimeout bounds one request to the agent.
	DefaultSendTimeout = 30 * time.Second
	// DefaultRetryMin and DefaultRetryMax bound the wait between attempts while the agent is unreachable.
	DefaultRetryMin = 100 * time.Millisecond
	DefaultRetryMax = 5 * time.Second
	// DefaultSessionTTL is how long a "this is a TACACS+ session" answer is kept.
	DefaultSessionTTL = time.Minute
	// DefaultNegativeTTL is how long a "not a TACACS+ session" answer is kept. A session can run commands
	// before its PAM START reached the agent (pam_motd's scripts when pam_tacagent comes later in the
	// session stack); libpam's USER_START record (logged after the whole stack) and LOGIN clear the
	// answer, and this bounds it when neither comes. Not shorter: every answer is a request to the agent.
	DefaultNegativeTTL = 10 * time.Second
	// DefaultDrainTimeout bounds the sending of queued facts after stdin ends (auditd stops the plugin).
	DefaultDrainTimeout = 5 * time.Second
	// maxSessionCache bounds the (auid, ses) answers kept; past it the cache starts over.
	maxSessionCache = 8192
	// readBuffer holds one line; longer lines are counted as too long and skipped.
	readBuffer = 128 << 10
)

// Config configures a Plugin. Only Client is required.
type Config struct {
	Client       *localapi.Client
	Log          zerolog.Logger
	QueueSize    int           // default DefaultQueueSize
	QueueBytes   int64         // default DefaultQueueBytes
	EOETimeout   time.Duration // default DefaultEOETimeout
	FlushEvery   time.Duration // default DefaultFlushEvery
	ReapEvery    time.Duration // default DefaultReapEvery
	SendTimeout  time.Duration // default DefaultSendTimeout
	RetryMin     time.Duration // default DefaultRetryMin
	RetryMax     time.Duration // default DefaultRetryMax
	SessionTTL   time.Duration // default DefaultSessionTTL
	NegativeTTL  time.Duration // default DefaultNegativeTTL
	DrainTimeout time.Duration // default DefaultDrainTimeout
	Masker       *Masker       // nil: nothing is masked
	// BootID prefixes task ids (default: the first 8 hex digits of /proc/sys/kernel/random/boot_id).
	BootID string
	// Alive reports whether a process still runs (default: /proc/PID exists, for the local node).
	Alive func(node string, pid int) bool
	// Now is the clock of the EOE timeout (default time.Now).
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	set(&c.EOETimeout, DefaultEOETimeout)
	set(&c.FlushEvery, DefaultFlushEvery)
	set(&c.ReapEvery, DefaultReapEvery)
	set(&c.SendTimeout, DefaultSendTimeout)
	set(&c.RetryMin, DefaultRetryMin)
	set(&c.RetryMax, DefaultRetryMax)
	set(&c.SessionTTL, DefaultSessionTTL)
	set(&c.NegativeTTL, DefaultNegativeTTL)
	set(&c.DrainTimeout, DefaultDrainTimeout)
	if c.BootID == "" {
		c.BootID = ReadBootID()
	}
	if c.Alive == nil {
		c.Alive = procAlive
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// ReadBootID returns the first 8 hex digits of the kernel's boot id, or "boot" when it cannot be read.
func ReadBootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil || len(b) < 8 {
		return "boot"
	}
	return string(b[:8])
}

func procAlive(node string, pid int) bool {
	if node != "" {
		return true // another host's process: only its exit record can end it
	}
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil || !errors.Is(err, os.ErrNotExist)
}

// Stats are the plugin's counters. Every field is safe to read at any time.
type Stats struct {
	Lines      atomic.Uint64 // lines read
	Records    atomic.Uint64 // records parsed
	Events     atomic.Uint64 // events assembled
	Facts      atomic.Uint64 // facts queued for the sender
	Dropped    atomic.Uint64 // facts dropped because the queue was full
	Sent       atomic.Uint64 // records the agent acknowledged
	Failed     atomic.Uint64 // records the agent answered with an error (no server took them)
	Unsent     atomic.Uint64 // facts or records given up at exit while the agent was unreachable
	Lookups    atomic.Uint64 // session questions asked to the agent
	Ignored    atomic.Uint64 // execs of sessions that are not TACACS+ sessions
	AgentDowns atomic.Uint64 // times the agent was found unreachable

	mu        sync.Mutex
	malformed map[string]uint64 // by reason (ParseError, Interpret)
}

func (s *Stats) malform(reason string) {
	s.mu.Lock()
	if s.malformed == nil {
		s.malformed = make(map[string]uint64)
	}
	s.malformed[reason]++
	s.mu.Unlock()
}

// Malformed returns the malformed lines and events by reason.
func (s *Stats) Malformed() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.malformed))
	for k, v := range s.malformed {
		out[k] = v
	}
	return out
}

// MalformedTotal returns the sum of Malformed.
func (s *Stats) MalformedTotal() uint64 {
	var n uint64
	for _, v := range s.Malformed() {
		n += v
	}
	return n
}

func (s *Stats) log(ev *zerolog.Event) *zerolog.Event {
	m := s.Malformed()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	d := zerolog.Dict()
	for _, k := range keys {
		d = d.Uint64(k, m[k])
	}
	return ev.Uint64("lines", s.Lines.Load()).Uint64("records", s.Records.Load()).Uint64("events", s.Events.Load()).
		Uint64("facts", s.Facts.Load()).Uint64("dropped", s.Dropped.Load()).Uint64("sent", s.Sent.Load()).
		Uint64("failed", s.Failed.Load()).Uint64("unsent", s.Unsent.Load()).Uint64("lookups", s.Lookups.Load()).
		Uint64("ignored", s.Ignored.Load()).Uint64("agent_downs", s.AgentDowns.Load()).Dict("malformed", d)
}

// Plugin is one run of the audit plugin.
type Plugin struct {
	cfg   Config
	log   zerolog.Logger
	Stats Stats

	mu     sync.Mutex // the assembler, and closing the queue
	asm    Assembler
	closed bool
	queue  chan Fact
	bytes  atomic.Int64 // what the queued facts hold (Fact.Size)

	// Owned by the sender goroutine.
	tracker  *Tracker
	sessions map[[2]uint32]sessionEntry
	reported uint64 // drops already reported to the agent
	down     bool   // the agent was unreachable at the last attempt

	lookupWarned bool // a refused session question was logged at warn
}

type sessionEntry struct {
	s     *localapi.AuditSession
	until time.Time
}

// New returns a Plugin.
func New(cfg Config) (*Plugin, error) {
	if cfg.Client == nil {
		return nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: "audisp: no local API client"}
	}
	cfg = cfg.withDefaults()
	p := &Plugin{cfg: cfg, log: cfg.Log, queue: make(chan Fact, cfg.QueueSize),
		tracker:  NewTracker(TrackerConfig{BootID: cfg.BootID, Masker: cfg.Masker}),
		sessions: make(map[[2]uint32]sessionEntry)}
	p.asm.Timeout = cfg.EOETimeout
	return p, nil
}

// Run reads records from in until it ends (auditd closes the pipe) or ctx ends (SIGTERM), then sends what
// is queued (at most DrainTimeout) and returns. The reader never waits for the agent.
func (p *Plugin) Run(ctx context.Context, in io.Reader) error {
	readDone := make(chan error, 1)
	go func() { readDone <- p.read(in) }()
	sendCtx, stopSend := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSend()
	sendDone := make(chan struct{})
	go func() { defer close(sendDone); p.send(sendCtx) }()
	flush := time.NewTicker(p.cfg.FlushEvery)
	defer flush.Stop()
	var rerr error
loop:
	for {
		select {
		case rerr = <-readDone:
			break loop
		case <-ctx.Done():
			break loop
		case <-flush.C:
			p.mu.Lock()
			p.asm.Flush(p.cfg.Now(), p.emit)
			p.mu.Unlock()
		}
	}
	p.mu.Lock()
	p.asm.FlushAll(p.emit)
	p.closed = true
	close(p.queue)
	p.mu.Unlock()
	// Drain: the sender goes on until the queue is empty or DrainTimeout passes.
	t := time.NewTimer(p.cfg.DrainTimeout)
	defer t.Stop()
	select {
	case <-sendDone:
	case <-t.C:
		stopSend()
		<-sendDone
	}
	p.Stats.log(p.log.Info()).Int("open_commands", p.tracker.Open()).Msg("audit plugin stopped")
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		return rerr
	}
	return nil
}

// read reads lines until EOF. It is the only goroutine that reads in; it never blocks on anything else
// than in and the assembler's mutex.
func (p *Plugin) read(in io.Reader) error {
	br := bufio.NewReaderSize(in, readBuffer)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			p.Stats.Lines.Add(1)
			p.Stats.malform(ReasonTooLong)
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				return err
			}
			continue
		}
		if len(line) > 0 {
			p.Line(string(line))
		}
		if err != nil {
			return err
		}
	}
}

// Line handles one line of input (exported for tests and benchmarks that bypass the pipe).
func (p *Plugin) Line(line string) {
	p.Stats.Lines.Add(1)
	r, err := ParseLine(line)
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			if pe.Reason == ReasonEmpty {
				return
			}
			p.Stats.malform(pe.Reason)
		}
		return
	}
	p.Stats.Records.Add(1)
	p.mu.Lock()
	if !p.closed {
		p.asm.Add(r, p.cfg.Now(), p.emit)
	}
	p.mu.Unlock()
}

// emit runs under p.mu: it interprets an ended event and queues what the sender needs, or drops it.
func (p *Plugin) emit(ev *Event) {
	p.Stats.Events.Add(1)
	f, reason := Interpret(ev)
	if reason != "" {
		p.Stats.malform(reason)
	}
	if f.Kind == FactNone || p.closed {
		return
	}
	if len(p.queue) == cap(p.queue) {
		p.Stats.Dropped.Add(1) // full: drop before copying anything
		return
	}
	f.Detach()
	size := int64(f.Size())
	if p.bytes.Load()+size > p.cfg.QueueBytes {
		p.Stats.Dropped.Add(1)
		return
	}
	select {
	case p.queue <- f:
		p.bytes.Add(size)
		p.Stats.Facts.Add(1)
	default:
		p.Stats.Dropped.Add(1)
	}
}

// send is the sender goroutine: session questions and records, in the order of the facts.
func (p *Plugin) send(ctx context.Context) {
	reap := time.NewTicker(p.cfg.ReapEvery)
	defer reap.Stop()
	for {
		select {
		case f, ok := <-p.queue:
			if !ok {
				return
			}
			p.bytes.Add(-int64(f.Size()))
			if ctx.Err() != nil {
				p.Stats.Unsent.Add(1)
				continue
			}
			p.handle(ctx, &f)
		case <-reap.C:
			for _, r := range p.tracker.Reap(p.cfg.Alive, p.cfg.Now()) {
				p.account(ctx, r)
			}
		case <-ctx.Done():
			// Count what is left, without waiting for the reader to close the queue.
			for {
				select {
				case _, ok := <-p.queue:
					if !ok {
						return
					}
					p.Stats.Unsent.Add(1)
				default:
					return
				}
			}
		}
	}
}

func (p *Plugin) handle(ctx context.Context, f *Fact) {
	key := [2]uint32{f.AUID, f.SES}
	switch f.Kind {
	case FactSessionStart:
		if e, ok := p.sessions[key]; ok && e.s == nil {
			delete(p.sessions, key) // a new login under this id: ask again
		}
	case FactSessionEnd:
		delete(p.sessions, key)
	case FactExec:
		s, ok := p.session(ctx, f.AUID, f.SES)
		if !ok {
			p.Stats.Unsent.Add(1)
			return
		}
		if s == nil {
			p.Stats.Ignored.Add(1)
		}
		for _, r := range p.tracker.Exec(f, s) {
			p.account(ctx, r)
		}
	case FactExit, FactAbend:
		if r, ok := p.tracker.Exit(f); ok {
			p.account(ctx, r)
		}
	}
}

// session returns the TACACS+ session of (auid, ses), or nil when it is none. ok is false only when ctx
// ended while the agent was unreachable.
func (p *Plugin) session(ctx context.Context, auid, ses uint32) (*localapi.AuditSession, bool) {
	key := [2]uint32{auid, ses}
	now := time.Now()
	if e, ok := p.sessions[key]; ok && now.Before(e.until) {
		return e.s, true
	}
	var list []localapi.AuditSession
	err := p.retry(ctx, func(ctx context.Context) error {
		var err error
		p.Stats.Lookups.Add(1)
		list, err = p.cfg.Client.AuditSessions(ctx, auid, ses)
		return err
	})
	if err != nil && ctx.Err() != nil {
		return nil, false
	}
	if err != nil {
		// The agent answered but refused (an agent without /v1/sessions, or a caller that is not root):
		// no session is known. Said once at warn (it repeats every NegativeTTL per session), then at debug.
		ev := p.log.Debug()
		if !p.lookupWarned {
			p.lookupWarned, ev = true, p.log.Warn()
		}
		ev.Err(err).Uint32("auid", auid).Uint32("ses", ses).Msg("cannot ask the agent about the session; its commands are not accounted")
	}
	var s *localapi.AuditSession
	for i := range list {
		if list[i].AUID == auid && list[i].SES == ses {
			s = &list[i]
			break
		}
	}
	if len(p.sessions) >= maxSessionCache {
		clear(p.sessions)
	}
	ttl := p.cfg.SessionTTL
	if s == nil {
		ttl = p.cfg.NegativeTTL
	}
	p.sessions[key] = sessionEntry{s: s, until: now.Add(ttl)}
	return s, true
}

// account sends one record, waiting while the agent is unreachable. The first record sent after facts
// were dropped carries the count (audisp_dropped, an optional pair) and the drop is logged.
func (p *Plugin) account(ctx context.Context, r localapi.AcctRequest) {
	var dropped uint64
	err := p.retry(ctx, func(ctx context.Context) error {
		req := r
		dropped = p.Stats.Dropped.Load() - p.reported
		if dropped > 0 {
			req.AV = append(append([]string(nil), r.AV...), tacplus.OptionalArg("audisp_dropped", strconv.FormatUint(dropped, 10)))
		}
		_, err := p.cfg.Client.Account(ctx, req)
		return err
	})
	switch {
	case err == nil:
		p.Stats.Sent.Add(1)
	case ctx.Err() != nil:
		p.Stats.Unsent.Add(1)
		return
	default:
		p.Stats.Failed.Add(1)
		// No arguments in the log: they may hold secrets the patterns missed.
		p.log.Warn().Err(err).Str("user", r.User).Str("flags", r.Flags).Str("task_id", r.TaskID).Msg("accounting record not taken")
	}
	if dropped > 0 {
		p.reported += dropped
		p.log.Warn().Uint64("dropped", dropped).Uint64("dropped_total", p.Stats.Dropped.Load()).
			Msg("audit events were dropped while the agent was unreachable or slow (queue full); the count went to the agent as audisp_dropped")
	}
}

// retry runs f until it succeeds, fails with an answer from the agent, or ctx ends. While the agent is
// unreachable it waits RetryMin, doubling to RetryMax, between attempts.
func (p *Plugin) retry(ctx context.Context, f func(context.Context) error) error {
	wait := p.cfg.RetryMin
	for {
		rctx, cancel := context.WithTimeout(ctx, p.cfg.SendTimeout)
		err := f(rctx)
		cancel()
		if err == nil || !agentDown(err) || ctx.Err() != nil {
			if p.down && (err == nil || !agentDown(err)) {
				p.down = false
				p.Stats.log(p.log.Info()).Msg("the agent is reachable again")
			}
			return err
		}
		if !p.down {
			p.down = true
			p.Stats.AgentDowns.Add(1)
			p.log.Warn().Err(err).Msg("the agent is unreachable; queueing audit events (dropped and counted when the queue is full)")
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(wait*2, p.cfg.RetryMax)
	}
}

// agentDown reports whether err means the agent did not take the request (not running, restarting,
// shutting down, or the connection broke), so that sending again is right. An answer of the agent (a
// record no server took) is not: the agent's spool owns it from there.
func agentDown(err error) bool {
	var le *localapi.Error
	if errors.As(err, &le) {
		return errors.Is(err, localapi.ErrNoAgent) || errors.Is(err, localapi.ErrUnavailable)
	}
	var te *tacplus.Error
	if errors.As(err, &te) {
		return te.Class == tacplus.ErrConnectionLost || te.Class == tacplus.ErrTimeout
	}
	return true
}
