package fsm

import (
	"strconv"
	"strings"

	"github.com/tacagent/tacagent/tacplus"
)

// Arg is one attribute-value pair (RFC 8907 section 6.1): "name=value" is mandatory, "name*value" is
// optional. The zero Optional is a mandatory pair.
type Arg struct {
	Name     string
	Value    string
	Optional bool
}

// String renders the pair as it travels on the wire.
func (a Arg) String() string {
	if a.Optional {
		return tacplus.OptionalArg(a.Name, a.Value)
	}
	return tacplus.Arg(a.Name, a.Value)
}

// Args is a list of pairs, in order. A name may appear more than once (cmd-arg does).
type Args []Arg

// ParseArgs splits wire-form pairs. It fails on a pair without a name or a separator (section 6.1).
func ParseArgs(raw []string) (Args, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	return appendParsed(make(Args, 0, len(raw)), raw)
}

// appendParsed appends the parsed raw pairs to dst.
func appendParsed(dst Args, raw []string) (Args, error) {
	for i, s := range raw {
		name, value, mandatory, ok := tacplus.SplitArg(s)
		if !ok {
			return nil, badPacket(tacplus.ReasonAVPair, "arg", "argument %d has no name or no '=' / '*' separator", i)
		}
		dst = append(dst, Arg{Name: name, Value: value, Optional: !mandatory})
	}
	return dst, nil
}

// Get returns the last pair called name: when a server's PASS_ADD pairs follow the request's, the server's
// value is the one found.
func (a Args) Get(name string) (Arg, bool) {
	for i := len(a) - 1; i >= 0; i-- {
		if a[i].Name == name {
			return a[i], true
		}
	}
	return Arg{}, false
}

// Values returns every value of the pairs called name, in order (cmd-arg, for instance).
func (a Args) Values(name string) []string {
	var out []string
	for _, x := range a {
		if x.Name == name {
			out = append(out, x.Value)
		}
	}
	return out
}

// Mandatory returns the mandatory pairs, in order.
func (a Args) Mandatory() Args { return a.filter(false) }

// OptionalArgs returns the optional pairs, in order.
func (a Args) OptionalArgs() Args { return a.filter(true) }

func (a Args) filter(optional bool) Args {
	var out Args
	for _, x := range a {
		if x.Optional == optional {
			out = append(out, x)
		}
	}
	return out
}

// Strings renders the pairs in wire form.
func (a Args) Strings() []string {
	out := make([]string, len(a))
	for i, x := range a {
		out[i] = x.String()
	}
	return out
}

// String renders the pairs quoted, in order.
func (a Args) String() string {
	q := make([]string, len(a))
	for i, x := range a {
		q[i] = strconv.Quote(x.String())
	}
	return "[" + strings.Join(q, " ") + "]"
}

// argCount counts the pairs called name.
func argCount(args []string, name string) (n int, value string) {
	for _, s := range args {
		if k, v, _, ok := tacplus.SplitArg(s); ok && k == name {
			n++
			value = v
		}
	}
	return n, value
}
