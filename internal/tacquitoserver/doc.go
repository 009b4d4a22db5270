// Package tacquitoserver runs tacquito's TACACS+ server (github.com/facebookincubator/tacquito, an
// independent implementation) in-process on loopback. `tacagent demo` uses it as the real server of its
// round trip, and the end-to-end tests use it as an interop peer.
//
// It builds tacquito's objects by hand instead of using its config loader, whose update goroutine never
// exits, and it closes accepted connections itself on Close, because tacquito's server only notices
// cancellation between packets (its read deadline is a fixed 15 s).
//
// Known limits of tacquito, which this package does not hide: no CHAP or MS-CHAP (it answers ERROR), no
// GETDATA prompts, command authorization returns no AV pairs (session authorization does), and an idle
// connection is closed after 15 s.
package tacquitoserver
