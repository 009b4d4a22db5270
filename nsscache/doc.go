// Package nsscache answers the NSS module's passwd lookups (libnss_tacagent.so.2, docs/nss.md): it maps a
// user the TACACS+ servers know to a local template account chosen by the privilege level the servers
// grant, and keeps the answers in a cache so that a lookup never waits on a server.
//
// A name is learned with one authorization request (service=shell, empty cmd: the shell start of RFC 8907
// section 8.2), made through a LookupFunc the daemon provides. A permit maps the returned priv-lvl to the
// first template whose range covers it; a FAIL, or a level no template covers, is a negative entry. Positive
// and negative entries have their own TTLs; a hit on a positive entry past its refresh point starts a
// background refresh and is answered from the cache at once. A caller waits for a lookup only until its
// own deadline (the module's, 50 ms by default); the lookup goes on in the background and fills the cache.
//
// Lookups in flight are bounded (MaxLookups), and each caller uid other than root may start at most
// CallerLookups per second: a local user cannot make the agent flood the servers with names.
//
// It imports the codec (for the error taxonomy) and metrics; never the agent, the actors or the daemon.
package nsscache
