package daemon

import (
	"context"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/nsscache"
	"github.com/tacagent/tacagent/tacplus"
)

// nssLookup is the NSS cache's LookupFunc: the shell start of RFC 8907 section 8.2 (service=shell, empty
// cmd) for user, on the authorization group of the runtime current now. It carries no port or address:
// it is the agent asking, not a login.
func (d *Daemon) nssLookup(ctx context.Context, user string) ([]string, error) {
	return onCurrent(backend{d}, func(rt *runtime) ([]string, error) {
		areq := agent.AuthorRequest{Method: tacplus.MethodTACACSPlus, PrivLvl: 1, Type: tacplus.AuthenTypeASCII,
			Service: tacplus.ServiceLogin, User: user, Args: []string{"service=shell", "cmd="}}
		r, err := rt.agent.Authorize(ctx, areq, agent.InGroup(rt.settings.AuthorGroup))
		d.log.Debug().Str("user", user).AnErr("error", err).Msg("nss lookup")
		if err != nil {
			return nil, err
		}
		return r.Effective.Strings(), nil
	})
}

// setNSS starts, updates or stops the NSS cache for s (New and Reload; d.mu held or not yet shared).
func (d *Daemon) setNSS(s Settings) {
	switch {
	case s.NSS == nil && d.nss != nil:
		old := d.nss
		d.nss = nil
		old.Close()
	case s.NSS != nil && d.nss == nil:
		cfg := *s.NSS
		cfg.Metrics = d.m.NSS
		d.nss = nsscache.New(cfg, d.nssLookup)
	case s.NSS != nil:
		d.nss.Update(*s.NSS)
	}
}

func passwdResult(pw nsscache.Passwd, res nsscache.Result) localapi.PasswdResult {
	switch res {
	case nsscache.Found:
		return localapi.PasswdResult{Result: localapi.ResultFound, Passwd: &localapi.Passwd{Name: pw.Name, UID: pw.UID,
			GID: pw.GID, Gecos: pw.Gecos, Dir: pw.Dir, Shell: pw.Shell}}
	case nsscache.NotFound:
		return localapi.PasswdResult{Result: localapi.ResultNotFound}
	}
	return localapi.PasswdResult{Result: localapi.ResultUnavailable}
}

// PasswdByName implements localapi.PasswdBackend.
func (b backend) PasswdByName(ctx context.Context, caller localapi.Caller, name string) (localapi.PasswdResult, error) {
	c := b.d.nssCache()
	if c == nil {
		return localapi.PasswdResult{Result: localapi.ResultNotFound}, nil
	}
	return passwdResult(c.ByName(ctx, caller.UID, name)), nil
}

// PasswdByUID implements localapi.PasswdBackend.
func (b backend) PasswdByUID(_ context.Context, _ localapi.Caller, uid uint32) (localapi.PasswdResult, error) {
	c := b.d.nssCache()
	if c == nil {
		return localapi.PasswdResult{Result: localapi.ResultNotFound}, nil
	}
	return passwdResult(c.ByUID(uid)), nil
}

func (d *Daemon) nssCache() *nsscache.Cache {
	d.nssMu.Lock()
	defer d.nssMu.Unlock()
	return d.nss
}
