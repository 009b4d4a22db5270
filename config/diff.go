package config

import (
	"reflect"
	"slices"
	"strings"
)

// Changes is what a reload changes, for the daemon to decide what to replace and to log. It never holds a
// key: a changed key shows as the field name "key".
type Changes struct {
	Added   []string       // names of servers only in the new config, in its order
	Removed []string       // names of servers only in the old config, in its order
	Changed []ServerChange // servers in both whose settings or key differ, in the new config's order
	// Sections are the other top-level sections that differ, by YAML name in file order: "groups",
	// "dead_time", "backoff", "authentication", "authorization", "accounting", "metrics", "api", "listen", "log".
	Sections []string
}

// ServerChange is one server whose configuration changed.
type ServerChange struct {
	Name   string
	Fields []string // YAML names of the fields that differ ("address", "timeout", ...), and "key"
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool {
	return len(c.Added) == 0 && len(c.Removed) == 0 && len(c.Changed) == 0 && len(c.Sections) == 0
}

// ServersChanged reports whether any server was added, removed or changed.
func (c Changes) ServersChanged() bool {
	return len(c.Added) > 0 || len(c.Removed) > 0 || len(c.Changed) > 0
}

// Section reports whether the named top-level section changed.
func (c Changes) Section(name string) bool { return slices.Contains(c.Sections, name) }

// String summarizes the changes for a log line: "servers added [a]; servers changed [b (timeout, key changed)];
// sections changed [log]", or "no changes".
func (c Changes) String() string {
	if c.Empty() {
		return "no changes"
	}
	var parts []string
	list := func(what string, items []string) {
		if len(items) > 0 {
			parts = append(parts, what+" ["+strings.Join(items, ", ")+"]")
		}
	}
	list("servers added", c.Added)
	list("servers removed", c.Removed)
	changed := make([]string, len(c.Changed))
	for i, s := range c.Changed {
		fields := make([]string, len(s.Fields))
		for j, f := range s.Fields {
			fields[j] = f
			if f == "key" {
				fields[j] = "key changed" // the only thing said of a key: never its value, old or new
			}
		}
		changed[i] = s.Name + " (" + strings.Join(fields, ", ") + ")"
	}
	list("servers changed", changed)
	list("sections changed", c.Sections)
	return strings.Join(parts, "; ")
}

// Diff compares two validated configurations. Servers are matched by name; a server whose address
// changed under the same name is Changed with the field "address". Keys are compared by content (in
// constant time), so a rotated key file is a change even when its path is not.
func Diff(before, after *Config) Changes {
	var ch Changes
	oldByName := map[string]*Server{}
	for i := range before.Servers {
		oldByName[before.Servers[i].Name] = &before.Servers[i]
	}
	newNames := map[string]bool{}
	for i := range after.Servers {
		n := &after.Servers[i]
		newNames[n.Name] = true
		o, ok := oldByName[n.Name]
		if !ok {
			ch.Added = append(ch.Added, n.Name)
			continue
		}
		if f := serverDiff(o, n); len(f) > 0 {
			ch.Changed = append(ch.Changed, ServerChange{Name: n.Name, Fields: f})
		}
	}
	for _, o := range before.Servers {
		if !newNames[o.Name] {
			ch.Removed = append(ch.Removed, o.Name)
		}
	}
	ov, nv := reflect.ValueOf(before).Elem(), reflect.ValueOf(after).Elem()
	for _, f := range fields(ov.Type()) {
		if f.name == "servers" {
			continue
		}
		a, b := ov.FieldByIndex(f.index).Interface(), nv.FieldByIndex(f.index).Interface()
		if f.name == "authentication" {
			a, b = withoutLines(a.(Authentication)), withoutLines(b.(Authentication))
		}
		if !reflect.DeepEqual(a, b) {
			ch.Sections = append(ch.Sections, f.name)
		}
	}
	return ch
}

func serverDiff(o, n *Server) []string {
	var out []string
	ov, nv := reflect.ValueOf(o).Elem(), reflect.ValueOf(n).Elem()
	for _, f := range fields(ov.Type()) {
		if !reflect.DeepEqual(ov.FieldByIndex(f.index).Interface(), nv.FieldByIndex(f.index).Interface()) {
			out = append(out, f.name)
		}
	}
	switch {
	case o.key == nil && n.key == nil:
	case o.key == nil || n.key == nil || !o.key.equal(n.key):
		out = append(out, "key")
	}
	return out
}

// withoutLines drops the YAML line numbers the policy records in each stack entry: moving an entry down
// the file changes nothing.
func withoutLines(a Authentication) Authentication {
	a.Stack = slices.Clone(a.Stack)
	for i := range a.Stack {
		a.Stack[i].Line = 0
	}
	return a
}
