package config

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tacagent/tacagent/internal/secfile"
	"github.com/tacagent/tacagent/tacplus"
)

// Load reads, decodes and validates the file at path. Errors name path, the line and the field.
func Load(path string) (*Config, error) {
	data, err := secfile.ReadFile(path, secfile.Options{What: "configuration file", Max: MaxConfigSize,
		FollowSymlinks: true, CheckOwner: true})
	if err != nil {
		return nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: "reading the configuration", Err: err}
	}
	return Parse(data, path)
}

// MaxConfigSize caps the configuration file; a larger one is refused before it is parsed.
const MaxConfigSize = 1 << 20

// maxNodes bounds the YAML nodes the decoder visits, aliases expanded: a "billion laughs" document (each
// alias doubling the one before) is refused instead of eating memory and time. A real configuration
// visits a few hundred.
const maxNodes = 100_000

// Parse decodes and validates a configuration; source names it in errors (a file name, or ""). Decoding
// is strict: unknown fields, durations without a unit and values of the wrong type are errors. Every
// problem, from decoding and from Validate, is reported at once (see Errors).
func Parse(data []byte, source string) (*Config, error) {
	c := defaults()
	c.source = source
	c.lines = map[string]int{}
	p := &problems{file: source, lines: c.lines}

	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	switch err := dec.Decode(&root); {
	case errors.Is(err, io.EOF):
		p.addAt(0, "", nil, "the configuration is empty (want at least servers)")
		return nil, p.err()
	case err != nil:
		line, msg := yamlSyntax(err)
		p.addAt(line, "", nil, "%s", msg)
		return nil, p.err()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			line, _ = yamlSyntax(err)
		}
		p.addAt(line, "", nil, "a second YAML document; the configuration is one document")
		return nil, p.err()
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	d := decoder{p: p}
	d.value(doc, reflect.ValueOf(c).Elem(), "", tagOpts{})
	p.decoded = len(p.list)
	c.validate(p)
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlSyntax splits a yaml.v3 syntax error into its line and message.
func yamlSyntax(err error) (int, string) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}

// decoder walks a YAML node tree into a Go value by the yaml struct tags, recording the line of every field
// path and a problem for every unknown field or bad value, and carries on, so that one pass reports all.
// It replaces yaml.v3's KnownFields, whose errors name a line and a Go type but not the field's path.
type decoder struct {
	p       *problems
	visited int  // nodes visited, aliases expanded, against maxNodes
	tooBig  bool // the budget ran out (reported once)
}

