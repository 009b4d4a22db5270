// Package pkgdeb builds tacagent's Debian package (docs/packaging.md) with nfpm used as a library: the
// file list with its owners and modes, the conffiles, the maintainer scripts, the man pages (gzip -9n),
// the shell completion, the copyright file (tacagent's, then the license of every Go module linked into
// the binary) and the changelog. Its program is ./mkdeb (`make deb`); the install, pamtester and purge
// test is install_test.go (`make deb-test`).
//
// It packages files that make built; it imports none of the agent's packages.
package pkgdeb
