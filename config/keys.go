package config

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"io"
	"os"
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

// loadKeyFile reads a key file: a regular file, not readable by every user unless allowed, its content
// less one trailing newline. Errors name the path, never the content.
func loadKeyFile(path string, allowInsecure bool) ([]byte, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "cannot open the key file", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, "cannot stat the key file", err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Sprintf("%s is not a regular file", path), nil
	}
	if st.Mode().Perm()&0o004 != 0 && !allowInsecure {
		return nil, fmt.Sprintf("%s is readable by every user (mode %04o); chmod o-r it, or set allow_insecure_key_file: true",
			path, st.Mode().Perm()), nil
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, "cannot read the key file", err
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Sprintf("%s is larger than %d bytes; is it really a key?", path, maxKeyFileSize), nil
	}
	b = trimNewline(b)
	if len(b) == 0 {
		return nil, fmt.Sprintf("%s is empty", path), nil
	}
	return b, "", nil
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
