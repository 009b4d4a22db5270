// Package buildinfo says which build of tacagent is running, from the information the Go toolchain embeds
// in every binary (debug.ReadBuildInfo): the module version, the VCS revision and time, whether the tree
// was modified, and the Go version. `tacagent --version` prints it and the tacagent_build_info metric
// carries it.
//
// It imports the standard library only.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Info describes the running build. Fields the toolchain did not record are "unknown" (Version: "devel").
type Info struct {
	Version   string // module version: "v1.2.3", a pseudo-version, or "devel"
	Revision  string // VCS revision (commit hash)
	Time      string // VCS commit time, RFC 3339
	Modified  bool   // built from a tree with uncommitted changes
	GoVersion string // "go1.26.0"
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "devel", Revision: "unknown", Time: "unknown", GoVersion: runtime.Version()}
	}
	return FromBuildInfo(bi)
}

// FromBuildInfo maps what the toolchain recorded onto an Info.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{Version: bi.Main.Version, Revision: "unknown", Time: "unknown", GoVersion: bi.GoVersion}
	if in.Version == "" || in.Version == "(devel)" {
		in.Version = "devel"
	}
	if in.GoVersion == "" {
		in.GoVersion = runtime.Version()
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// String is the one-line form `tacagent --version` prints:
// "tacagent v1.2.3 (revision 0123abc, 2026-12-05T20:00:00Z, modified) go1.26.0".
func (i Info) String() string {
	var b strings.Builder
	b.WriteString("tacagent ")
	b.WriteString(i.Version)
	b.WriteString(" (revision ")
	b.WriteString(i.Revision)
	if i.Time != "unknown" {
		b.WriteString(", ")
		b.WriteString(i.Time)
	}
	if i.Modified {
		b.WriteString(", modified")
	}
	b.WriteString(") ")
	b.WriteString(i.GoVersion)
	return b.String()
}
