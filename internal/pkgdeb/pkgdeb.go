package pkgdeb

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// Inputs are what the package is made of: files make built, and the source tree.
type Inputs struct {
	Repo      string // the source tree: contrib/, examples/, docs/, README.md
	Binary    string // the tacagent binary
	PAMModule string // pam_tacagent.so
	BashHook  string // tacagent_hook.so, the bash loadable builtin
	NSSModule string // libnss_tacagent.so.2; "" when it is not built
	GenDir    string // what `tacagent gendocs` wrote: man8/*.8, completion/{tacagent.bash,_tacagent}
	Stage     string // a scratch directory for the compressed and generated files

	Version    string    // the Debian version (a digit first)
	Arch       string    // the Debian architecture: amd64
	Multiarch  string    // the multiarch tuple: x86_64-linux-gnu
	Depends    []string  // the shared library dependencies (dpkg-shlibdeps) and the others
	Maintainer string    // "Name <address>"
	Date       time.Time // the files' mtime and the changelog's date (SOURCE_DATE_EPOCH)
	Commit     string    // the VCS revision, for the changelog
	Compress   string    // the data archive's compression: xz (the default), gzip, zstd or none
	ModCache   string    // the Go module cache (go env GOMODCACHE): the licenses of the linked modules
}

// Description is the package's description: a synopsis line, then the long description.
const Description = `TACACS+ client agent: PAM, NSS, bash and auditd front ends
 tacagent authenticates logins (PAM), authorizes commands (a bash builtin)
 and sends accounting records (an auditd plugin) to TACACS+ servers
 (RFC 8907) over persistent, multiplexed TCP or TLS 1.3 (RFC 9887)
 connections, with failover, dead-time and a durable accounting spool.
 .
 Nothing is turned on by installing it: the daemon starts once configured
 (/etc/tacagent/tacagent.yaml), PAM uses it after pam-auth-update --enable
 tacagent, and the bash hook runs once /etc/tacagent/bash.conf exists.`

// Build writes the .deb to w.
func Build(in Inputs, w io.Writer) error {
	if err := in.check(); err != nil {
		return err
	}
	contents, err := in.contents()
	if err != nil {
		return err
	}
	scripts := filepath.Join(in.Repo, "contrib", "debian")
	info := &nfpm.Info{
		Name:          "tacagent",
		Arch:          in.Arch,
		Platform:      "linux",
		Version:       in.Version,
		VersionSchema: "none", // the Debian version as given, not reparsed as semver
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    in.Maintainer,
		Description:   Description,
		Homepage:      "https://github.com/tacagent/tacagent",
		MTime:         in.Date,
		Overridables: nfpm.Overridables{
			Depends:    append(append([]string(nil), in.Depends...), "adduser"),
			Recommends: []string{"libpam-runtime"},
			Suggests:   []string{"auditd", "bash-completion"},
			Contents:   contents,
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(scripts, "postinst"),
				PreRemove:   filepath.Join(scripts, "prerm"),
				PostRemove:  filepath.Join(scripts, "postrm"),
			},
			Deb: nfpm.Deb{Compression: in.compression()},
		},
	}
	if in.NSSModule != "" {
		// A shared library in the multiarch directory: ldconfig's cache must know it.
		info.Deb.Triggers.ActivateNoAwait = []string{"ldconfig"}
	}
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return err
	}
	return deb.Default.Package(info, w)
}

func (in Inputs) compression() string {
	if in.Compress == "" {
		return "xz"
	}
	return in.Compress
}

