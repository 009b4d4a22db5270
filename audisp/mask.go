package audisp

import (
	"fmt"
	"regexp"
)

// Masked replaces a secret in an argument.
const Masked = "***"

// DefaultSecretPatterns mask the value of an argument that carries a secret itself. A pattern with a
// group named "secret" masks that group only; without one, the whole argument.
var DefaultSecretPatterns = []string{
	// --password=x, -token=x, --db-pass=x, api_key=x, PASSWORD=x (env assignments), ...
	`(?i)^-{0,2}[a-z0-9_.-]*(?:pass(?:word|wd|phrase)?|secret|token|api[_-]?key|credential|private[_-]?key)[a-z0-9_.-]*=(?P<secret>.+)$`,
	// scheme://user:password@host
	`(?i)^[a-z][a-z0-9+.-]*://[^/:@\s]*:(?P<secret>[^/@\s]+)@`,
}

// DefaultSecretFlags mask the argument that follows a matching one (--password x).
var DefaultSecretFlags = []string{
	`(?i)^--?(?:pass(?:word|wd|phrase)?|secret|token|api[_-]?key|credentials?)$`,
}

// Masker masks secret arguments. The zero value masks nothing.
type Masker struct {
	patterns []*regexp.Regexp
	flags    []*regexp.Regexp
}

// NewMasker compiles the patterns (Go regexp syntax, matched against each argument).
func NewMasker(patterns, flags []string) (*Masker, error) {
	m := &Masker{}
	for _, p := range patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("secret pattern %q: %w", p, err)
		}
		m.patterns = append(m.patterns, re)
	}
	for _, p := range flags {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("secret flag pattern %q: %w", p, err)
		}
		m.flags = append(m.flags, re)
	}
	return m, nil
}

// Mask returns args with secrets replaced by Masked (a copy when anything changed), and how many
// arguments it masked. args[0] is the command and is never a flag's value.
func (m *Masker) Mask(args []string) ([]string, int) {
	if m == nil || (len(m.patterns) == 0 && len(m.flags) == 0) {
		return args, 0
	}
	out := args
	n := 0
	set := func(i int, v string) {
		if n == 0 {
			out = append([]string(nil), args...)
		}
		out[i] = v
		n++
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if v, ok := m.maskValue(a); ok {
			set(i, v)
			continue
		}
		if i+1 < len(args) && m.isFlag(a) {
			set(i+1, Masked)
			i++
		}
	}
	return out, n
}

func (m *Masker) isFlag(a string) bool {
	for _, re := range m.flags {
		if re.MatchString(a) {
			return true
		}
	}
	return false
}

func (m *Masker) maskValue(a string) (string, bool) {
	for _, re := range m.patterns {
		loc := re.FindStringSubmatchIndex(a)
		if loc == nil {
			continue
		}
		if g := re.SubexpIndex("secret"); g > 0 && loc[2*g] >= 0 {
			return a[:loc[2*g]] + Masked + a[loc[2*g+1]:], true
		}
		return Masked, true
	}
	return "", false
}
