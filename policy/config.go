package policy

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tacagent/tacagent/tacplus"
)

// Config is the authentication section of the daemon's config. An empty Stack means the default stack:
// the network-gear rule over every configured server group, in order (see DefaultStack).
//
//	stack:
//	  - tacacs: core                        # a server group
//	  - tacacs: backup
//	    control: "[success=done fail=die unavailable=ignore default=die]"
//	  - local: /etc/tacagent/local-users    # a user:hash file
//	    control: requisite
type Config struct {
	Stack []HandlerConfig `yaml:"stack"`
}

// HandlerConfig is one line of the stack. Exactly one of Tacacs, Local and Deny is set.
type HandlerConfig struct {
	// Name names the line in entries, logs and explanations. Default: the server group's name for
	// tacacs, "local" for local, "deny" for deny. Names must be unique.
	Name string `yaml:"name,omitempty"`
	// Tacacs is the name of a configured server group.
	Tacacs string `yaml:"tacacs,omitempty"`
	// Local is the path of a local credential file (see Local).
	Local string `yaml:"local,omitempty"`
	// Deny makes the line a handler that always fails.
	Deny bool `yaml:"deny,omitempty"`
	// Control is a flag word (required, requisite, sufficient, optional) or the bracket form
	// "[success=... fail=... unavailable=... error=... default=...]". Default: MethodList, the network-gear
	// rule "[success=done fail=die unavailable=ignore error=die]"; on the last line MethodListEnd,
	// "[success=done default=die]" (no next method: no usable answer ends the stack as unavailable).
	Control Control `yaml:"control,omitempty"`

	// Line is the YAML line the entry started on (0 when not decoded from YAML), for error messages.
	Line int `yaml:"-"`
}

// UnmarshalYAML decodes a stack line strictly: an unknown field is an error naming it and its line, even
// when the enclosing decoder is not strict, because yaml.v3 does not pass KnownFields to custom decoders.
func (h *HandlerConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return lineErr(n, "stack entry", "want a mapping such as {tacacs: GROUP, control: required}")
	}
	*h = HandlerConfig{Line: n.Line}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			return lineErr(k, k.Value, "given twice")
		}
		seen[k.Value] = true
		var err error
		switch k.Value {
		case "name":
			err = v.Decode(&h.Name)
		case "tacacs":
			err = v.Decode(&h.Tacacs)
		case "local":
			err = v.Decode(&h.Local)
		case "deny":
			err = v.Decode(&h.Deny)
		case "control":
			err = v.Decode(&h.Control)
		default:
			return lineErr(k, k.Value, "unknown field (want name, tacacs, local, deny or control)")
		}
		if err != nil {
			var pe *FieldError
			if errors.As(err, &pe) {
				return err
			}
			return lineErr(v, k.Value, err.Error())
		}
	}
	return nil
}

// UnmarshalYAML decodes a flag word or a bracket string.
func (c *Control) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return lineErr(n, "control", "want a flag word or a \"[value=action ...]\" string")
	}
	p, err := ParseControl(n.Value)
	if err != nil {
		var te *tacplus.Error
		if errors.As(err, &te) {
			return lineErr(n, "control", te.Msg)
		}
		return lineErr(n, "control", err.Error())
	}
	*c = p
	return nil
}

// MarshalYAML writes the flag word or the canonical bracket form; a zero Control is omitted.
func (c Control) MarshalYAML() (any, error) { return c.String(), nil }

// IsZero tells yaml's omitempty that a zero Control was not set.
func (c Control) IsZero() bool { return c == Control{} }

// FieldError is a config error at a field (relative to the authentication section, such as
// "stack[1].control"), with the YAML line when known. It belongs to tacplus.ErrConfig; the config package
// finds it with errors.As to report the field under its own path.
type FieldError struct {
	Field string
	Line  int
	Msg   string
	Err   error // the cause, such as a local file's *LineError; may be nil
}

func (e *FieldError) Error() string {
	s := e.Field + ": " + e.Msg
	if e.Line > 0 {
		s = fmt.Sprintf("line %d: %s", e.Line, s)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FieldError) Unwrap() []error {
	if e.Err != nil {
		return []error{tacplus.ErrConfig, e.Err}
	}
	return []error{tacplus.ErrConfig}
}

func lineErr(n *yaml.Node, field, msg string) error {
	return &FieldError{Field: field, Line: n.Line, Msg: msg}
}

// ParseConfig decodes the authentication section from YAML, strictly (unknown fields are errors). The
// daemon decodes the section as part of its own config; this is for tests, tools and the documentation.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	d := yaml.NewDecoder(bytes.NewReader(data))
	d.KnownFields(true)
	if err := d.Decode(&c); err != nil {
		var pe *FieldError
		if errors.As(err, &pe) {
			return Config{}, err
		}
		return Config{}, &tacplus.Error{Class: tacplus.ErrConfig, Msg: "authentication config", Err: err}
	}
	return c, nil
}

