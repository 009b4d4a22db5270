package pkgdeb

import (
	"debug/buildinfo"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
)

// tacagentLicense is the license paragraph of tacagent's own files. The repository carries no license
// file yet; the package says so rather than invent one (docs/packaging.md, "Gaps").
const tacagentLicense = `License: tacagent-unlicensed
 The tacagent source tree carries no license yet. Until its authors grant
 one, no rights beyond those the law gives are granted; do not redistribute
 this package outside the organisation that built it.`

// copyright writes the machine-readable copyright file (DEP-5): tacagent's files, then one paragraph per
// Go module linked into the binary (read from the binary's build information) with that module's license
// from the module cache. Apache-2.0 and MPL-2.0 refer to /usr/share/common-licenses; other texts are
// quoted whole.
func (in Inputs) copyright() (string, error) {
	bi, err := buildinfo.ReadFile(in.Binary)
	if err != nil {
		return "", fmt.Errorf("pkgdeb: build information of %s: %w", in.Binary, err)
	}
	var b strings.Builder
	b.WriteString("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n")
	b.WriteString("Upstream-Name: tacagent\nSource: https://github.com/tacagent/tacagent\n\n")
	b.WriteString("Files: *\nCopyright: the tacagent authors\n" + tacagentLicense + "\n")
	standalone := map[string]string{} // short name -> text, for the licenses quoted whole
	for _, m := range bi.Deps {
		mod := m
		if m.Replace != nil {
			mod = m.Replace
		}
		dir := filepath.Join(in.ModCache, escapePath(mod.Path)+"@"+mod.Version)
		text, err := licenseText(dir)
		if err != nil {
			return "", fmt.Errorf("pkgdeb: the license of %s %s: %w", mod.Path, mod.Version, err)
		}
		name, common := classify(text)
		if !common {
			// Texts that differ only in their copyright line share a short name per module.
			name = name + "-" + strings.NewReplacer("/", "-", ".", "-").Replace(m.Path)
			standalone[name] = text
		}
		fmt.Fprintf(&b, "\nFiles: vendor/%s/*\nCopyright: %s\nLicense: %s\nComment: Go module %s %s, linked into /usr/sbin/tacagent.\n",
			m.Path, copyrightLines(text, m.Path), name, mod.Path, mod.Version)
		if common {
			fmt.Fprintf(&b, " On Debian systems the full text of the license is in\n /usr/share/common-licenses/%s.\n", name)
		}
	}
	names := make([]string, 0, len(standalone))
	for n := range standalone {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "\nLicense: %s\n%s", n, indent(standalone[n]))
	}
	out := filepath.Join(in.Stage, "copyright")
	if err := os.MkdirAll(in.Stage, 0o755); err != nil {
		return "", err
	}
	return out, os.WriteFile(out, []byte(b.String()), 0o644)
}

// licenseText reads a module's license file.
func licenseText(dir string) (string, error) {
	for _, n := range []string{"LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "COPYING", "LICENSE-MIT"} {
		if b, err := os.ReadFile(filepath.Join(dir, n)); err == nil {
			return string(b), nil
		}
	}
	return "", fmt.Errorf("no license file in %s", dir)
}

// classify names a license text; common says that Debian ships it in /usr/share/common-licenses.
func classify(t string) (name string, common bool) {
	switch {
	case strings.Contains(t, "Apache License") && strings.Contains(t, "Version 2.0"):
		return "Apache-2.0", true
	case strings.Contains(t, "Mozilla Public License") && strings.Contains(t, "2.0"):
		return "MPL-2.0", true
	case strings.Contains(t, "Permission is hereby granted, free of charge"):
		return "Expat", false
	case strings.Contains(t, "Redistribution and use in source and binary forms") && strings.Contains(t, "Neither the name"):
		return "BSD-3-clause", false
	case strings.Contains(t, "Redistribution and use in source and binary forms"):
		return "BSD-2-clause", false
	case strings.Contains(t, "Permission to use, copy, modify, and/or distribute"), strings.Contains(t, "Permission to use, copy, modify, and distribute"):
		return "ISC", false
	}
	return "other", false
}

// copyrightLines are the license text's "Copyright ..." lines, or its authors by the module's name.
func copyrightLines(t, path string) string {
	var lines []string
	for _, l := range strings.Split(t, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(strings.ToLower(l), "copyright (c)") || strings.HasPrefix(l, "Copyright 2") || strings.HasPrefix(l, "Copyright 1") ||
			(strings.HasPrefix(l, "Copyright ") && strings.Contains(l, "Authors")) {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return "the authors of " + path
	}
	return strings.Join(lines, "\n ")
}

// indent makes a license text a DEP-5 continuation: one space before each line, " ." for a blank one.
func indent(t string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(strings.ReplaceAll(t, "\r", ""), "\n "), "\n") {
		l = strings.TrimRightFunc(l, unicode.IsSpace)
		if l == "" {
			b.WriteString(" .\n")
			continue
		}
		b.WriteString(" " + l + "\n")
	}
	return b.String()
}

// escapePath is the module cache's spelling of a module path: an upper-case letter becomes "!" and the
// letter in lower case.
func escapePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteRune('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
