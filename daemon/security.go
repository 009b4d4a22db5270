package daemon

import (
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/internal/secfile"
	"github.com/tacagent/tacagent/tacplus"
)

// DefaultSecretCommands are commands whose arguments carry secrets (a password, a community string, a
// key): their argument values are never logged, not even at debug.
var DefaultSecretCommands = []string{"enable", "passwd", "chpasswd", "password", "username", "snmp-server", "key", "tacacs-server", "radius-server", "crypto"}

// FileLimitReserve is the number of descriptors kept for server connections, the local API and files
// above what the HTTP endpoints may hold; the daemon warns when RLIMIT_NOFILE cannot give it.
const FileLimitReserve = 1024

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit (the Go runtime does this too on
// recent versions; doing it here makes the figure known and logged) and returns the soft limit.
func raiseFileLimit() (uint64, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
			return rl.Cur, err
		}
		rl = want
	}
	return rl.Cur, nil
}

// checkSocketDir refuses a socket directory that another user could tamper with: not owned by root or
// the daemon's user, writable by group or others, or not a plain directory.
func checkSocketDir(socket string) error {
	dir := filepath.Dir(socket)
	if _, err := secfile.CheckDir(dir, "local API socket directory"); err != nil {
		return &tacplus.Error{Class: tacplus.ErrConfig, Msg: "local API socket " + socket, Err: err}
	}
	return nil
}

// warnPlaintext logs one warning per server reached over TACACS+ without TLS on a non-loopback address:
// RFC 8907 obfuscation XORs the body with an MD5 pad and carries no integrity check, so an on-path
// attacker can flip a reply's status bits (FAIL to PASS) without knowing the key.
func warnPlaintext(log zerolog.Logger, s Settings) {
	for _, srv := range s.Agent.Servers {
		if srv.Dial != nil || loopbackHost(srv.Addr) {
			continue // a custom dialer is TLS (or a test); loopback has no path to sit on
		}
		ev := log.Warn().Str("server", srv.Addr)
		if srv.Unencrypted {
			ev = ev.Bool("unencrypted", true)
		}
		ev.Msg("TACACS+ without TLS has no integrity: an on-path attacker can turn a FAIL into a PASS; use a trusted network path (TLS support comes later)")
	}
}

func loopbackHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// retryable reports whether err says that a replaced agent refused a request before sending anything
// of it: agent.ErrClosed (Close had begun), or agent.ErrDraining (the supervisor's refusal while draining).
// Either way the request may go to the new runtime.
func retryable(err error) bool {
	return errors.Is(err, agent.ErrClosed) || errors.Is(err, agent.ErrDraining)
}

// commandOf returns the command of an authorization request's pairs (cmd=...), or "".
func commandOf(cmd string, pairs []string) string {
	if cmd != "" {
		return cmd
	}
	for _, p := range pairs {
		if n, v, _, ok := tacplus.SplitArg(p); ok && n == "cmd" {
			return v
		}
	}
	return ""
}

// secretCommand reports whether cmd is on the list of secret-bearing commands (first word, any case).
func secretCommand(list []string, cmd string) bool {
	first, _, _ := strings.Cut(strings.TrimSpace(cmd), " ")
	return slices.ContainsFunc(list, func(s string) bool { return strings.EqualFold(s, first) })
}
