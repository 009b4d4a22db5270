/* shellauth: per-command authorization and accounting through tacagent's local API (docs/api.md), shared
 * by the bash loadable builtin (tacagent_builtin.c) and the SONiC-style plugin (plugin.c). Plain C: libc
 * and the PAM module's HTTP and JSON code (../pam/src/http.c, json.c); no bash headers, no globals, no
 * threads, no signal handlers. docs/bash.md is the manual. */
#ifndef TACAGENT_SHELLAUTH_H
#define TACAGENT_SHELLAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

#define SA_DEFAULT_SOCKET "/run/tacagent/tacagent.sock"
/* SA_DEFAULT_TIMEOUT_MS bounds one request to the agent; every command waits for its answer. */
#define SA_DEFAULT_TIMEOUT_MS 5000
/* SA_MAX_PAIR: one AV pair travels with a one-byte length (RFC 8907 section 6.1). */
#define SA_MAX_PAIR 255
/* SA_MAX_ARGS: arg_cnt is one byte; service, cmd, and room for the accounting pairs take the rest. */
#define SA_MAX_ARGS 240
#define SA_MSG 512

struct sa_config {
	const char *socket;
	int timeout_ms;
	long daemon_uid;            /* besides root, the uid allowed to serve the socket; -1: root only */
	const char *fallback_group; /* local group allowed to run commands when no server answers; NULL: none */
	int priv_lvl;               /* 0-15 */
	const char *port;           /* the tty, or NULL */
	const char *rem_addr;       /* where the user came from, or NULL */
	/* Connections kept open to the agent (th_conn), used in turn when free; NULL/0: a new connection per
	 * request. The caller owns them (th_conn_init, th_conn_close). */
	th_conn *kept;
	int nkept;
	/* ack: when the agent answers an accounting record (a START sent with an authorization, a STOP):
	 * NULL or "delivered" (a server took it, or the spool committed it and its first delivery attempt
	 * ended), "durable" (committed and fsynced in the agent's spool; the builtin's default) or "queued"
	 * (held in order in the agent's spool, not yet committed): docs/api.md. */
	const char *ack;
};

enum sa_verdict {
	SA_PERMIT,      /* a server said PASS */
	SA_DENY,        /* a server said FAIL: final, never falls back */
	SA_UNAVAILABLE, /* nobody could be asked: the agent is down, no server answered, or ERROR */
	SA_ERROR,       /* anything else: a refused request, an untrusted agent, an answer not understood */
};

struct sa_result {
	enum sa_verdict verdict;
	char server_msg[SA_MSG]; /* the server's message, control characters replaced by '?' */
	char why[SA_MSG];        /* for SA_UNAVAILABLE and SA_ERROR: what went wrong (no secrets) */
	/* With a start task: the START's outcome when the command was permitted (start_sent), true when a
	 * server or the agent's spool took it; start_why says why not. */
	bool start_sent, start_ok;
	char start_why[SA_MSG];
};

/* sa_escape writes arg into out (cap bytes with the NUL) in the form an AV pair can carry (printable
 * US-ASCII, RFC 8907 section 3.7): bytes outside 0x20-0x7e become \xHH and a backslash becomes \\, so
 * the text is unambiguous. Returns the length, or -1 when it does not fit. */
int sa_escape(const char *arg, char *out, size_t cap);

/* sa_authorize asks whether user may run cmd with args[0..nargs): service=shell, cmd=, one cmd-arg= per
 * argument, priv_lvl. cmd and args are raw bytes; they are escaped here. With start_task, a permitted
 * command's accounting START (task_id=start_task, the same pairs) goes in the same request (docs/api.md,
 * "start"), and r->start_* say how it went. */
void sa_authorize(const struct sa_config *c, const char *user, const char *cmd, char *const *args, int nargs,
		  const char *start_task, struct sa_result *r);

/* sa_account sends one accounting record: flags "start" or "stop"; status and elapsed are added to a stop
 * (status < -255 leaves status out). Returns true when a server (or the agent's spool) took it. */
bool sa_account(const struct sa_config *c, const char *flags, const char *user, const char *task_id,
		const char *cmd, char *const *args, int nargs, int status, long elapsed_s, char *why,
		size_t whylen);

/* sa_call is an accounting record sent whose answer is not read yet: on a kept connection (kept), or on
 * its own (call), whose descriptor is moved at or above SA_FD_MIN and identified by dev/ino. */
struct sa_call {
	th_conn *kept;
	th_call call;
	unsigned long long dev, ino;
	bool sent;
};

/* SA_FD_MIN: the hook's descriptors live at or above it, out of the way of a shell user's redirections
 * (bash's own start at 10; {var} allocations count up from there). */
#define SA_FD_MIN 150

/* sa_account_begin sends the record as sa_account does and returns without reading the answer (true when
 * sent); sa_account_end reads it (true when a server or the spool took it). Every begun call must be
 * ended. */
bool sa_account_begin(const struct sa_config *c, const char *flags, const char *user, const char *task_id,
		      const char *cmd, char *const *args, int nargs, int status, long elapsed_s, struct sa_call *call,
		      char *why, size_t whylen);
bool sa_account_end(struct sa_call *call, char *why, size_t whylen);
/* sa_account_ready reports whether a begun call's answer can be read without waiting: it arrived, the
 * connection closed, or the call's deadline passed. */
bool sa_account_ready(struct sa_call *call);
/* sa_account_drop forgets a begun call without reading its answer (a forked child's copy of its parent's:
 * the descriptor is closed in this process only). */
void sa_account_drop(struct sa_call *call);

/* sa_in_group reports whether this process's real or effective gid, or a supplementary group, is the
 * group named (from the kernel's credentials, not the environment). */
bool sa_in_group(const char *group);

/* sa_fallback decides a command when nobody could be asked: permit only for a member of the fallback
 * group. A FAIL never reaches here. */
bool sa_fallback(const struct sa_config *c);

/* sa_user is the login name of the real uid, copied into buf; NULL when unknown. That is getpwuid_r's name,
 * or LOGNAME when NSS maps LOGNAME to the same uid (users sharing a template account, docs/nss.md). */
const char *sa_user(char *buf, size_t cap);

#endif
