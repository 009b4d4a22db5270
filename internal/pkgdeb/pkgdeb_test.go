package pkgdeb

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBuildDeb builds a package with Build from the real tacagent binary and stand-ins for the C objects
// and the generated pages, and reads it back with dpkg-deb: the fields, the conffiles, the owners and
// modes, the compressed man pages, and the copyright file's paragraphs for the modules linked into
// tacagent.
func TestBuildDeb(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb is not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	mc, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tacagent")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/tacagent").CombinedOutput(); err != nil {
		t.Fatalf("building tacagent: %v\n%s", err, out)
	}
	gen := filepath.Join(dir, "gen")
	for _, f := range []string{"man8/tacagent.8", "man8/tacagent-run.8", "completion/tacagent.bash", "completion/_tacagent"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(gen, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(gen, f), []byte(".TH TACAGENT 8\n"+f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in := Inputs{
		Repo: "../..", Binary: bin, Compress: "none", PAMModule: self, BashHook: self, GenDir: gen, Stage: filepath.Join(dir, "stage"),
		Version: "1.2.3~test", Arch: "amd64", Multiarch: "x86_64-linux-gnu", Depends: []string{"libc6 (>= 2.34)"},
		Maintainer: "Test <test@example.org>", Date: time.Unix(1700000000, 0).UTC(), Commit: "0123456789ab",
		ModCache: strings.TrimSpace(string(mc)),
	}
	deb := filepath.Join(dir, "t.deb")
	f, err := os.Create(deb)
	if err != nil {
		t.Fatal(err)
	}
	if err := Build(in, f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	field := func(name string) string {
		out, err := exec.Command("dpkg-deb", "-f", deb, name).Output()
		if err != nil {
			t.Fatalf("dpkg-deb -f %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	for name, want := range map[string]string{"Package": "tacagent", "Version": "1.2.3~test", "Architecture": "amd64",
		"Depends": "libc6 (>= 2.34), adduser", "Section": "admin"} {
		if got := field(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	ctl := filepath.Join(dir, "control")
	if out, err := exec.Command("dpkg-deb", "-e", deb, ctl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
	}
	conffiles, _ := os.ReadFile(filepath.Join(ctl, "conffiles"))
	if got, want := string(conffiles), "/etc/audit/plugins.d/tacagent.conf\n/etc/profile.d/tacagent.sh\n/etc/tacagent/tacagent.yaml\n"; got != want {
		t.Errorf("conffiles:\n%s\nwant:\n%s", got, want)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if fi, err := os.Stat(filepath.Join(ctl, s)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("maintainer script %s: %v", s, err)
		}
	}

	listing, err := exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"-rwxr-xr-x root/root .* ./usr/sbin/tacagent$",
		"-rw-r--r-- root/root .* ./usr/lib/x86_64-linux-gnu/security/pam_tacagent.so$",
		"-rw-r----- root/root .* ./etc/tacagent/tacagent.yaml$",
		"drwxr-x--- root/root .* ./etc/audit/$",
		"-rw-r--r-- root/root .* ./usr/share/man/man8/tacagent-run.8.gz$",
		"-rw-r--r-- root/root .* ./usr/share/man/man5/tacagent.yaml.5.gz$",
		"-rw-r--r-- root/root .* ./usr/share/pam-configs/tacagent$",
		"-rw-r--r-- root/root .* ./usr/share/doc/tacagent/changelog.gz$",
	} {
		if !matchLine(string(listing), want) {
			t.Errorf("no line %q in\n%s", want, listing)
		}
	}
	if matchLine(string(listing), "libnss_tacagent") {
		t.Error("the NSS module is packaged though none was given")
	}

	data := filepath.Join(dir, "data")
	if out, err := exec.Command("dpkg-deb", "-x", deb, data).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	gz, err := os.ReadFile(filepath.Join(data, "usr/share/man/man8/tacagent-run.8.gz"))
	if err != nil {
		t.Fatal(err)
	}
	// gzip -9n: no name, no time, and the "maximum compression" flag (XFL 2).
	if len(gz) < 10 || gz[8] != 2 || !bytes.Equal(gz[4:8], []byte{0, 0, 0, 0}) || gz[3]&0x08 != 0 {
		t.Errorf("man page header % x is not gzip -9n's", gz[:10])
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	if page, _ := io.ReadAll(zr); !strings.Contains(string(page), "man8/tacagent-run.8") {
		t.Errorf("man page content %q", page)
	}
	copyright, err := os.ReadFile(filepath.Join(data, "usr/share/doc/tacagent/copyright"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n",
		"Files: *\n",
		"Files: vendor/github.com/rs/zerolog/*\nCopyright: Copyright (c) 2017 Olivier Poitrey\nLicense: Expat-github-com-rs-zerolog\n",
		"\nLicense: Expat-github-com-rs-zerolog\n MIT License\n .\n Copyright (c) 2017 Olivier Poitrey\n .\n Permission is hereby granted",
		"Files: vendor/github.com/spf13/cobra/*\n",
		"License: Apache-2.0\n",
		"/usr/share/common-licenses/Apache-2.0",
	} {
		if !strings.Contains(string(copyright), want) {
			t.Errorf("copyright has no %q", want)
		}
	}
}

func matchLine(text, pattern string) bool {
	for _, l := range strings.Split(text, "\n") {
		if ok, _ := regexpMatch(pattern, strings.Join(strings.Fields(l), " ")); ok {
			return true
		}
	}
	return false
}

func regexpMatch(pattern, s string) (bool, error) { return regexp.MatchString(pattern, s) }
