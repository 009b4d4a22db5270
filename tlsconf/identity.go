package tlsconf

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// ReferenceID is what the agent expects the server to be (RFC 9525 section 6.1): a DNS domain name or an
// IP address. Build it with ParseReferenceID.
type ReferenceID struct {
	DNS string     // lower case, no trailing dot; "" when IP is set
	IP  netip.Addr // valid for an IP reference
}

func (r ReferenceID) String() string {
	if r.IP.IsValid() {
		return r.IP.String()
	}
	return r.DNS
}

// ParseReferenceID checks a configured server name (or an address's host). DNS names must be ASCII
// (A-labels for internationalized names, RFC 9525 section 6.2), without wildcards.
func ParseReferenceID(s string) (ReferenceID, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	if s == "" {
		return ReferenceID{}, fmt.Errorf("empty server name")
	}
	if ip, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		if ip.Zone() != "" {
			return ReferenceID{}, fmt.Errorf("server name %q: an IP reference identity takes no zone", s)
		}
		return ReferenceID{IP: ip.Unmap()}, nil
	}
	if len(s) > 253 {
		return ReferenceID{}, fmt.Errorf("server name is longer than 253 characters")
	}
	for _, label := range strings.Split(s, ".") {
		if !validLabel(label) {
			return ReferenceID{}, fmt.Errorf("server name %q: %q is not a DNS label (letters, digits, hyphens; A-labels for international names)", s, label)
		}
	}
	return ReferenceID{DNS: strings.ToLower(s)}, nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// VerifyIdentity checks the leaf certificate's presented identifiers against ref (RFC 9525 section 6):
// only subjectAltName entries of the reference's type count (dNSName for a DNS reference, iPAddress for an
// IP reference); the subject common name is never consulted. It returns nil on a match.
func VerifyIdentity(leaf *x509.Certificate, ref ReferenceID) error {
	if ref.IP.IsValid() {
		for _, ip := range leaf.IPAddresses {
			if a, ok := netip.AddrFromSlice(ip); ok && a.Unmap() == ref.IP {
				return nil
			}
		}
		return &IdentityError{Ref: ref.String(), Presented: presented(leaf)}
	}
	for _, name := range leaf.DNSNames {
		if MatchDNSID(name, ref.DNS) {
			return nil
		}
	}
	return &IdentityError{Ref: ref.String(), Presented: presented(leaf)}
}

// MatchDNSID reports whether the presented DNS-ID matches the reference DNS name (already lower case,
// no trailing dot). Comparison is case-insensitive ASCII. A wildcard matches only when it is the whole
// leftmost label ("*.example.com"), stands for exactly one label, and is followed by at least two labels
// (no "*.com"); a partial-label wildcard ("w*.example.com", "*w.example.com") or one in any other position
// never matches (RFC 9525 section 6.3).
func MatchDNSID(presentedID, ref string) bool {
	p := strings.ToLower(strings.TrimSuffix(presentedID, "."))
	if p == "" || ref == "" || !ascii(p) {
		return false
	}
	if !strings.Contains(p, "*") {
		return p == ref
	}
	rest, ok := strings.CutPrefix(p, "*.")
	if !ok || strings.Contains(rest, "*") || strings.Count(rest, ".") < 1 {
		return false
	}
	first, tail, ok := strings.Cut(ref, ".")
	return ok && first != "" && tail == rest
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] <= 0x20 {
			return false
		}
	}
	return true
}

// presented lists the SAN identifiers of a certificate for an error message (they are public).
func presented(leaf *x509.Certificate) []string {
	out := make([]string, 0, len(leaf.DNSNames)+len(leaf.IPAddresses))
	for _, n := range leaf.DNSNames {
		out = append(out, "DNS:"+n)
	}
	for _, ip := range leaf.IPAddresses {
		out = append(out, "IP:"+net.IP(ip).String())
	}
	return out
}

// IdentityError says that the certificate does not name the server.
type IdentityError struct {
	Ref       string
	Presented []string
}

func (e *IdentityError) Error() string {
	if len(e.Presented) == 0 {
		return fmt.Sprintf("certificate has no DNS or IP subjectAltName; expected %s (the subject CN is not used, RFC 9525)", e.Ref)
	}
	return fmt.Sprintf("certificate names %s, not %s (RFC 9525: subjectAltName only)", strings.Join(e.Presented, ", "), e.Ref)
}
