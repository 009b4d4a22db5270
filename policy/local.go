package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"

	"github.com/tacagent/tacagent/internal/secfile"
	"github.com/tacagent/tacagent/tacplus"
)

// Local is the handler for a local credential file, for when every server is down. The file holds one
// "user:hash" line per user; blank lines and lines starting with '#' are ignored. The hash is a crypt(3)
// string:
//
//	$6$[rounds=N$]salt$digest   SHA-512 crypt (the Debian default before yescrypt)
//	$5$[rounds=N$]salt$digest   SHA-256 crypt
//	$2a$, $2b$, $2y$            bcrypt
//	! or * prefix               a locked account: it always fails, with the reason "locked"
//
// yescrypt ($y$) is refused at load time: no well-kept Go implementation is available. Other formats
// (DES, MD5-crypt, an empty hash) are refused too. A line of the form "$enabN$:hash" holds the password
// for enable level N (0-15), after the "$enab15$" convention of tac_plus.
//
// The file is read when the handler is made and by Reload; Authenticate does no I/O. A Local is safe for
// concurrent use, and a failed Reload keeps the users loaded before.
type Local struct {
	path string
	db   atomic.Pointer[localDB]
}

// OpenLocal reads the file at path. Its errors belong to tacplus.ErrConfig; a malformed line gives a
// *LineError naming the file and line (never the hash).
func OpenLocal(path string) (*Local, error) {
	l := &Local{path: path}
	if err := l.Reload(); err != nil {
		return nil, err
	}
	return l, nil
}

// Path returns the file's path.
func (l *Local) Path() string { return l.path }

// Users returns how many users the file holds.
func (l *Local) Users() int { return len(l.db.Load().users) }

// maxLocalFileSize caps a local credential file: a few thousand users' hashes.
const maxLocalFileSize = 1 << 20

// Reload reads the file again. On error the users loaded before stay in force.
//
// The file is opened with the daemon's checked open (internal/secfile): no symlink followed, a FIFO or
// device refused without blocking, owner root or the daemon's user, no access for group or others (a
// hash that others can read can be cracked offline; a file others can write is a login for anyone), at
// most maxLocalFileSize bytes.
func (l *Local) Reload() error {
	data, err := secfile.ReadFile(l.path, secfile.Options{What: "local credential file", Max: maxLocalFileSize,
		Secret: true, CheckOwner: true})
	if err != nil {
		return &tacplus.Error{Class: tacplus.ErrConfig, Msg: "local credential file", Err: err}
	}
	defer secfile.Wipe(data) // parseLocal copies what it keeps into strings of its own
	db, err := parseLocal(l.path, data)
	if err != nil {
		return err
	}
	l.db.Store(db)
	return nil
}

// Kind returns "local".
func (*Local) Kind() string { return KindLocal }

// Authenticate checks the password of req.User (or of "$enabN$" for Enable at level N). It accepts ASCII
// and PAP requests only: CHAP and MS-CHAP need the clear-text secret, which a crypt hash does not give.
// An empty password never matches. With no password in req it asks once through conv.
func (l *Local) Authenticate(ctx context.Context, req Request, conv Conversation) (Reply, error) {
	if req.Type != ASCII && req.Type != PAP {
		return Reply{}, configErr("local credentials verify ascii and pap only, not %s", req.Type)
	}
	name, prompt := req.User, "Password: "
	if req.Service == Enable {
		name, prompt = "$enab"+strconv.Itoa(int(req.PrivLvl))+"$", "Enable password: "
	}
	if name == "" {
		return Reply{}, failErr("no user")
	}
	password := string(req.Password)
	if password == "" && conv != nil {
		answers, err := conv(ctx, "", []Prompt{{Text: prompt, Echo: false}})
		switch {
		case err != nil:
			if tacplus.ClassOf(err) != nil {
				return Reply{}, err
			}
			return Reply{}, &tacplus.Error{Class: tacplus.ErrAborted, Msg: "conversation ended", Err: err}
		case len(answers) != 1:
			return Reply{}, &tacplus.Error{Class: tacplus.ErrAborted, Msg: fmt.Sprintf("conversation gave %d answers to 1 prompt", len(answers))}
		}
		password = answers[0]
	}
	db := l.db.Load()
	h, ok := db.users[name]
	switch {
	case !ok:
		dummyHash().verify([]byte(password)) // spend the same time as for a known user
		return Reply{}, failErr("user %q is not in %s", name, l.path)
	case h.locked:
		return Reply{}, failErr("user %q is locked in %s", name, l.path)
	case password == "":
		return Reply{}, failErr("user %q: no password given", name)
	case !h.verify([]byte(password)):
		return Reply{}, failErr("user %q: wrong password", name)
	}
	return Reply{}, nil
}

func failErr(format string, args ...any) error {
	return &tacplus.Error{Class: tacplus.ErrAuthenticationFailed, Msg: fmt.Sprintf(format, args...)}
}

