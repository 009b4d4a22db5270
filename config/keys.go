package config

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tacagent/tacagent/internal/secfile"
)

const (
	sourceMemory = "memory" // given to Default
	redacted     = "[redacted]"
)

// secret is a loaded shared secret. Every fmt verb prints "[redacted]"; inside a struct, fmt prints the
// pointer's address, never the bytes.
type secret struct {
	b      []byte
	source string // where it came from ("key_file /etc/...", "key_env NAME", "memory"), for Diff
}

func (s *secret) String() string                 { return redacted }
func (s *secret) GoString() string               { return redacted }
func (s *secret) Format(f fmt.State, verb rune)  { _, _ = io.WriteString(f, redacted) }
func (s *secret) MarshalText() ([]byte, error)   { return []byte(redacted), nil }
func (s *secret) equal(o *secret) bool           { return subtle.ConstantTimeCompare(s.b, o.b) == 1 }
func keySource(kind, where string) string        { return kind + " " + where }
func (s *Server) fileSource() string             { return keySource("key_file", s.KeyFile) }
func (s *Server) envSource() string              { return keySource("key_env", s.KeyEnv) }
func (s *Server) keyIs(source string) bool       { return s.key != nil && s.key.source == source }
func (s *Server) setKey(b []byte, source string) { s.key = &secret{b: b, source: source} }

// loadKeyFile reads a key file through secfile: a regular file (no symlink followed, a FIFO refused
// without blocking), owned by root or the daemon's user, not readable by group or others unless allowed
// (never writable by them), its content less one trailing newline. Messages name the path and the fix,
// never the content.
func loadKeyFile(path string, allowInsecure bool) ([]byte, string, error) {
	b, err := secfile.ReadFile(path, secfile.Options{What: "key file", Max: maxKeyFileSize, Secret: true,
		AllowReadable: allowInsecure, CheckOwner: true})
	if err != nil {
		var se *secfile.Error
		if errors.As(err, &se) && se.Err == nil {
			msg := se.Msg
			if !allowInsecure && strings.Contains(msg, "group or others may read") {
				msg += " (or set allow_insecure_key_file: true)"
			}
			return nil, path + ": " + msg, nil
		}
		if errors.As(err, &se) {
			return nil, se.Msg + " " + path, se.Err
		}
		return nil, "cannot read the key file", err
	}
	key := trimNewline(b)
	if len(key) == 0 {
		return nil, fmt.Sprintf("%s is empty", path), nil
	}
	return key, "", nil
}

// loadKeyEnv reads a key from the environment variable name. Messages do not repeat the name: an operator
// who wrote the key itself in key_env must not find it in a log.
func loadKeyEnv(name string) ([]byte, string, error) {
	if !envName.MatchString(name) {
		return nil, "not an environment variable name (letters, digits and _); write the name of the variable holding the key, never the key", nil
	}
	v, ok := os.LookupEnv(name)
	switch {
	case !ok:
		return nil, "the environment variable named here is not set", nil
	case v == "":
		return nil, "the environment variable named here is empty", nil
	}
	return []byte(v), "", nil
}

// trimNewline removes one trailing "\n" or "\r\n", the one an editor or `echo` adds.
func trimNewline(b []byte) []byte {
	if b, ok := bytes.CutSuffix(b, []byte("\n")); ok {
		b, _ = bytes.CutSuffix(b, []byte("\r"))
		return b
	}
	return b
}