// Registry is what a stack config refers to by name.
type Registry struct {
	// Tacacs serves every tacacs handler: the actor core's Go API.
	Tacacs Authenticator
	// Groups are the configured server groups, in config order (the default stack's order).
	Groups []string
	// Now is the stack's clock (time.Now in the daemon).
	Now func() time.Time
}

func (r Registry) hasGroup(g string) bool {
	for _, x := range r.Groups {
		if x == g {
			return true
		}
	}
	return false
}

// DefaultStack is the network-gear rule over every server group in reg, in order: each group is a tacacs
// handler with the MethodList control, so a PASS ends the stack with success, a FAIL ends it with a
// failure, and no usable answer moves on to the next group; the last group has MethodListEnd, so that when
// it gives no usable answer either the stack fails with Unavailable (tacplus.ErrUnreachable), not with
// the Denied of a stack in which no line decided.
func DefaultStack(reg Registry) (*Stack, error) {
	if len(reg.Groups) == 0 {
		return nil, configErr("authentication: no stack and no server groups")
	}
	if reg.Tacacs == nil {
		return nil, configErr("authentication: no TACACS+ authenticator to serve the default stack")
	}
	elems := make([]Element, len(reg.Groups))
	for i, g := range reg.Groups {
		elems[i] = Element{Name: g, Handler: NewTacacs(g, reg.Tacacs), Control: MethodList}
	}
	elems[len(elems)-1].Control = MethodListEnd
	return NewStack(reg.Now, elems...)
}

// Build checks c against reg and builds the stack; it opens the local credential files it names. Errors
// belong to tacplus.ErrConfig and name the field (stack[i].tacacs, ...) and the YAML line when known.
func (c Config) Build(reg Registry) (*Stack, error) {
	if len(c.Stack) == 0 {
		return DefaultStack(reg)
	}
	elems := make([]Element, 0, len(c.Stack))
	names := map[string]int{}
	for i, h := range c.Stack {
		field := func(f string) string { return fmt.Sprintf("stack[%d].%s", i, f) }
		fail := func(f, format string, args ...any) error {
			return &FieldError{Field: field(f), Line: h.Line, Msg: fmt.Sprintf(format, args...)}
		}
		set := 0
		for _, b := range []bool{h.Tacacs != "", h.Local != "", h.Deny} {
			if b {
				set++
			}
		}
		if set != 1 {
			return nil, &FieldError{Field: fmt.Sprintf("stack[%d]", i), Line: h.Line,
				Msg: "want exactly one of tacacs, local and deny"}
		}
		var e Element
		switch {
		case h.Tacacs != "":
			if !reg.hasGroup(h.Tacacs) {
				return nil, fail("tacacs", "unknown server group %q (configured: %v)", h.Tacacs, reg.Groups)
			}
			if reg.Tacacs == nil {
				return nil, fail("tacacs", "no TACACS+ authenticator to serve server group %q", h.Tacacs)
			}
			e = Element{Name: h.Tacacs, Handler: NewTacacs(h.Tacacs, reg.Tacacs)}
		case h.Local != "":
			l, err := OpenLocal(h.Local)
			if err != nil {
				return nil, &FieldError{Field: field("local"), Line: h.Line, Msg: "cannot load", Err: err}
			}
			e = Element{Name: KindLocal, Handler: l}
		default:
			e = Element{Name: KindDeny, Handler: Deny{}}
		}
		if h.Name != "" {
			e.Name = h.Name
		}
		if j, dup := names[e.Name]; dup {
			return nil, fail("name", "%q is already the name of stack[%d]; give one of them a name", e.Name, j)
		}
		names[e.Name] = i
		e.Control = h.Control
		if e.Control == (Control{}) {
			e.Control = MethodList
			if i == len(c.Stack)-1 {
				e.Control = MethodListEnd
			}
		}
		elems = append(elems, e)
	}
	return NewStack(reg.Now, elems...)
}
