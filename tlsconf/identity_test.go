package tlsconf_test

import (
	"crypto/x509"
	"encoding/base64"
	"net"
	"testing"

	"github.com/tacagent/tacagent/tlsconf"
	"github.com/tacagent/tacagent/tlsconf/testca"
)

// TestMatchDNSID is RFC 9525 section 6.3's rules, each case a rule.
func TestMatchDNSID(t *testing.T) {
	cases := []struct {
		presented, ref string
		want           bool
	}{
		{"tacacs.example.net", "tacacs.example.net", true},
		{"TACACS.Example.NET", "tacacs.example.net", true},  // case-insensitive
		{"tacacs.example.net.", "tacacs.example.net", true}, // trailing dot
		{"tacacs.example.net", "tacacs2.example.net", false},
		{"*.example.net", "tacacs.example.net", true},             // whole leftmost label
		{"*.example.net", "a.b.example.net", false},               // one label only
		{"*.example.net", "example.net", false},                   // not zero labels
		{"*.net", "example.net", false},                           // not over a single remaining label
		{"t*.example.net", "tacacs.example.net", false},           // partial-label wildcard
		{"*s.example.net", "tacacs.example.net", false},           // partial-label wildcard
		{"tacacs.*.net", "tacacs.example.net", false},             // not leftmost
		{"*.*.net", "a.example.net", false},                       // two wildcards
		{"*", "tacacs", false},                                    // bare wildcard
		{"tacacs.example.net", "", false},                         // no reference
		{"", "tacacs.example.net", false},                         // empty presented
		{"tacacs.exam\u00e9ple.net", "tacacs.example.net", false}, // U-label: not ASCII
	}
	for _, c := range cases {
		if got := tlsconf.MatchDNSID(c.presented, c.ref); got != c.want {
			t.Errorf("MatchDNSID(%q, %q) = %v, want %v", c.presented, c.ref, got, c.want)
		}
	}
}

// TestVerifyIdentity covers the identifier types: DNS references match dNSName SANs only, IP references
// iPAddress SANs only, and the subject CN is never used.
func TestVerifyIdentity(t *testing.T) {
	ca, err := testca.New("id CA")
	if err != nil {
		t.Fatal(err)
	}
	ref := func(s string) tlsconf.ReferenceID {
		r, err := tlsconf.ParseReferenceID(s)
		if err != nil {
			t.Fatalf("ParseReferenceID(%q): %v", s, err)
		}
		return r
	}
	cnOnly := ca.MustIssue(testca.Leaf{CommonName: "tacacs.example.net"}).Cert
	dns := ca.MustIssue(testca.Leaf{CommonName: "other", DNSNames: []string{"tacacs.example.net", "*.pool.example.net"}}).Cert
	ipAsDNS := ca.MustIssue(testca.Leaf{DNSNames: []string{"192.0.2.7"}}).Cert
	ip := ca.MustIssue(testca.Leaf{IPs: []net.IP{net.ParseIP("192.0.2.7"), net.ParseIP("2001:db8::7")}}).Cert
	cases := []struct {
		name string
		cert any
		ref  string
		ok   bool
	}{
		{"cn is not an identity", cnOnly, "tacacs.example.net", false},
		{"dns san", dns, "tacacs.example.net", true},
		{"dns san is not the cn", dns, "other", false},
		{"wildcard san", dns, "a.pool.example.net", true},
		{"ip reference vs dns san holding the ip", ipAsDNS, "192.0.2.7", false},
		{"ip san", ip, "192.0.2.7", true},
		{"ipv6 san", ip, "2001:db8::7", true},
		{"ipv6 bracketed", ip, "[2001:db8::7]", true},
		{"other ip", ip, "192.0.2.8", false},
		{"dns reference vs ip san", ip, "tacacs.example.net", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := tlsconf.VerifyIdentity(certOf(c.cert), ref(c.ref))
			if (err == nil) != c.ok {
				t.Fatalf("VerifyIdentity(%s) = %v, want ok=%v", c.ref, err, c.ok)
			}
		})
	}
}

func TestParseReferenceID(t *testing.T) {
	for _, bad := range []string{"", "*.example.net", "exa mple.net", "-a.example.net", "t\u00e4cacs.example.net", "fe80::1%eth0"} {
		if _, err := tlsconf.ParseReferenceID(bad); err == nil {
			t.Errorf("ParseReferenceID(%q) accepted", bad)
		}
	}
	r, err := tlsconf.ParseReferenceID("TACACS.Example.net.")
	if err != nil || r.DNS != "tacacs.example.net" {
		t.Fatalf("ParseReferenceID = %+v, %v", r, err)
	}
	r, err = tlsconf.ParseReferenceID("::ffff:192.0.2.1")
	if err != nil || r.String() != "192.0.2.1" {
		t.Fatalf("mapped IPv4 = %+v, %v", r, err)
	}
}

func certOf(v any) *x509.Certificate { return v.(*x509.Certificate) }

// TestParsePin: both spellings, and a base64 value that itself starts with '/'.
func TestParsePin(t *testing.T) {
	raw := make([]byte, 32)
	raw[0] = 0xfc // base64 starts with '/'
	b64 := base64.StdEncoding.EncodeToString(raw)
	if b64[0] != '/' {
		t.Fatalf("test value %q does not start with '/'", b64)
	}
	for _, p := range []string{"sha256/" + b64, "sha256//" + b64} {
		got, err := tlsconf.ParsePin(p)
		if err != nil || got[0] != 0xfc {
			t.Fatalf("ParsePin(%q) = %x, %v", p, got, err)
		}
	}
	for _, bad := range []string{"", "sha1/" + b64, "sha256/" + b64[:40], "sha256/!!!"} {
		if _, err := tlsconf.ParsePin(bad); err == nil {
			t.Errorf("ParsePin(%q) accepted", bad)
		}
	}
}
