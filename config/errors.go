package config

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/tacagent/tacagent/policy"
	"github.com/tacagent/tacagent/tacplus"
)

// FieldError is one problem in a configuration file. It belongs to tacplus.ErrConfig. Msg never holds a
// shared secret.
type FieldError struct {
	File  string // the path given to Load, or the source given to Parse; may be empty
	Line  int    // 1-based; 0 when unknown (a field that is missing, or a Config built in Go)
	Field string // the path of the field: "servers[1].timeout", "api.mode"; empty for a YAML syntax error
	Msg   string
	Err   error // the cause (an *fs.PathError, ...), never holding a secret; may be nil
}

// Error renders "FILE:LINE: FIELD: MSG: CAUSE", leaving out the parts that are empty.
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		if b.Len() > 0 {
			b.WriteByte(':')
		} else {
			b.WriteString("line ")
		}
		b.WriteString(strconv.Itoa(e.Line))
	}
	for _, s := range []string{e.Field, e.Msg} {
		if s == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(s)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap makes a FieldError match tacplus.ErrConfig, and its cause.
func (e *FieldError) Unwrap() []error {
	if e.Err != nil {
		return []error{tacplus.ErrConfig, e.Err}
	}
	return []error{tacplus.ErrConfig}
}

// Errors is every problem found in one configuration, in line order. Parse, Load, Validate and Agent return
// it wrapped in a *tacplus.Error of class ErrConfig; get it back with errors.As or Problems.
type Errors []*FieldError

// Error renders the one problem, or "N problems:" followed by one problem per line.
func (es Errors) Error() string {
	if len(es) == 1 {
		return es[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems:", len(es))
	for _, e := range es {
		b.WriteString("\n")
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap exposes each problem to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Problems returns the problems err carries: all of them when it wraps Errors, the one when it wraps a
// single *FieldError, nil otherwise.
func Problems(err error) []*FieldError {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return []*FieldError{fe}
	}
	return nil
}

// problems collects FieldErrors for one file. Lines come from the decoded YAML, by field path.
type problems struct {
	file  string
	lines map[string]int
	list  Errors
	// decoded is how many of list came from decoding; validation does not repeat them.
	decoded int
}

// line returns the line of path, or of its nearest ancestor that has one.
func (p *problems) line(path string) int {
	for {
		if l, ok := p.lines[path]; ok {
			return l
		}
		if path == "" {
			return 0
		}
		path = parent(path)
	}
}

// parent strips the last component of a field path: "a.b[2]" -> "a.b", "a.b" -> "a", "a" -> "".
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// covered reports whether path or an ancestor failed to decode (the root, when the document is not a
// mapping), so that validation does not pile a second complaint on it.
func (p *problems) covered(path string) bool {
	for _, e := range p.list[:p.decoded] {
		if e.Field == "" || e.Field == path || (e.Field != "" && strings.HasPrefix(path, e.Field) &&
			(path[len(e.Field)] == '.' || path[len(e.Field)] == '[')) {
			return true
		}
	}
	return false
}

// add records a problem at path, on the line the path was decoded from.
func (p *problems) add(path, format string, args ...any) {
	p.addAt(p.line(path), path, nil, format, args...)
}

// addErr records a problem with a cause.
func (p *problems) addErr(path string, cause error, format string, args ...any) {
	p.addAt(p.line(path), path, cause, format, args...)
}

func (p *problems) addAt(line int, path string, cause error, format string, args ...any) {
	if p.covered(path) {
		return
	}
	p.list = append(p.list, &FieldError{File: p.file, Line: line, Field: path, Msg: fmt.Sprintf(format, args...), Err: cause})
}

// err returns nil, or every problem in line order (problems without a line last) inside one
// *tacplus.Error of class ErrConfig.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	list := append(Errors(nil), p.list...)
	sort.SliceStable(list, func(i, j int) bool {
		li, lj := list[i].Line, list[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
	return &tacplus.Error{Class: tacplus.ErrConfig, Err: list}
}

// fromPolicy turns an error from the policy package into a problem under base ("authentication"). The
// policy reports the field relative to its section ("stack[1].control") and the YAML line in a
// *policy.FieldError; anything else is reported at base, at the fallback line.
func (p *problems) fromPolicy(err error, base string, fallback int) {
	var fe *policy.FieldError
	if errors.As(err, &fe) {
		path := base
		if isFieldPath(fe.Field) {
			path = joinPath(base, fe.Field)
		}
		line := fe.Line
		if line == 0 {
			line = fallback
		}
		p.addAt(line, path, fe.Err, "%s", fe.Msg)
		return
	}
	msg := err.Error()
	var te *tacplus.Error
	if errors.As(err, &te) && te.Msg != "" {
		msg = te.Msg
		if te.Err != nil {
			msg += ": " + te.Err.Error()
		}
	}
	p.addAt(fallback, base, nil, "%s", msg)
}

// isFieldPath tells a field path ("stack[1].control", "tacacs") from a description ("stack entry").
func isFieldPath(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '.' || r == '[' || r == ']' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func joinPath(base, field string) string {
	if base == "" {
		return field
	}
	return base + "." + field
}

func index(base string, i int) string { return base + "[" + strconv.Itoa(i) + "]" }
