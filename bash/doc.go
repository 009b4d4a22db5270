// Package bash holds the tests of tacagent's bash front end (docs/bash.md). The front end itself is C and
// shell: tacagent_hook.so, a bash loadable builtin called from a DEBUG trap under extdebug
// (src/tacagent_builtin.c); tacagent_plugin.so, a plugin for bash with SONiC's plugin patch
// (src/plugin.c); and the profile script ../contrib/bash/tacagent.sh that installs the hook, with a
// fallback to `tacagent authorize`. This package has no Go API. Its tests build them with the Makefile
// beside this file, run the daemon against the project's test server, and drive real interactive bash
// through a pseudo-terminal; every test checks what the TACACS+ server received.
//
// It must not import the daemon, the agent or the actors: it talks to them as bash does, through the
// local API's socket.
package bash
