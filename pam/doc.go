// Package pam holds the tests of pam_tacagent.so, tacagent's PAM module. The module itself is C (src/,
// built by the Makefile beside this file; docs/pam.md says why it is not Go): this package has no Go API.
// Its tests build the module, the tacagent binary and two small C programs, run the daemon against the
// project's test server, write /etc/pam.d service files and drive real PAM stacks with pamtester.
//
// It must not import the daemon, the agent or the actors: it talks to them as a host process would,
// through PAM and the local API's socket.
package pam
