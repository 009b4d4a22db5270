package nsscache

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/tacplus"
)

// Defaults of Config.
const (
	// DefaultPositiveTTL is how long a user's mapping is answered from the cache.
	DefaultPositiveTTL = 10 * time.Minute
	// DefaultNegativeTTL is how long "no such user" is answered from the cache.
	DefaultNegativeTTL = time.Minute
	// DefaultLookupTimeout bounds one authorization of a lookup (it runs in the background: no caller
	// waits for it longer than its own deadline).
	DefaultLookupTimeout = 5 * time.Second
	// DefaultMaxEntries bounds the cache.
	DefaultMaxEntries = 4096
	// DefaultMaxLookups bounds the lookups in flight at once.
	DefaultMaxLookups = 16
	// DefaultCallerLookups is how many lookups one uid other than root may start per second.
	DefaultCallerLookups = 10
	// DefaultPrivLvl is the level of a permit that names none (TAC_PLUS_PRIV_LVL_USER, RFC 8907 section 6.1).
	DefaultPrivLvl = 1
	// MaxNameLen bounds a user name.
	MaxNameLen = 64
	// maxCallers bounds the uids tracked in one second; more are refused (fail closed).
	maxCallers = 1024
	// callerWindow is the period of CallerLookups.
	callerWindow = time.Second
)

// Template is a local account that the users of a range of privilege levels are mapped to.
type Template struct {
	// Name is the account's own name: getpwuid(UID) answers with it (many users share the uid), and so
	// does getpwnam(Name).
	Name string
	// MinPriv and MaxPriv are the privilege levels (0-15) it covers, both included.
	MinPriv, MaxPriv int
	UID, GID         uint32
	// Gecos and Home may hold %u, replaced by the user's name (Home "/home/%u": a home per user).
	Gecos, Home, Shell string
}

// Config configures a Cache. Zero values take the defaults.
type Config struct {
	// Templates in order: the first that covers a level wins. Empty: every name is "not found".
	Templates     []Template
	PositiveTTL   time.Duration
	NegativeTTL   time.Duration
	RefreshAfter  time.Duration // a hit on a positive entry this old starts a refresh; default PositiveTTL/2
	LookupTimeout time.Duration
	MaxEntries    int
	MaxLookups    int
	CallerLookups int
	DefaultPriv   int // default DefaultPrivLvl; -1 means a permit without priv-lvl is "not found"
	Metrics       *metrics.NSS
	Now           func() time.Time
}