func (in Inputs) check() error {
	var missing []string
	for _, f := range []string{in.Binary, in.PAMModule, in.BashHook, filepath.Join(in.GenDir, "man8", "tacagent.8")} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, err.Error())
		}
	}
	if !regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`).MatchString(in.Version) {
		missing = append(missing, fmt.Sprintf("version %q is not a native Debian version", in.Version))
	}
	if in.Arch == "" || in.Multiarch == "" || in.Maintainer == "" || in.Date.IsZero() || in.Stage == "" {
		missing = append(missing, "the architecture, multiarch tuple, maintainer, date and stage directory are required")
	}
	if len(missing) > 0 {
		return errors.New("pkgdeb: " + strings.Join(missing, "; "))
	}
	return nil
}

// entry is one file of the package.
type entry struct {
	src, dst string
	mode     os.FileMode
	conffile bool
}

// contents lists every file with its owner (root:root), mode and mtime; conffiles are dpkg conffiles.
func (in Inputs) contents() (files.Contents, error) {
	repo := func(p string) string { return filepath.Join(in.Repo, p) }
	lib := "/usr/lib/" + in.Multiarch
	doc := "/usr/share/doc/tacagent"
	es := []entry{
		{in.Binary, "/usr/sbin/tacagent", 0o755, false},
		{in.PAMModule, lib + "/security/pam_tacagent.so", 0o644, false},
		{in.BashHook, "/usr/lib/tacagent/tacagent_hook.so", 0o644, false},
		{repo("contrib/bash/tacagent.sh"), "/usr/share/tacagent/bash/tacagent.sh", 0o644, false},
		{repo("contrib/debian/profile.sh"), "/etc/profile.d/tacagent.sh", 0o644, true},
		{repo("contrib/audit/plugins.d/tacagent.conf"), "/etc/audit/plugins.d/tacagent.conf", 0o640, true},
		{repo("contrib/audit/rules.d/tacagent.rules"), doc + "/examples/audit/tacagent.rules", 0o644, false},
		{repo("contrib/systemd/tacagent.service"), "/lib/systemd/system/tacagent.service", 0o644, false},
		// The daemon (root) reads it; others may not: it names the servers and the key files. It holds
		// no key (keys are refused in it): those are in key files of mode 0600 or /etc/default/tacagent.
		{repo("contrib/debian/tacagent.yaml"), "/etc/tacagent/tacagent.yaml", 0o640, true},
		{repo("contrib/debian/pam-config"), "/usr/share/pam-configs/tacagent", 0o644, false},
		{filepath.Join(in.GenDir, "completion", "tacagent.bash"), "/usr/share/bash-completion/completions/tacagent", 0o644, false},
		{filepath.Join(in.GenDir, "completion", "_tacagent"), "/usr/share/zsh/vendor-completions/_tacagent", 0o644, false},
		{repo("README.md"), doc + "/README.md", 0o644, false},
		{repo("examples/tacagent.yaml"), doc + "/examples/tacagent.yaml", 0o644, false},
		{repo("contrib/debian/bash.conf.example"), doc + "/examples/bash.conf", 0o644, false},
	}
	if in.NSSModule != "" {
		es = append(es, entry{in.NSSModule, lib + "/libnss_tacagent.so.2", 0o644, false})
	}
	if fi, err := os.Stat(repo("contrib/debian/lintian-overrides")); err == nil && fi.Size() > 0 {
		es = append(es, entry{repo("contrib/debian/lintian-overrides"), "/usr/share/lintian/overrides/tacagent", 0o644, false})
	}
	docs, err := filepath.Glob(repo("docs/*.md"))
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		es = append(es, entry{d, doc + "/docs/" + filepath.Base(d), 0o644, false})
	}

	// Man pages: tacagent(8) and tacagent-COMMAND(8) from the command tree, the other two written by hand.
	pages, err := filepath.Glob(filepath.Join(in.GenDir, "man8", "*.8"))
	if err != nil {
		return nil, err
	}
	pages = append(pages, repo("contrib/man/pam_tacagent.8"), repo("contrib/man/tacagent.yaml.5"))
	for _, p := range pages {
		gz := filepath.Join(in.Stage, "man", filepath.Base(p)+".gz")
		if err := gzipFile(p, gz); err != nil {
			return nil, err
		}
		section := p[strings.LastIndexByte(p, '.')+1:]
		es = append(es, entry{gz, "/usr/share/man/man" + section + "/" + filepath.Base(gz), 0o644, false})
	}

	copyright, err := in.copyright()
	if err != nil {
		return nil, err
	}
	changelog := filepath.Join(in.Stage, "changelog.gz")
	if err := gzipBytes(in.changelog(), changelog); err != nil {
		return nil, err
	}
	es = append(es,
		entry{copyright, doc + "/copyright", 0o644, false},
		entry{changelog, doc + "/changelog.gz", 0o644, false},
	)

	var cs files.Contents
	for _, e := range es {
		typ := files.TypeFile
		if e.conffile {
			typ = files.TypeConfig // a dpkg conffile: an administrator's changes are kept on upgrade
		}
		cs = append(cs, &files.Content{Source: e.src, Destination: e.dst, Type: typ,
			FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: e.mode, MTime: in.Date}})
	}
	// /etc/tacagent belongs to the package (the operator's key files go in it); /etc/audit and its
	// plugins.d have auditd's modes (dpkg leaves an existing directory as it is; where auditd comes later,
	// they are already right).
	for d, mode := range map[string]os.FileMode{"/etc/tacagent": 0o755, "/etc/audit": 0o750, "/etc/audit/plugins.d": 0o750} {
		cs = append(cs, &files.Content{Destination: d, Type: files.TypeDir,
			FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode, MTime: in.Date}})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Destination < cs[j].Destination })
	return cs, nil
}

// gzipFile compresses src into dst as gzip -9n does: best compression, no name, no timestamp.
func gzipFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return gzipBytes(b, dst)
}

func gzipBytes(b []byte, dst string) error {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(b); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, buf.Bytes(), 0o644)
}

// changelog is the Debian changelog of this build: one entry naming the commit it was built from.
func (in Inputs) changelog() []byte {
	commit := in.Commit
	if commit == "" {
		commit = "unknown"
	}
	return fmt.Appendf(nil, "tacagent (%s) unstable; urgency=medium\n\n  * Built from revision %s.\n    The repository's history has the changes.\n\n -- %s  %s\n",
		in.Version, commit, in.Maintainer, in.Date.UTC().Format(time.RFC1123Z))
}