// LineError is a malformed line of a local credential file. It names the file and the line, never the
// hash; it belongs to tacplus.ErrConfig.
type LineError struct {
	File   string
	Line   int
	Reason string
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason) }

// Unwrap makes a LineError match tacplus.ErrConfig.
func (e *LineError) Unwrap() error { return tacplus.ErrConfig }

type localDB struct {
	users map[string]*localHash
}

// localHash is one user's parsed hash.
type localHash struct {
	line   int
	locked bool
	sha    *shaCryptHash
	bcrypt []byte
}

func (h *localHash) verify(password []byte) bool {
	switch {
	case h.locked:
		return false
	case h.sha != nil:
		return h.sha.verify(password)
	case h.bcrypt != nil:
		// CompareHashAndPassword compares in constant time.
		return bcrypt.CompareHashAndPassword(h.bcrypt, password) == nil
	}
	return false
}

// dummyHash is verified against when the user is unknown, so that timing does not tell which users exist.
var dummyHash = sync.OnceValue(func() *localHash {
	s, _ := shaCryptString("unused", "$6$tacagentdummysa")
	h, err := parseShaCrypt(s)
	if err != nil {
		panic(err)
	}
	return &localHash{sha: h}
})

// parseLocal parses a whole file; every malformed line is reported (errors.Join of *LineError).
func parseLocal(file string, data []byte) (*localDB, error) {
	db := &localDB{users: map[string]*localHash{}}
	var errs []error
	bad := func(line int, format string, args ...any) {
		errs = append(errs, &LineError{File: file, Line: line, Reason: fmt.Sprintf(format, args...)})
	}
	for n, raw := range bytes.Split(data, []byte("\n")) {
		line := n + 1
		s := strings.TrimSpace(string(raw))
		if s == "" || s[0] == '#' {
			continue
		}
		user, hash, ok := strings.Cut(s, ":")
		switch {
		case !ok:
			bad(line, "want user:hash")
			continue
		case strings.Contains(hash, ":"):
			bad(line, "want user:hash, found more fields (copy only the first two fields of an /etc/shadow line)")
			continue
		}
		if err := checkLocalUser(user); err != nil {
			bad(line, "%v", err)
			continue
		}
		if prev, dup := db.users[user]; dup {
			bad(line, "user %q already defined on line %d", user, prev.line)
			continue
		}
		h, err := parseLocalHash(hash)
		if err != nil {
			bad(line, "user %q: %v", user, err)
			continue
		}
		h.line = line
		db.users[user] = h
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return db, nil
}

func checkLocalUser(u string) error {
	if u == "" {
		return errors.New("empty user name")
	}
	for _, r := range u {
		if r <= ' ' || r == 0x7f {
			return errors.New("user name holds a space or control character")
		}
	}
	if strings.HasPrefix(u, "$enab") {
		lvl, ok := strings.CutSuffix(strings.TrimPrefix(u, "$enab"), "$")
		if n, err := strconv.Atoi(lvl); !ok || err != nil || n < 0 || n > 15 || strconv.Itoa(n) != lvl {
			return fmt.Errorf("%q: an enable line is $enabN$ with N from 0 to 15", u)
		}
	}
	return nil
}

// parseLocalHash recognises the formats Local accepts. Its errors name the format, never the hash.
func parseLocalHash(s string) (*localHash, error) {
	switch {
	case s == "":
		return nil, errors.New("empty hash: an account without a password is refused (lock it with ! instead)")
	case s[0] == '!' || s[0] == '*':
		return &localHash{locked: true}, nil
	case strings.HasPrefix(s, "$5$"), strings.HasPrefix(s, "$6$"):
		h, err := parseShaCrypt(s)
		if err != nil {
			return nil, err
		}
		return &localHash{sha: h}, nil
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		if len(s) != 60 {
			return nil, errors.New("malformed bcrypt hash: want 60 characters")
		}
		if _, err := bcrypt.Cost([]byte(s)); err != nil {
			return nil, errors.New("malformed bcrypt hash")
		}
		return &localHash{bcrypt: []byte(s)}, nil
	case strings.HasPrefix(s, "$y$"), strings.HasPrefix(s, "$gy$"):
		return nil, errors.New("yescrypt hashes are not supported (no well-kept Go implementation); use SHA-512 crypt ($6$) or bcrypt")
	case strings.HasPrefix(s, "$1$"):
		return nil, errors.New("MD5-crypt ($1$) is too weak and not supported; use SHA-512 crypt ($6$) or bcrypt")
	case s[0] == '$':
		id, _, _ := strings.Cut(s[1:], "$")
		if len(id) > 8 || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }) {
			id = "?"
		}
		return nil, fmt.Errorf("unsupported hash format $%s$ (want $6$, $5$ or bcrypt)", id)
	}
	return nil, errors.New("unsupported hash format (traditional DES crypt or unknown; want $6$, $5$ or bcrypt)")
}