func (c Config) withDefaults() Config {
	if c.PositiveTTL <= 0 {
		c.PositiveTTL = DefaultPositiveTTL
	}
	if c.NegativeTTL <= 0 {
		c.NegativeTTL = DefaultNegativeTTL
	}
	if c.RefreshAfter <= 0 || c.RefreshAfter > c.PositiveTTL {
		c.RefreshAfter = c.PositiveTTL / 2
	}
	if c.LookupTimeout <= 0 {
		c.LookupTimeout = DefaultLookupTimeout
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.MaxLookups <= 0 {
		c.MaxLookups = DefaultMaxLookups
	}
	if c.CallerLookups <= 0 {
		c.CallerLookups = DefaultCallerLookups
	}
	if c.DefaultPriv == 0 {
		c.DefaultPriv = DefaultPrivLvl
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Passwd is one passwd entry (passwd(5)); there is no password field: the module answers "*" (no local password).
type Passwd struct {
	Name       string
	UID, GID   uint32
	Gecos, Dir string
	Shell      string
}

// Result says how a lookup ended.
type Result uint8

const (
	// NotFound: no such user (the servers refused it, or no template covers its level): NSS_STATUS_NOTFOUND.
	NotFound Result = iota
	// Found: the entry is valid.
	Found
	// Unavailable: nothing known yet and no answer in time (servers down or slow, too many lookups):
	// NSS_STATUS_UNAVAIL.
	Unavailable
)

func (r Result) String() string {
	switch r {
	case NotFound:
		return "notfound"
	case Found:
		return "found"
	case Unavailable:
		return "unavailable"
	}
	return "result(" + strconv.Itoa(int(r)) + ")"
}

// LookupFunc asks the servers about user with an authorization (service=shell, empty cmd) and returns the
// attributes of a permit (returned and effective; priv-lvl is read from them), or an error: one matching
// tacplus.ErrDenied is a refusal, any other means nobody could say.
type LookupFunc func(ctx context.Context, user string) (args []string, err error)

// entry is a cached answer: found with the privilege level granted, or not found.
type entry struct {
	found     bool
	priv      int
	expires   time.Time
	refreshAt time.Time
}

// call is a lookup in flight; done closes when its entry (or its failure) is settled.
type call struct {
	done chan struct{}
	res  Result
	priv int
}

// Cache answers passwd lookups. Create it with New, stop it with Close.
type Cache struct {
	lookup LookupFunc

	mu       sync.Mutex
	cfg      Config
	entries  map[string]entry
	inflight map[string]*call
	callers  map[uint32]int
	window   time.Time
	closed   bool

	ctx    context.Context // parent of every lookup; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the lookup goroutines
}

// New makes a Cache that learns names with lookup.
func New(cfg Config, lookup LookupFunc) *Cache {
	c := &Cache{lookup: lookup, cfg: cfg.withDefaults(), entries: map[string]entry{}, inflight: map[string]*call{},
		callers: map[uint32]int{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Update applies a new configuration (a reload). Cached entries keep their levels: a changed template
// applies to them at once; changed TTLs apply to entries made from now on.
func (c *Cache) Update(cfg Config) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cfg.Metrics == nil {
		cfg.Metrics = c.cfg.Metrics
	}
	c.cfg = cfg.withDefaults()
}

// Close stops the lookups in flight and waits for their goroutines; later lookups answer Unavailable.
func (c *Cache) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// ValidName reports whether name can be a mapped user: 1 to MaxNameLen bytes of ASCII letters, digits,
// '_', '.', '@' and '-', not starting with '-' or '.', not all digits (a number reads as a uid to chown,
// find and friends), and never a character passwd(5) or a path would take apart (':', '/', ',', space).
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > MaxNameLen || name[0] == '-' || name[0] == '.' {
		return false
	}
	digits := true
	for i := 0; i < len(name); i++ {
		b := name[i]
		switch {
		case b >= '0' && b <= '9':
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b == '_', b == '.', b == '@', b == '-':
			digits = false
		default:
			return false
		}
	}
	return !digits
}

// ByName answers getpwnam(name) for a caller of uid caller (0: root, not limited per uid). It waits for a
// lookup at most until ctx is done; the lookup goes on in the background.
func (c *Cache) ByName(ctx context.Context, caller uint32, name string) (Passwd, Result) {
	if !ValidName(name) {
		return Passwd{}, NotFound
	}
	c.mu.Lock()
	cfg := c.cfg
	for _, t := range cfg.Templates {
		if t.Name == name {
			c.mu.Unlock()
			return t.passwd(t.Name), Found
		}
	}
	now := cfg.Now()
	if e, ok := c.entries[name]; ok && now.Before(e.expires) {
		if !e.found {
			c.mu.Unlock()
			c.count("negative_hit")
			return Passwd{}, NotFound
		}
		outcome := "hit"
		if !now.Before(e.refreshAt) {
			outcome = "stale"
			if c.inflight[name] == nil && len(c.inflight) < cfg.MaxLookups && !c.closed {
				c.start(name) // refresh ahead; this caller does not wait for it
			}
		}
		c.mu.Unlock()
		c.count(outcome)
		return c.mapped(cfg, name, e.priv)
	}
	cl := c.inflight[name]
	if cl == nil {
		if c.closed || len(c.inflight) >= cfg.MaxLookups || !c.allow(cfg, caller, now) {
			c.mu.Unlock()
			c.count("busy")
			return Passwd{}, Unavailable
		}
		cl = c.start(name)
	}
	c.mu.Unlock()
	c.count("miss")
	select {
	case <-cl.done:
	case <-ctx.Done():
		return Passwd{}, Unavailable
	}
	if cl.res != Found {
		return Passwd{}, cl.res
	}
	return c.mapped(cfg, name, cl.priv)
}

// ByUID answers getpwuid(uid): the first template with that uid, as itself. The servers are not asked:
// a template's uid is shared by every user mapped to it, so no one user can be named.
func (c *Cache) ByUID(uid uint32) (Passwd, Result) {
	c.mu.Lock()
	ts := c.cfg.Templates
	c.mu.Unlock()
	for _, t := range ts {
		if t.UID == uid {
			return t.passwd(t.Name), Found
		}
	}
	return Passwd{}, NotFound
}

// Len returns the number of cached entries.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// mapped is the entry of user at level priv under cfg's templates.
func (c *Cache) mapped(cfg Config, user string, priv int) (Passwd, Result) {
	if t := template(cfg.Templates, priv); t != nil {
		return t.passwd(user), Found
	}
	return Passwd{}, NotFound
}

func template(ts []Template, priv int) *Template {
	for i := range ts {
		if priv >= ts[i].MinPriv && priv <= ts[i].MaxPriv {
			return &ts[i]
		}
	}
	return nil
}

func (t *Template) passwd(user string) Passwd {
	return Passwd{Name: user, UID: t.UID, GID: t.GID, Gecos: strings.ReplaceAll(t.Gecos, "%u", user),
		Dir: strings.ReplaceAll(t.Home, "%u", user), Shell: t.Shell}
}

// allow charges one lookup to caller's share of this second; root is not limited per uid. c.mu held.
func (c *Cache) allow(cfg Config, caller uint32, now time.Time) bool {
	if caller == 0 {
		return true
	}
	if now.Sub(c.window) >= callerWindow || now.Before(c.window) {
		clear(c.callers)
		c.window = now
	}
	n, known := c.callers[caller]
	if n >= cfg.CallerLookups || (!known && len(c.callers) >= maxCallers) {
		return false
	}
	c.callers[caller] = n + 1
	return true
}

// start runs a lookup of name in the background. c.mu held.
func (c *Cache) start(name string) *call {
	cl := &call{done: make(chan struct{})}
	c.inflight[name] = cl
	if m := c.cfg.Metrics; m != nil {
		m.InFlight.Inc()
	}
	c.wg.Add(1)
	go c.run(name, cl, c.cfg.LookupTimeout)
	return cl
}

func (c *Cache) run(name string, cl *call, timeout time.Duration) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	args, err := c.lookup(ctx, name)
	cancel()

	c.mu.Lock()
	defer c.mu.Unlock()
	cfg := c.cfg
	now := cfg.Now()
	result := "unavailable"
	switch {
	case err == nil:
		priv, ok := privLvl(args, cfg.DefaultPriv)
		if ok && template(cfg.Templates, priv) != nil {
			result = "permit"
			cl.res, cl.priv = Found, priv
			c.put(name, entry{found: true, priv: priv, expires: now.Add(cfg.PositiveTTL), refreshAt: now.Add(cfg.RefreshAfter)})
		} else {
			result = "no_template"
			cl.res = NotFound
			c.put(name, entry{expires: now.Add(cfg.NegativeTTL)})
		}
	case errors.Is(err, tacplus.ErrDenied):
		result = "deny"
		cl.res = NotFound
		c.put(name, entry{expires: now.Add(cfg.NegativeTTL)})
	default:
		// Nobody could say: a positive entry still valid stays until it expires; nothing new is cached.
		cl.res = Unavailable
		if e, ok := c.entries[name]; ok && e.found && now.Before(e.expires) {
			cl.res, cl.priv = Found, e.priv
		}
	}
	delete(c.inflight, name)
	close(cl.done)
	if m := cfg.Metrics; m != nil {
		m.InFlight.Dec()
		m.Lookups.WithLabelValues(result).Inc()
		m.Entries.Set(float64(len(c.entries)))
	}
}

// put stores an entry, making room when the cache is full: expired entries first, then any one. c.mu held.
func (c *Cache) put(name string, e entry) {
	if _, ok := c.entries[name]; !ok && len(c.entries) >= c.cfg.MaxEntries {
		now := c.cfg.Now()
		for k, v := range c.entries {
			if !now.Before(v.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.cfg.MaxEntries {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[name] = e
}

func (c *Cache) count(outcome string) {
	c.mu.Lock()
	m := c.cfg.Metrics
	c.mu.Unlock()
	if m != nil {
		m.Cache.WithLabelValues(outcome).Inc()
	}
}

// privLvl reads priv-lvl from a permit's attributes (the last one wins: the effective set comes after the
// returned one); def when there is none. ok is false for a value that is not a level 0-15.
func privLvl(args []string, def int) (int, bool) {
	priv, found := def, false
	for _, a := range args {
		name, value, _, ok := tacplus.SplitArg(a)
		if !ok || name != "priv-lvl" {
			continue
		}
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 || n > 15 {
			return 0, false
		}
		priv, found = n, true
	}
	if !found && def < 0 {
		return 0, false
	}
	return priv, true
}
