package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/tacagent/tacagent", Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abc"}, {Key: "vcs.time", Value: "2026-12-05T20:00:00Z"},
			{Key: "vcs.modified", Value: "true"}}}
	got := FromBuildInfo(bi)
	want := Info{Version: "devel", Revision: "0123abc", Time: "2026-12-05T20:00:00Z", Modified: true, GoVersion: "go1.26.0"}
	if got != want {
		t.Fatalf("FromBuildInfo = %+v, want %+v", got, want)
	}
	if s := got.String(); s != "tacagent devel (revision 0123abc, 2026-12-05T20:00:00Z, modified) go1.26.0" {
		t.Errorf("String() = %q", s)
	}
	bare := FromBuildInfo(&debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}})
	if bare.Version != "v1.2.3" || bare.Revision != "unknown" || bare.GoVersion == "" {
		t.Errorf("bare build info: %+v", bare)
	}
	if s := bare.String(); s != "tacagent v1.2.3 (revision unknown) "+bare.GoVersion {
		t.Errorf("String() = %q", s)
	}
}

// A test binary has build information too.
func TestRead(t *testing.T) {
	if in := Read(); in.GoVersion == "" || in.Version == "" {
		t.Errorf("Read() = %+v", in)
	}
}
