package config

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tacagent/tacagent/nsscache"
)

// Defaults of the nss section (the nsscache package's).
const (
	DefaultNSSPositiveTTL   = nsscache.DefaultPositiveTTL
	DefaultNSSNegativeTTL   = nsscache.DefaultNegativeTTL
	DefaultNSSLookupTimeout = nsscache.DefaultLookupTimeout
	DefaultNSSMaxEntries    = nsscache.DefaultMaxEntries
	DefaultNSSMaxLookups    = nsscache.DefaultMaxLookups
	DefaultNSSCallerLookups = nsscache.DefaultCallerLookups
	DefaultNSSPrivLvl       = nsscache.DefaultPrivLvl

	maxNSSEntries = 1_000_000
	maxNSSLookups = 1024
)

// NSS configures the answers to the NSS module (libnss_tacagent.so.2, docs/nss.md): TACACS+ users mapped
// to local template accounts by the privilege level an authorization grants them. With no accounts the
// agent answers every lookup "not found".
type NSS struct {
	// Accounts are the templates, in order: the first whose priv_lvl covers a user's level wins.
	Accounts []NSSAccount `yaml:"accounts"`
	// PositiveTTL: how long a user's mapping is answered from the cache; RefreshAfter: a lookup of an
	// entry this old refreshes it in the background (default half of PositiveTTL).
	PositiveTTL  time.Duration `yaml:"positive_ttl"`
	RefreshAfter time.Duration `yaml:"refresh_after"`
	// NegativeTTL: how long "no such user" is answered from the cache.
	NegativeTTL time.Duration `yaml:"negative_ttl"`
	// LookupTimeout bounds one authorization of a lookup (in the background: callers wait only for their
	// own deadline).
	LookupTimeout time.Duration `yaml:"lookup_timeout"`
	MaxEntries    int           `yaml:"max_entries"`
	// MaxLookups bounds the lookups in flight; CallerLookups the lookups one uid other than root may start
	// per second.
	MaxLookups    int `yaml:"max_lookups"`
	CallerLookups int `yaml:"caller_lookups"`
	// DefaultPrivLvl is the level of a permit that names no priv-lvl (default 1); -1 makes such a user
	// "not found".
	DefaultPrivLvl int `yaml:"default_priv_lvl"`
}

// NSSAccount is one template account.
type NSSAccount struct {
	// Name is the account's own name: getpwuid(uid) answers with it. Give it a line in /etc/passwd too.
	Name string `yaml:"name"`
	// PrivLvl is a level or a range of levels, "15" or "1-14".
	PrivLvl string `yaml:"priv_lvl"`
	UID     uint32 `yaml:"uid"`
	GID     uint32 `yaml:"gid"`
	// Gecos and Home may hold %u, the user's name.
	Gecos string `yaml:"gecos"`
	Home  string `yaml:"home"`
	Shell string `yaml:"shell"`
}

// passwdText is a field passwd(5) can carry: no ':' or newline, no control character.
var passwdText = regexp.MustCompile(`^[^:\x00-\x1f\x7f]{0,255}$`)

func (c *Config) checkNSS(p *problems) {
	n := &c.NSS
	positive(p, "nss.positive_ttl", &n.PositiveTTL, DefaultNSSPositiveTTL)
	positive(p, "nss.negative_ttl", &n.NegativeTTL, DefaultNSSNegativeTTL)
	positive(p, "nss.lookup_timeout", &n.LookupTimeout, DefaultNSSLookupTimeout)
	positive(p, "nss.refresh_after", &n.RefreshAfter, n.PositiveTTL/2)
	if n.RefreshAfter > n.PositiveTTL {
		p.add("nss.refresh_after", "%s is longer than positive_ttl (%s): the entry would expire first", n.RefreshAfter, n.PositiveTTL)
	}
	count(p, "nss.max_entries", &n.MaxEntries, DefaultNSSMaxEntries, maxNSSEntries)
	count(p, "nss.max_lookups", &n.MaxLookups, DefaultNSSMaxLookups, maxNSSLookups)
	count(p, "nss.caller_lookups", &n.CallerLookups, DefaultNSSCallerLookups, maxNSSLookups)
	switch {
	case n.DefaultPrivLvl == 0:
		n.DefaultPrivLvl = DefaultNSSPrivLvl
	case n.DefaultPrivLvl < -1 || n.DefaultPrivLvl > 15:
		p.add("nss.default_priv_lvl", "%d is not a privilege level (0-15; -1: a permit without priv-lvl is not found)", n.DefaultPrivLvl)
	}
	names := map[string]int{}
	for i := range n.Accounts {
		a := &n.Accounts[i]
		base := index("nss.accounts", i)
		switch {
		case !nsscache.ValidName(a.Name):
			p.add(base+".name", "%q is not an account name (letters, digits, _ . @ -; not all digits)", a.Name)
		default:
			if j, dup := names[a.Name]; dup {
				p.add(base+".name", "%q is already the name of nss.accounts[%d]", a.Name, j)
			}
			names[a.Name] = i
		}
		if _, _, ok := parsePrivRange(a.PrivLvl); !ok {
			p.add(base+".priv_lvl", "%q is not a level or a range of levels (\"15\", \"1-14\"; 0-15)", a.PrivLvl)
		}
		// uid or gid 0 would make every user of those levels root: never from a template.
		if a.UID == 0 {
			p.add(base+".uid", "0 (root) is refused: a template account must not be root")
		}
		if a.GID == 0 {
			p.add(base+".gid", "0 (root's group) is refused")
		}
		if !passwdText.MatchString(a.Gecos) {
			p.add(base+".gecos", "must not hold ':' or control characters")
		}
		for _, f := range []struct{ path, v string }{{".home", a.Home}, {".shell", a.Shell}} {
			if !filepath.IsAbs(f.v) || !passwdText.MatchString(f.v) {
				p.add(base+f.path, "%q is not an absolute path fit for passwd(5)", f.v)
			}
		}
		if strings.Contains(a.Shell, "%u") {
			p.add(base+".shell", "%%u is only replaced in gecos and home")
		}
	}
}

// parsePrivRange reads "N" or "N-M" (0 <= N <= M <= 15).
func parsePrivRange(s string) (lo, hi int, ok bool) {
	a, b, isRange := strings.Cut(strings.TrimSpace(s), "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := lo, error(nil)
	if isRange {
		hi, err2 = strconv.Atoi(strings.TrimSpace(b))
	}
	if err1 != nil || err2 != nil || lo < 0 || hi > 15 || lo > hi {
		return 0, 0, false
	}
	return lo, hi, true
}

// NSSCache returns the NSS cache's configuration of a validated Config, or nil when no account is
// configured (every lookup "not found").
func (c *Config) NSSCache() *nsscache.Config {
	n := c.NSS
	if len(n.Accounts) == 0 {
		return nil
	}
	out := &nsscache.Config{PositiveTTL: n.PositiveTTL, NegativeTTL: n.NegativeTTL, RefreshAfter: n.RefreshAfter,
		LookupTimeout: n.LookupTimeout, MaxEntries: n.MaxEntries, MaxLookups: n.MaxLookups,
		CallerLookups: n.CallerLookups, DefaultPriv: n.DefaultPrivLvl}
	for _, a := range n.Accounts {
		lo, hi, _ := parsePrivRange(a.PrivLvl)
		out.Templates = append(out.Templates, nsscache.Template{Name: a.Name, MinPriv: lo, MaxPriv: hi, UID: a.UID,
			GID: a.GID, Gecos: a.Gecos, Home: a.Home, Shell: a.Shell})
	}
	return out
}
