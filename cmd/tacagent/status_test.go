package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tacagent/tacagent/localapi"
)

// TestPrintStatus: names and addresses, state and since when, in flight and queued, the dead-time, TLS
// details and the last error with its time; every duration with a unit.
func TestPrintStatus(t *testing.T) {
	now := time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC)
	st := &localapi.Status{Version: "v1.2.3", APIVersion: "v1", Pending: 3, Servers: []localapi.ServerStatus{
		{Name: "primary", Addr: "192.0.2.1:300", Groups: []string{"core", "acct"}, State: "up", Since: now.Add(-192 * time.Second),
			SingleConnect: true, InFlight: 2, Queued: 1,
			TLS: &localapi.TLSInfo{Version: "TLS 1.3", PeerIdentity: "DNS:tacacs.example.net", PeerExpiry: now.Add(85*24*time.Hour + 2*time.Hour),
				ClientExpiry: now.Add(-3 * time.Hour), At: now.Add(-time.Minute)}},
		{Name: "backup", Addr: "192.0.2.2:49", Groups: []string{"core"}, State: "dead", Since: now.Add(-12 * time.Second),
			DeadUntil: now.Add(18 * time.Second), LastError: "server unreachable: connect: connection refused", LastErrorAt: now.Add(-12 * time.Second)},
	}}
	var b bytes.Buffer
	printStatus(&b, st, now)
	out := b.String()
	for _, want := range []string{
		"tacagent v1.2.3 (API v1): 3 requests pending",
		"SERVER", "ADDRESS", "SINCE", "IN-FLIGHT", "QUEUED",
		"primary  192.0.2.1:300  core,acct  up     3m12s ago", // name, address, groups, state, since with a unit
		"backup   192.0.2.2:49   core       dead   12s ago",
		"TLS 1.3",
		"backup: dead-timed until 2026-12-05T21:00:18Z (in 18s)",
		"primary: TLS 1.3 with DNS:tacacs.example.net, server certificate expires 2027-02-28T23:00:00Z",
		"(in 85d2h), client certificate expires 2026-12-05T18:00:00Z (EXPIRED 3h0m0s ago), handshake 1m0s ago",
		"backup: last error 12s ago (2026-12-05T20:59:48Z): server unreachable: connect: connection refused",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	// The in-flight and queued columns carry the counts.
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "primary ") && !strings.Contains(strings.Join(strings.Fields(line), " "), "yes 2 1 TLS 1.3") {
			t.Errorf("primary's row lacks single-connect, in flight 2, queued 1: %q", line)
		}
	}
}
