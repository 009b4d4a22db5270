// Command mkdeb builds tacagent's Debian package (package pkgdeb, docs/packaging.md). `make deb` runs it
// with the files it built:
//
//	go run ./internal/pkgdeb/mkdeb -version 0.1.0 -arch amd64 -multiarch x86_64-linux-gnu \
//	    -binary build/tacagent -pam pam/pam_tacagent.so -bash-hook bash/tacagent_hook.so \
//	    -gendir build/gen -out dist
//
// It asks dpkg-shlibdeps for the dependencies of the shared objects it packages, and writes
// OUT/tacagent_VERSION_ARCH.deb.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tacagent/tacagent/internal/pkgdeb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
}

func run() error {
	var in pkgdeb.Inputs
	var out string
	flag.StringVar(&in.Repo, "repo", ".", "the source tree")
	flag.StringVar(&in.Version, "version", "", "the Debian version")
	flag.StringVar(&in.Arch, "arch", "amd64", "the Debian architecture")
	flag.StringVar(&in.Multiarch, "multiarch", "", "the multiarch tuple (dpkg-architecture -qDEB_HOST_MULTIARCH)")
	flag.StringVar(&in.Binary, "binary", "", "the tacagent binary")
	flag.StringVar(&in.PAMModule, "pam", "pam/pam_tacagent.so", "the PAM module")
	flag.StringVar(&in.BashHook, "bash-hook", "bash/tacagent_hook.so", "the bash builtin")
	flag.StringVar(&in.NSSModule, "nss", "", "the NSS module (optional)")
	flag.StringVar(&in.GenDir, "gendir", "", "the output of `tacagent gendocs`")
	flag.StringVar(&in.Maintainer, "maintainer", "tacagent developers <tacagent@example.org>", "the Maintainer field")
	flag.StringVar(&in.Commit, "commit", "", "the VCS revision, for the changelog")
	flag.StringVar(&out, "out", "dist", "the output directory")
	flag.Parse()

	in.Date = time.Now().UTC().Truncate(time.Second)
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		in.Date = time.Unix(sec, 0).UTC()
	}
	mc, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		return fmt.Errorf("go env GOMODCACHE: %w", err)
	}
	in.ModCache = strings.TrimSpace(string(mc))
	stage, err := os.MkdirTemp("", "mkdeb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	in.Stage = stage
	objs := []string{in.Binary, in.PAMModule, in.BashHook}
	if in.NSSModule != "" {
		objs = append(objs, in.NSSModule)
	}
	deps, err := shlibdeps(stage, objs)
	if err != nil {
		return err
	}
	in.Depends = deps
	// Stripped copies, as dh_strip makes them (Debian ships no symbol tables in binary packages).
	for _, p := range []*string{&in.Binary, &in.PAMModule, &in.BashHook, &in.NSSModule} {
		if *p == "" {
			continue
		}
		if *p, err = strip(stage, *p); err != nil {
			return err
		}
	}

	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	path := filepath.Join(out, fmt.Sprintf("tacagent_%s_%s.deb", in.Version, in.Arch))
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	err = pkgdeb.Build(in, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(path+".tmp", path)
	}
	if err != nil {
		os.Remove(path + ".tmp")
		return err
	}
	fmt.Println(path)
	return nil
}

// strip writes a stripped copy of an ELF object into stage/strip and returns its path: the sections
// dh_strip removes, and the symbols not needed for relocation of a shared object.
func strip(stage, obj string) (string, error) {
	dst := filepath.Join(stage, "strip", filepath.Base(obj))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	args := []string{"--remove-section=.comment", "--remove-section=.note", "-o", dst}
	if strings.Contains(filepath.Base(obj), ".so") {
		args = append(args, "--strip-unneeded")
	}
	if out, err := exec.Command("strip", append(args, obj)...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("strip %s: %w: %s", obj, err, out)
	}
	return dst, nil
}

// shlibdeps asks dpkg-shlibdeps which packages the shared objects need (libc6, libpam0g, with their
// minimum versions), as debhelper's ${shlibs:Depends}. It wants a debian/control, so it runs in a scratch
// directory that has one. The bash builtin's undefined symbols are bash's own (it is loaded into bash):
// -e with --ignore-missing-info would hide real problems, so only the libraries it names count.
func shlibdeps(stage string, objs []string) ([]string, error) {
	dir := filepath.Join(stage, "shlibdeps")
	if err := os.MkdirAll(filepath.Join(dir, "debian"), 0o755); err != nil {
		return nil, err
	}
	control := "Source: tacagent\n\nPackage: tacagent\nArchitecture: any\n"
	if err := os.WriteFile(filepath.Join(dir, "debian", "control"), []byte(control), 0o644); err != nil {
		return nil, err
	}
	args := []string{"-O", "--warnings=0"}
	for _, o := range objs {
		abs, err := filepath.Abs(o)
		if err != nil {
			return nil, err
		}
		args = append(args, "-e"+abs)
	}
	cmd := exec.Command("dpkg-shlibdeps", args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr // its warning that the objects are not in a package tree yet is expected
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("dpkg-shlibdeps (package dpkg-dev): %w: %s", err, stderr.String())
	}
	// shlibs:Depends=libc6 (>= 2.34), libpam0g (>= 0.99.7.1)
	_, v, ok := strings.Cut(strings.TrimSpace(string(b)), "shlibs:Depends=")
	if !ok {
		return nil, fmt.Errorf("dpkg-shlibdeps said %q", b)
	}
	var deps []string
	for _, d := range strings.Split(v, ",") {
		if d = strings.TrimSpace(d); d != "" {
			deps = append(deps, d)
		}
	}
	return deps, nil
}
