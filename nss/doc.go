// Package nss holds the tests of libnss_tacagent.so.2, tacagent's NSS module. The module itself is C (src/,
// built by the Makefile beside this file; docs/nss.md): this package has no Go API. Its tests build the
// module, the tacagent binary, pam_tacagent.so and the bash hook, run the daemon against the project's test
// server, and look users up as a host process does: through the module's entry points, through getent and
// id, and through a real sshd, each inside a private mount namespace (unshare) whose nsswitch.conf names
// the module, so the host's own configuration is never touched.
//
// It must not import the daemon, the agent or the actors: it talks to them through the local API's socket.
package nss
