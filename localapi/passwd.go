package localapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Passwd is a passwd(5) entry of the NSS endpoint (no password field: the NSS module answers "*", no local password).
type Passwd struct {
	Name  string `json:"name"`
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	Gecos string `json:"gecos"`
	Dir   string `json:"dir"`
	Shell string `json:"shell"`
}

// PasswdResult is the body of a 200 answer to GET /v1/passwd: Result is ResultFound (with Passwd),
// ResultNotFound or ResultUnavailable.
type PasswdResult struct {
	Result string  `json:"result"`
	Passwd *Passwd `json:"passwd,omitempty"`
}

// Results of GET /v1/passwd besides ResultUnavailable.
const (
	ResultFound    = "found"
	ResultNotFound = "notfound"
)

// MaxPasswdName bounds the name= of GET /v1/passwd; a longer one is answered "notfound".
const MaxPasswdName = 64

// DefaultPasswdWait bounds how long GET /v1/passwd waits for a lookup when the caller sent no deadline
// (TimeoutHeader): an NSS answer never waits on a server for long.
const DefaultPasswdWait = time.Second

// PasswdBackend is implemented by a Backend that answers NSS lookups (docs/nss.md). GET /v1/passwd
// answers "notfound" to everything when the Backend does not implement it.
type PasswdBackend interface {
	// PasswdByName maps a user name; it returns by ctx's end, "unavailable" when it knows nothing yet.
	PasswdByName(ctx context.Context, caller Caller, name string) (PasswdResult, error)
	// PasswdByUID maps a uid back (a template account: docs/nss.md).
	PasswdByUID(ctx context.Context, caller Caller, uid uint32) (PasswdResult, error)
}

const epPasswd = "passwd"

// passwd answers GET /v1/passwd?name=NAME or ?uid=N for the NSS module. Every allowed caller may ask
// (NSS lookups come from every process); the backend limits the lookups each uid may cause.
func (s *Server) passwd(r *http.Request, c Caller) response {
	q := r.URL.Query()
	names, uids := q["name"], q["uid"]
	if len(q) != 1 || len(names)+len(uids) != 1 {
		return fail(badRequest("give exactly one of name= or uid="))
	}
	key, uid := "name", uint64(0)
	if len(uids) == 1 {
		key = "uid"
		var err error
		if uid, err = strconv.ParseUint(uids[0], 10, 32); err != nil {
			return fail(badRequest("uid must be a decimal number below 2^32"))
		}
	}
	ctx := r.Context()
	if _, has := ctx.Deadline(); !has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultPasswdWait)
		defer cancel()
	}
	res := PasswdResult{Result: ResultNotFound}
	var err error
	if pb, has := s.cfg.Backend.(PasswdBackend); has {
		switch {
		case key == "uid":
			res, err = pb.PasswdByUID(ctx, c, uint32(uid))
		case len(names[0]) <= MaxPasswdName:
			res, err = pb.PasswdByName(ctx, c, names[0])
		}
	}
	if err != nil || (res.Result == ResultFound) != (res.Passwd != nil) {
		res = PasswdResult{Result: ResultUnavailable}
	}
	if res.Result != ResultFound && res.Result != ResultNotFound {
		res.Result = ResultUnavailable
	}
	if m := s.cfg.Metrics; m != nil {
		m.NSS.Answers.WithLabelValues(key, res.Result).Inc()
	}
	out := ok(res, res.Result)
	if key == "name" && res.Result == ResultFound {
		out.user = names[0]
	}
	return out
}

// PasswdByName asks the agent for the NSS entry of a user name (what libnss_tacagent asks).
func (c *Client) PasswdByName(ctx context.Context, name string) (PasswdResult, error) {
	var res PasswdResult
	err := c.do(ctx, http.MethodGet, "/passwd?"+url.Values{"name": {name}}.Encode(), nil, &res)
	return res, err
}

// PasswdByUID asks the agent for the NSS entry of a uid.
func (c *Client) PasswdByUID(ctx context.Context, uid uint32) (PasswdResult, error) {
	var res PasswdResult
	err := c.do(ctx, http.MethodGet, "/passwd?uid="+strconv.FormatUint(uint64(uid), 10), nil, &res)
	return res, err
}