// tagOpts are a field's options: `config:"never"` lets a duration be "never" (stored as -1ns).
type tagOpts struct {
	never bool
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	fileModeType    = reflect.TypeFor[fs.FileMode]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

// defaulter is a list item that starts from defaults rather than zero.
type defaulter interface{ setDefaults() }

func (d *decoder) value(n *yaml.Node, v reflect.Value, path string, opts tagOpts) {
	if d.visited++; d.visited > maxNodes {
		if !d.tooBig {
			d.tooBig = true
			d.p.addAt(n.Line, path, nil, "the document expands to more than %d values (aliases nested too deep?); refused", maxNodes)
		}
		return
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.AliasNode {
		return // an alias of an alias: yaml.v3 resolves these, nothing left to decode
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "field:" with no value keeps the default
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		// policy's types decode themselves strictly and report their field and line.
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.p.fromPolicy(err, path, n.Line)
		}
		return
	}
	switch {
	case v.Type() == durationType:
		if s, ok := d.scalar(n, path, "a duration such as 5s"); ok {
			if dur, ok := d.duration(s, path, opts.never); ok {
				v.SetInt(int64(dur))
			}
		}
		return
	case v.Type() == fileModeType:
		if s, ok := d.scalar(n, path, `an octal mode such as "0660"`); ok {
			m, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
			if err != nil {
				d.p.add(path, "%q is not an octal mode (use e.g. \"0660\")", s)
				return
			}
			v.SetUint(m)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.mapping(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.p.add(path, "want a list")
			return
		}
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := index(path, i)
			d.p.lines[p] = item.Line
			if def, ok := out.Index(i).Addr().Interface().(defaulter); ok {
				def.setDefaults()
			}
			d.value(item, out.Index(i), p, tagOpts{})
		}
		v.Set(out)
	case reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if s, ok := d.scalar(n, path, "true or false"); ok {
			switch s {
			case "true", "True", "TRUE":
				v.SetBool(true)
			case "false", "False", "FALSE":
				v.SetBool(false)
			default:
				d.p.add(path, "%q is not true or false", s)
			}
		}
	case reflect.Int, reflect.Int64:
		if s, ok := d.scalar(n, path, "an integer"); ok {
			i, err := strconv.ParseInt(s, 10, v.Type().Bits())
			if err != nil {
				d.p.add(path, "%q is not an integer%s", s, rangeHint(err))
				return
			}
			v.SetInt(i)
		}
	case reflect.Uint32:
		if s, ok := d.scalar(n, path, "a non-negative integer"); ok {
			u, err := strconv.ParseUint(s, 10, v.Type().Bits())
			if err != nil {
				d.p.add(path, "%q is not a non-negative integer%s", s, rangeHint(err))
				return
			}
			v.SetUint(u)
		}
	default:
		d.p.add(path, "internal: no decoder for %s", v.Type())
	}
}

func rangeHint(err error) string {
	if errors.Is(err, strconv.ErrRange) {
		return " in range"
	}
	return ""
}

// scalar returns a scalar node's text, or records that want was expected.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.p.add(path, "want %s, not a %s", want, kindName(n.Kind))
		return "", false
	}
	return n.Value, true
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

// duration parses a Go duration. A bare number is refused: the house style writes every duration with
// its unit, and "5" could mean seconds or milliseconds.
func (d *decoder) duration(s, path string, never bool) (time.Duration, bool) {
	if never && s == "never" {
		return -1, true
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		d.p.add(path, "%q has no unit (use e.g. %ss)", s, s)
		return 0, false
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		hint := "use e.g. 5s, 1m30s"
		if never {
			hint += ` or "never"`
		}
		d.p.add(path, "%q is not a duration (%s)", s, hint)
		return 0, false
	}
	return dur, true
}

// field is a struct field reachable from a YAML key, through inline structs.
type field struct {
	name  string
	index []int
	opts  tagOpts
}

// fields lists the YAML keys of struct type t, in declaration order.
func fields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, rest, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if rest == "inline" && f.Type.Kind() == reflect.Struct {
			for _, sub := range fields(f.Type) {
				sub.index = append([]int{i}, sub.index...)
				out = append(out, sub)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, field{name: name, index: []int{i}, opts: tagOpts{never: f.Tag.Get("config") == "never"}})
	}
	return out
}

// secretish are keys an operator might use to write a secret inline; the error says where keys come from.
var secretish = map[string]bool{"key": true, "secret": true, "password": true, "shared_secret": true}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		what := "the configuration"
		if path != "" {
			what = path
		}
		d.p.addAt(n.Line, path, nil, "want a mapping of fields for %s, not a %s", what, kindName(n.Kind))
		return
	}
	fs := fields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.p.addAt(k.Line, p, nil, "given twice (first on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := lookup(fs, k.Value)
		if !ok {
			// The value is never echoed: it might be a secret written in the wrong place.
			if secretish[k.Value] {
				d.p.addAt(k.Line, p, nil, "unknown field; a key is never written in the configuration: use key_file or key_env")
			} else {
				d.p.addAt(k.Line, p, nil, "unknown field (known: %s)", names(fs))
			}
			continue
		}
		d.p.lines[p] = k.Line
		d.value(val, v.FieldByIndex(f.index), p, f.opts)
	}
}

func lookup(fs []field, name string) (field, bool) {
	for _, f := range fs {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

func names(fs []field) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = f.name
	}
	return strings.Join(s, ", ")
}
