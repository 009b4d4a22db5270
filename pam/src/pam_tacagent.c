/* pam_tacagent: a PAM module that authenticates, authorizes and accounts through the tacagent daemon's
 * local API (docs/api.md), HTTP/1.1 + JSON on a unix socket. docs/pam.md is its manual.
 *
 * It is written in C, not Go: a Go c-shared library starts the Go runtime's threads when it is loaded, and
 * after fork() the child (sshd's PAM "thread" is a forked process of the monitor that loaded the module)
 * has only the calling thread, so the runtime deadlocks there. docs/pam.md has the measurement.
 *
 * Rules kept throughout: no global state, no threads, no signal handlers; every call to the agent is
 * bounded by the timeout= option; passwords and prompt answers are never logged and are wiped
 * (explicit_bzero) once sent; sshd's placeholder password for unknown users is never sent anywhere; nothing
 * is sent to a socket served by anyone but root or daemon_uid= (SO_PEERCRED); a pass counts only for
 * PAM_USER. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define PAM_SM_AUTH
#define PAM_SM_ACCOUNT
#define PAM_SM_SESSION
#define PAM_SM_PASSWORD
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "http.h"
#include "json.h"

#define DEFAULT_SOCKET "/run/tacagent/tacagent.sock"
#define DEFAULT_SERVICE "shell"
/* DEFAULT_TIMEOUT_MS bounds each request to the agent (not the user's typing): long enough for the agent
 * to fail over from one dead server to the next (its per-server timeout is 5 s by default). */
#define DEFAULT_TIMEOUT_MS 10000
#define MAX_TIMEOUT_MS 600000
/* MAX_PROMPTS bounds one authentication's conversation, so a confused agent cannot loop us forever. */
#define MAX_PROMPTS 32
/* MAX_FIELD: users, ports and addresses travel with one-byte lengths (RFC 8907 sections 5.1, 6.1, 7.1). */
#define MAX_FIELD 255
/* MAX_ENV: the most attributes put into the PAM environment from one authorization. */
#define MAX_ENV 64
#define MAX_ENV_NAME 64
#define REQ_BUF 8192
/* sshd answers every prompt with these bytes, repeated to the length of what the user typed, when the
 * user does not exist locally or may not log in (auth-pam.c fake_password: the same length, so that the
 * time PAM takes tells nothing); sending it would count as a failed login on the server and can lock the
 * real account out (docs/pam.md). */
#define SSHD_FAKE_PASSWORD "\b\n\r\177INCORRECT"
#define DATA_SESSION "pam_tacagent_session"
#define CONV_ID_LEN 32

struct opts {
	const char *socket;
	int timeout_ms;
	const char *service;     /* service= AV of authorization and accounting */
	const char *type;        /* authentication type: ascii, pap, chap, mschapv1, mschapv2 */
	const char *protocol_av; /* protocol= AV (pam_tacplus's meaning of protocol=), or NULL */
	long daemon_uid;         /* besides root, the uid allowed to serve the socket; TH_ROOT_ONLY: none */
	bool debug;
	bool debug_stderr;
	bool use_first_pass;
	bool try_first_pass;
	bool acct_required;
};

/* verdict is what one exchange with the agent came to; each PAM function maps it to its own codes. */
enum verdict {
	V_OK,        /* pass, permit, ok */
	V_NO,        /* the server said FAIL: authentication failed, authorization denied */
	V_UNAVAIL,   /* no answer could be had: agent down or slow, servers unreachable, server ERROR */
	V_ERROR,     /* authenticate: the agent's "error" (aborted, misconfigured) or an unknown result */
	V_BADREQ,    /* the agent refused the request as malformed */
	V_RATELIMIT, /* too many failed authentications for this user */
	V_EXPIRED,   /* the user took too long to answer a prompt */
	V_PROMPT,    /* (internal) the agent asks a question */
	V_CONV,      /* the application's conversation failed */
	V_FAKE,      /* sshd's placeholder password: refused without asking anyone */
	V_NOMEM,
};

static void logv(pam_handle_t *pamh, const struct opts *o, int prio, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
static void logv(pam_handle_t *pamh, const struct opts *o, int prio, const char *fmt, va_list ap)
{
	if (prio == LOG_DEBUG && !o->debug)
		return;
	va_list ap2;
	va_copy(ap2, ap);
	pam_vsyslog(pamh, prio, fmt, ap);
	if (o->debug_stderr) {
		fputs("pam_tacagent: ", stderr);
		vfprintf(stderr, fmt, ap2);
		fputc('\n', stderr);
	}
	va_end(ap2);
}

static void logm(pam_handle_t *pamh, const struct opts *o, int prio, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void logm(pam_handle_t *pamh, const struct opts *o, int prio, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	logv(pamh, o, prio, fmt, ap);
	va_end(ap);
}

static void wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* is_fake recognises sshd's placeholder of any length: SSHD_FAKE_PASSWORD's bytes cycled. No password a
 * person types starts with backspace, newline, carriage return, DEL. (An empty password has an empty
 * placeholder; sshd refuses empty passwords before PAM unless PermitEmptyPasswords is set.) */
static bool is_fake(const char *p)
{
	static const char junk[] = SSHD_FAKE_PASSWORD;
	if (p == NULL || p[0] == '\0')
		return false;
	for (size_t i = 0; p[i] != '\0'; i++)
		if (p[i] != junk[i % (sizeof junk - 1)])
			return false;
	return true;
}

/* text_ok is what the agent accepts for a user, port, address, task id or AV name (localapi/validate.go):
 * 1 to MAX_FIELD bytes of UTF-8, no control characters, spaces only where allowed. */
static bool text_ok(const char *s, bool space_ok)
{
	if (s == NULL)
		return false;
	size_t n = strlen(s);
	if (n == 0 || n > MAX_FIELD || !tj_utf8_valid(s, n))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7F || (c == ' ' && !space_ok))
			return false;
		if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] <= 0x9F)
			return false; /* C1 controls */
	}
	return true;
}

/* parse_opts reads the pam.d line's arguments; PAM_SUCCESS or PAM_SERVICE_ERR (a bad value). Unknown
 * options are logged by name only (a pam_tacplus line carries secret=KEY) and ignored. */
static int parse_opts(pam_handle_t *pamh, int argc, const char **argv, struct opts *o)
{
	*o = (struct opts){.socket = DEFAULT_SOCKET, .timeout_ms = DEFAULT_TIMEOUT_MS, .service = DEFAULT_SERVICE,
			   .type = "ascii", .daemon_uid = TH_ROOT_ONLY};
	int rc = PAM_SUCCESS;
	/* The debug options first, so that they apply to the messages about the others wherever they stand. */
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "debug") == 0)
			o->debug = true;
		else if (strcmp(argv[i], "debug=stderr") == 0)
			o->debug = o->debug_stderr = true;
	}
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "debug") == 0 || strcmp(a, "debug=stderr") == 0) {
			continue;
		} else if (strcmp(a, "use_first_pass") == 0) {
			o->use_first_pass = true;
		} else if (strcmp(a, "try_first_pass") == 0) {
			o->try_first_pass = true;
		} else if (strcmp(a, "acct_required") == 0) {
			o->acct_required = true;
		} else if (strncmp(a, "socket=", 7) == 0) {
			o->socket = a + 7;
			if (o->socket[0] != '/') {
				logm(pamh, o, LOG_ERR, "socket= must be an absolute path");
				rc = PAM_SERVICE_ERR;
			}
		} else if (strncmp(a, "timeout=", 8) == 0) {
			char *end = NULL;
			long v = strtol(a + 8, &end, 10);
			long ms = -1;
			if (end != a + 8 && strcmp(end, "ms") == 0)
				ms = v;
			else if (end != a + 8 && (strcmp(end, "") == 0 || strcmp(end, "s") == 0) && v <= MAX_TIMEOUT_MS / 1000)
				ms = v * 1000;
			if (ms <= 0 || ms > MAX_TIMEOUT_MS) {
				logm(pamh, o, LOG_ERR, "timeout= takes seconds (\"10\", \"10s\") or milliseconds (\"500ms\"), "
				     "at most %d s", MAX_TIMEOUT_MS / 1000);
				rc = PAM_SERVICE_ERR;
			} else {
				o->timeout_ms = (int)ms;
			}
		} else if (strncmp(a, "service=", 8) == 0) {
			o->service = a + 8;
			if (!text_ok(o->service, false)) {
				logm(pamh, o, LOG_ERR, "service= must be a word");
				rc = PAM_SERVICE_ERR;
			}
		} else if (strncmp(a, "protocol=", 9) == 0) {
			const char *p = a + 9;
			if (strcmp(p, "ascii") == 0 || strcmp(p, "pap") == 0 || strcmp(p, "chap") == 0 ||
			    strcmp(p, "mschapv1") == 0 || strcmp(p, "mschapv2") == 0) {
				o->type = p;
			} else if (text_ok(p, false)) {
				o->protocol_av = p; /* pam_tacplus's protocol=: an AV pair of authorization */
			} else {
				logm(pamh, o, LOG_ERR, "protocol= must be ascii, pap, chap, mschapv1, mschapv2 or a word");
				rc = PAM_SERVICE_ERR;
			}
		} else if (strncmp(a, "daemon_uid=", 11) == 0) {
			char *end = NULL;
			errno = 0;
			long v = strtol(a + 11, &end, 10);
			if (a[11] < '0' || a[11] > '9' || *end != '\0' || errno != 0 || v < 0 || v > (long)UINT32_MAX - 1) {
				logm(pamh, o, LOG_ERR, "daemon_uid= must be a number (a uid)");
				rc = PAM_SERVICE_ERR;
			} else {
				o->daemon_uid = v;
			}
		} else if (strncmp(a, "daemon_user=", 12) == 0) {
			/* Resolved at each call: a missing user is a configuration error, and fails closed. */
			struct passwd pw, *res = NULL;
			char pwbuf[4096];
			if (a[12] == '\0' || getpwnam_r(a + 12, &pw, pwbuf, sizeof pwbuf, &res) != 0 || res == NULL) {
				logm(pamh, o, LOG_ERR, "daemon_user=: no such user (or the user database failed)");
				rc = PAM_SERVICE_ERR;
			} else {
				o->daemon_uid = (long)pw.pw_uid;
			}
			explicit_bzero(pwbuf, sizeof pwbuf); /* it may hold the user's password hash field */
		} else {
			int n = (int)strcspn(a, "=");
			logm(pamh, o, LOG_WARNING, "unknown option %.*s ignored", n > 64 ? 64 : n, a);
		}
	}
	if (o->use_first_pass && o->try_first_pass)
		o->try_first_pass = false; /* use_first_pass is the stricter */
	return rc;
}

/* get_user returns PAM_USER (asking for it when unset), checked against what the agent accepts. */
static int get_user(pam_handle_t *pamh, const struct opts *o, const char **user)
{
	int r = pam_get_user(pamh, user, NULL);
	if (r != PAM_SUCCESS) {
		logm(pamh, o, LOG_ERR, "no user name: %s", pam_strerror(pamh, r));
		return r == PAM_CONV_AGAIN ? PAM_INCOMPLETE : r;
	}
	if (!text_ok(*user, false)) {
		logm(pamh, o, LOG_NOTICE, "the user name cannot be sent to a TACACS+ server (empty, too long, "
		     "spaces or control characters)");
		return PAM_USER_UNKNOWN;
	}
	return PAM_SUCCESS;
}

/* item_text returns a string item when it is fit to send, else NULL. */
static const char *item_text(pam_handle_t *pamh, const struct opts *o, int item, const char *name)
{
	const void *v = NULL;
	if (pam_get_item(pamh, item, &v) != PAM_SUCCESS || v == NULL)
		return NULL;
	if (!text_ok(v, false)) {
		logm(pamh, o, LOG_DEBUG, "%s is not sent: empty, too long, spaces or control characters", name);
		return NULL;
	}
	return v;
}

/* answer is one parsed response from the agent. */
struct answer {
	th_response http;
	tj_span doc; /* the JSON body, when there is one */
	bool json;
};

static void answer_free(struct answer *a)
{
	th_response_free(&a->http);
	memset(a, 0, sizeof *a);
}

/* field returns a string member of obj as a new string, or NULL. */
static char *field(tj_span obj, const char *key)
{
	tj_span v;
	if (tj_get(obj, key, &v) != 0)
		return NULL;
	return tj_strdup(v);
}

/* call sends one request (w NULL: a GET) and reads the answer. The request buffer is wiped whatever
 * happens: it may hold a password. */
static enum th_err call(pam_handle_t *pamh, const struct opts *o, const char *method, const char *path,
			tj_writer *w, struct answer *a)
{
	memset(a, 0, sizeof *a);
	enum th_err e;
	if (w != NULL) {
		e = w->err ? TH_ARG
			   : th_request(o->socket, o->timeout_ms, o->daemon_uid, method, path, w->buf, w->len, &a->http);
		explicit_bzero(w->buf, w->cap);
	} else {
		e = th_request(o->socket, o->timeout_ms, o->daemon_uid, method, path, NULL, 0, &a->http);
	}
	if (e == TH_PEER) {
		/* Fail closed, loudly: someone else serves the agent's socket (a stale path taken over, a
		 * hostile local user). Nothing was sent; the caller's verdict is a service error, never a
		 * fallback as for an agent that is merely down. */
		if (o->daemon_uid >= 0)
			logm(pamh, o, LOG_ERR, "%s %s: refused: the socket %s is served by uid %ld, not root or daemon uid %ld",
			     method, path, o->socket, a->http.peer_uid, o->daemon_uid);
		else
			logm(pamh, o, LOG_ERR, "%s %s: refused: the socket %s is served by uid %ld, not root (daemon_uid= "
			     "or daemon_user= names another)", method, path, o->socket, a->http.peer_uid);
		return e;
	}
	if (e != TH_OK) {
		logm(pamh, o, LOG_DEBUG, "%s %s: %s", method, path, th_strerror(e));
		return e;
	}
	a->json = a->http.body_len > 0 && tj_parse(a->http.body, a->http.body_len, &a->doc) == 0;
	logm(pamh, o, LOG_DEBUG, "%s %s: HTTP %d", method, path, a->http.status);
	return TH_OK;
}

/* classify turns a transport outcome and an answer into a verdict, and logs why when it is not OK. */
static enum verdict classify(pam_handle_t *pamh, const struct opts *o, const char *what, enum th_err e,
			     struct answer *a)
{
	if (e == TH_NOMEM)
		return V_NOMEM;
	if (e != TH_OK) {
		bool bad = e == TH_ARG || e == TH_PEER;
		logm(pamh, o, bad ? LOG_ERR : LOG_WARNING, "%s: %s (socket %s)", what, th_strerror(e), o->socket);
		return bad ? V_BADREQ : V_UNAVAIL;
	}
	tj_span err = {0};
	char *code = NULL, *msg = NULL, *expl = NULL;
	if (a->json && tj_get(a->doc, "error", &err) == 0) {
		code = field(err, "code");
		msg = field(err, "message");
		expl = field(err, "explanation");
	}
	enum verdict v;
	char *result = a->json ? field(a->doc, "result") : NULL;
	int st = a->http.status;
	if (st == 200) {
		if (result == NULL)
			v = V_UNAVAIL;
		else if (strcmp(result, "pass") == 0 || strcmp(result, "permit") == 0 || strcmp(result, "ok") == 0)
			v = V_OK;
		else if (strcmp(result, "fail") == 0 || strcmp(result, "deny") == 0)
			v = V_NO;
		else if (strcmp(result, "prompt") == 0)
			v = V_PROMPT;
		else if (strcmp(result, "unavailable") == 0)
			v = V_UNAVAIL;
		else
			v = V_ERROR; /* "error", or a result this module does not know: never "could not ask" */
	} else if (st == 400 || st == 409 || st == 413) {
		v = V_BADREQ;
	} else if (st == 429) {
		v = V_RATELIMIT;
	} else if (st == 504) {
		/* The agent's deadline (the one this module sent, or its own request timeout) passed and it could
		 * not say how the request ended: a server may have said FAIL meanwhile. Never "could not ask"
		 * (authinfo_unavail), which a fallback line would skip to a local password. */
		v = V_ERROR;
	} else if (st == 410) {
		v = V_EXPIRED;
	} else {
		v = V_UNAVAIL; /* 403 not allowed to ask, 404 conversation gone, 5xx agent trouble */
	}
	if (v != V_OK && v != V_PROMPT) {
		int prio = v == V_NO ? LOG_NOTICE : LOG_WARNING;
		if (st == 200 && result == NULL)
			logm(pamh, o, prio, "%s: the agent's answer is not the JSON expected", what);
		else
			logm(pamh, o, prio, "%s: %s (HTTP %d, code %s)%s%s%s%s", what, result ? result : "refused", st,
			     code ? code : "-", msg ? ": " : "", msg ? msg : "",
			     expl && expl[0] && (!msg || strcmp(expl, msg) != 0) ? "; " : "",
			     expl && expl[0] && (!msg || strcmp(expl, msg) != 0) ? expl : "");
		if (v == V_RATELIMIT && a->http.retry_after >= 0)
			logm(pamh, o, prio, "%s: retry in %ld s", what, a->http.retry_after);
	}
	free(result);
	free(code);
	free(msg);
	free(expl);
	return v;
}

/* show_server_msg passes the server's message to the user (a FAIL's reason, a banner). */
static void show_server_msg(pam_handle_t *pamh, int flags, struct answer *a, bool error)
{
	if ((flags & PAM_SILENT) || !a->json)
		return;
	char *m = field(a->doc, "server_msg");
	if (m != NULL && m[0] != '\0') {
		if (error)
			pam_error(pamh, "%s", m);
		else
			pam_info(pamh, "%s", m);
	}
	free(m);
}

/* secrets are the answers the module gives itself in an authentication conversation. */
struct secrets {
	const char *first; /* the answer to the first secret (no-echo) prompt, or NULL to ask the user */
	const char *rest;  /* the answer to later secret prompts (CHPASS: the new password), or NULL to ask */
	bool keep_asked;   /* keep what the user typed at the first secret prompt in asked */
	char *asked;
};

static bool valid_conv_id(const char *id)
{
	if (id == NULL || strlen(id) != CONV_ID_LEN)
		return false;
	for (const char *p = id; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static void abort_conversation(pam_handle_t *pamh, const struct opts *o, const char *path)
{
	char buf[64];
	tj_writer w;
	tjw_init(&w, buf, sizeof buf);
	tjw_begin(&w);
	tjw_bool(&w, "abort", true);
	tjw_end(&w);
	struct answer a;
	if (call(pamh, o, "POST", path, &w, &a) == TH_OK)
		answer_free(&a);
}

/* same_user checks that the user the agent says it authenticated (the answer's "user") is the PAM user the
 * module asked about: a pass for anyone else, or a pass that does not say whom, is a failure (a server that
 * renamed the user with a GETUSER prompt, an agent that mixed answers up). */
static bool same_user(pam_handle_t *pamh, const struct opts *o, struct answer *a, const char *user)
{
	char *got = a->json ? field(a->doc, "user") : NULL;
	bool ok = got != NULL && strcmp(got, user) == 0;
	if (!ok) {
		if (got == NULL)
			logm(pamh, o, LOG_ERR, "authenticate: the agent's pass does not say which user it authenticated; "
			     "refused (PAM_USER %s)", user);
		else
			logm(pamh, o, LOG_ERR, "authenticate: the agent authenticated %s, not PAM_USER %s; refused",
			     text_ok(got, false) ? got : "(a name unfit to print)", user);
	}
	free(got);
	return ok;
}

/* authenticate runs POST /v1/authenticate and its conversation to the end. */
static enum verdict authenticate(pam_handle_t *pamh, const struct opts *o, int flags, const char *user,
				 const char *action, const char *password, struct secrets *s)
{
	char buf[REQ_BUF];
	tj_writer w;
	tjw_init(&w, buf, sizeof buf);
	tjw_begin(&w);
	tjw_str(&w, "user", user);
	tjw_str(&w, "type", password != NULL ? o->type : "ascii");
	tjw_str(&w, "action", action);
	if (password != NULL)
		tjw_str(&w, "password", password);
	const char *tty = item_text(pamh, o, PAM_TTY, "PAM_TTY");
	const char *rhost = item_text(pamh, o, PAM_RHOST, "PAM_RHOST");
	if (tty != NULL)
		tjw_str(&w, "port", tty);
	if (rhost != NULL)
		tjw_str(&w, "rem_addr", rhost);
	tjw_end(&w);
	if (w.err) {
		explicit_bzero(buf, sizeof buf);
		logm(pamh, o, LOG_ERR, "authenticate: the request cannot be encoded (a password that is not UTF-8?)");
		return V_BADREQ;
	}
	logm(pamh, o, LOG_DEBUG, "authenticate user %s type %s action %s", user, password ? o->type : "ascii", action);
	struct answer a;
	enum verdict v = classify(pamh, o, "authenticate", call(pamh, o, "POST", "/v1/authenticate", &w, &a), &a);
	int secret_prompts = 0;
	for (int n = 0; v == V_PROMPT; n++) {
		char path[64];
		char *id = field(a.doc, "conversation");
		if (!valid_conv_id(id)) {
			logm(pamh, o, LOG_WARNING, "authenticate: the agent sent a prompt without a valid conversation id");
			free(id);
			v = V_UNAVAIL;
			break;
		}
		snprintf(path, sizeof path, "/v1/conversations/%s", id);
		free(id);
		if (n >= MAX_PROMPTS) {
			logm(pamh, o, LOG_WARNING, "authenticate: more than %d prompts; giving up", MAX_PROMPTS);
			abort_conversation(pamh, o, path);
			v = V_UNAVAIL;
			break;
		}
		tj_span p = {0};
		bool echo = false;
		tj_span ev;
		if (tj_get(a.doc, "prompt", &p) == 0 && tj_get(p, "echo", &ev) == 0)
			(void)tj_bool(ev, &echo);
		char *msg = field(p, "message");
		char *kind = field(p, "kind");
		bool info = kind != NULL && strcmp(kind, "info") == 0;
		free(kind);
		answer_free(&a);
		logm(pamh, o, LOG_DEBUG, "prompt %d: %s (echo %s)", n + 1, info ? "info" : echo ? "question" : "secret",
		     echo ? "on" : "off");

		const char *ans = "";
		char *typed = NULL;
		enum verdict fail = V_OK;
		if (info) {
			if (!(flags & PAM_SILENT) && msg != NULL && msg[0] != '\0')
				pam_info(pamh, "%s", msg);
		} else if (!echo && secret_prompts == 0 && s->first != NULL) {
			ans = s->first;
		} else if (!echo && secret_prompts > 0 && s->rest != NULL) {
			ans = s->rest;
		} else {
			const char *shown = msg != NULL && msg[0] != '\0' ? msg : echo ? "Response: " : "Password: ";
			int r = pam_prompt(pamh, echo ? PAM_PROMPT_ECHO_ON : PAM_PROMPT_ECHO_OFF, &typed, "%s", shown);
			if (r != PAM_SUCCESS) {
				logm(pamh, o, LOG_NOTICE, "authenticate: the conversation failed: %s", pam_strerror(pamh, r));
				fail = V_CONV;
			} else if (typed == NULL && (typed = strdup("")) == NULL) {
				fail = V_NOMEM;
			} else if (!echo && secret_prompts == 0 && s->keep_asked && s->asked == NULL &&
				   (s->asked = strdup(typed)) == NULL) {
				fail = V_NOMEM;
			}
			ans = typed != NULL ? typed : "";
		}
		free(msg);
		if (!echo && !info)
			secret_prompts++;
		if (fail == V_OK && is_fake(ans)) {
			logm(pamh, o, LOG_NOTICE, "authenticate: sshd's placeholder password for an unknown user; "
			     "not sent, the login fails");
			fail = V_FAKE;
		}
		if (fail != V_OK) {
			wipe_free(typed);
			abort_conversation(pamh, o, path);
			v = fail;
			break;
		}
		tjw_init(&w, buf, sizeof buf);
		tjw_begin(&w);
		tjw_str(&w, "answer", ans);
		tjw_end(&w);
		wipe_free(typed);
		if (w.err) {
			explicit_bzero(buf, sizeof buf);
			logm(pamh, o, LOG_ERR, "authenticate: the answer cannot be encoded (not UTF-8?)");
			abort_conversation(pamh, o, path);
			v = V_BADREQ;
			break;
		}
		v = classify(pamh, o, "authenticate", call(pamh, o, "POST", path, &w, &a), &a);
	}
	if (v == V_OK && !same_user(pamh, o, &a, user))
		v = V_NO;
	if (v == V_OK || v == V_NO)
		show_server_msg(pamh, flags, &a, v == V_NO);
	answer_free(&a);
	explicit_bzero(buf, sizeof buf);
	return v;
}

static int auth_code(enum verdict v)
{
	switch (v) {
	case V_OK: return PAM_SUCCESS;
	case V_NO: case V_EXPIRED: case V_FAKE: return PAM_AUTH_ERR;
	case V_RATELIMIT: return PAM_MAXTRIES;
	case V_BADREQ: return PAM_SERVICE_ERR;
	case V_CONV: return PAM_CONV_ERR;
	case V_NOMEM: return PAM_BUF_ERR;
	case V_ERROR: return PAM_SYSTEM_ERR; /* not authinfo_unavail: a fallback line must not skip it */
	default: return PAM_AUTHINFO_UNAVAIL;
	}
}

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct opts o;
	if (parse_opts(pamh, argc, argv, &o) != PAM_SUCCESS)
		return PAM_SERVICE_ERR;
	const char *user;
	int r = get_user(pamh, &o, &user);
	if (r != PAM_SUCCESS)
		return r;
	const void *tok = NULL;
	if (o.use_first_pass || o.try_first_pass) {
		if (pam_get_item(pamh, PAM_AUTHTOK, &tok) != PAM_SUCCESS)
			tok = NULL;
		if (is_fake(tok)) {
			logm(pamh, &o, LOG_NOTICE, "sshd's placeholder password for an unknown user; not sent, the login fails");
			return PAM_AUTH_ERR;
		}
		if (tok == NULL && o.use_first_pass) {
			logm(pamh, &o, LOG_NOTICE, "use_first_pass: no password from an earlier module");
			return PAM_AUTH_ERR;
		}
	}
	struct secrets s = {.first = tok};
	const char *password = NULL;
	if (strcmp(o.type, "ascii") != 0) {
		/* PAP, CHAP and MS-CHAP carry the password in the START (RFC 8907 sections 5.4.2.2-5.4.2.5). */
		if (tok == NULL) {
			r = pam_prompt(pamh, PAM_PROMPT_ECHO_OFF, &s.asked, "Password: ");
			if (r != PAM_SUCCESS || s.asked == NULL) {
				wipe_free(s.asked);
				return PAM_CONV_ERR;
			}
			if (is_fake(s.asked)) {
				wipe_free(s.asked);
				logm(pamh, &o, LOG_NOTICE, "sshd's placeholder password for an unknown user; not sent, the login fails");
				return PAM_AUTH_ERR;
			}
		}
		password = tok != NULL ? tok : s.asked;
		s.first = NULL;
	} else {
		s.keep_asked = tok == NULL;
	}
	enum verdict v = authenticate(pamh, &o, flags, user, "login", password, &s);
	/* Later modules may use what the user typed: after a pass (pam_unix's use_authtok), and when the agent
	 * became unreachable mid-way, so that a try_first_pass fallback does not ask twice. Never after a
	 * FAIL: a wrong TACACS+ password must not be tried on local accounts by the stack. */
	if ((v == V_OK || v == V_UNAVAIL) && s.asked != NULL && pam_set_item(pamh, PAM_AUTHTOK, s.asked) != PAM_SUCCESS)
		logm(pamh, &o, LOG_WARNING, "could not keep the password for later modules");
	wipe_free(s.asked);
	logm(pamh, &o, v == V_OK ? LOG_INFO : LOG_NOTICE, "authentication of %s: %s", user,
	     pam_strerror(pamh, auth_code(v)));
	return auth_code(v);
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh, (void)flags, (void)argc, (void)argv;
	return PAM_SUCCESS; /* TACACS+ grants no credentials; the attributes come with acct_mgmt */
}

/* env_name turns an AV attribute into TACACS_<NAME>: letters upper-cased, digits kept, the rest '_'. */
static bool env_name(const char *attr, size_t n, char *out, size_t cap)
{
	static const char prefix[] = "TACACS_";
	if (n == 0 || sizeof prefix - 1 + n + 1 > cap)
		return false;
	memcpy(out, prefix, sizeof prefix - 1);
	size_t o = sizeof prefix - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)attr[i];
		out[o++] = isascii(c) && isalnum(c) ? (char)toupper(c) : '_';
	}
	out[o] = '\0';
	return true;
}

/* put_env puts the server's returned pairs into the PAM environment. */
static void put_env(pam_handle_t *pamh, const struct opts *o, struct answer *a)
{
	tj_span args;
	if (tj_get(a->doc, "args", &args) != 0)
		return;
	size_t pos = 0;
	tj_span e;
	for (int count = 0; tj_next(args, &pos, &e) == 1; count++) {
		if (count >= MAX_ENV) {
			logm(pamh, o, LOG_WARNING, "acct_mgmt: more than %d attributes; the rest are not exported", MAX_ENV);
			return;
		}
		char *pair = tj_strdup(e);
		if (pair == NULL)
			continue;
		size_t n = strcspn(pair, "=*"); /* name=value (mandatory) or name*value (optional), section 6.1 */
		char name[8 + MAX_ENV_NAME];
		if (pair[n] == '\0' || !env_name(pair, n, name, sizeof name) || !text_ok(pair, true)) {
			logm(pamh, o, LOG_DEBUG, "acct_mgmt: attribute %d not exported (unfit name or value)", count + 1);
			free(pair);
			continue;
		}
		char *kv = NULL;
		if (asprintf(&kv, "%s=%s", name, pair + n + 1) >= 0) {
			if (pam_putenv(pamh, kv) == PAM_SUCCESS)
				logm(pamh, o, LOG_DEBUG, "acct_mgmt: %s", kv);
			free(kv);
		}
		free(pair);
	}
}

PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)flags;
	struct opts o;
	if (parse_opts(pamh, argc, argv, &o) != PAM_SUCCESS)
		return PAM_SERVICE_ERR;
	const char *user;
	int r = get_user(pamh, &o, &user);
	if (r != PAM_SUCCESS)
		return r;
	/* The login itself: service=shell with an empty cmd (RFC 8907 section 8.2's shell start). */
	char svc[8 + MAX_FIELD], proto[10 + MAX_FIELD];
	const char *av[3];
	size_t nav = 0;
	snprintf(svc, sizeof svc, "service=%s", o.service);
	av[nav++] = svc;
	av[nav++] = "cmd=";
	if (o.protocol_av != NULL) {
		snprintf(proto, sizeof proto, "protocol=%s", o.protocol_av);
		av[nav++] = proto;
	}
	char buf[REQ_BUF];
	tj_writer w;
	tjw_init(&w, buf, sizeof buf);
	tjw_begin(&w);
	tjw_str(&w, "user", user);
	tjw_strs(&w, "av", av, nav);
	const char *tty = item_text(pamh, &o, PAM_TTY, "PAM_TTY");
	const char *rhost = item_text(pamh, &o, PAM_RHOST, "PAM_RHOST");
	if (tty != NULL)
		tjw_str(&w, "port", tty);
	if (rhost != NULL)
		tjw_str(&w, "rem_addr", rhost);
	tjw_end(&w);
	struct answer a;
	enum verdict v = classify(pamh, &o, "authorize", call(pamh, &o, "POST", "/v1/authorize", &w, &a), &a);
	if (v == V_OK)
		put_env(pamh, &o, &a);
	if (v == V_NO)
		show_server_msg(pamh, flags, &a, true);
	answer_free(&a);
	switch (v) {
	case V_OK: r = PAM_SUCCESS; break;
	case V_NO: r = PAM_PERM_DENIED; break;
	case V_BADREQ: r = PAM_SERVICE_ERR; break;
	case V_NOMEM: r = PAM_BUF_ERR; break;
	default: r = PAM_AUTHINFO_UNAVAIL;
	}
	logm(pamh, &o, v == V_OK ? LOG_INFO : LOG_NOTICE, "authorization of %s for service=%s: %s", user, o.service,
	     pam_strerror(pamh, r));
	return r;
}

/* session is what open_session leaves for close_session (pam_set_data). */
struct session {
	char task_id[48];
	long long start; /* seconds since the epoch */
};

static void session_cleanup(pam_handle_t *pamh, void *data, int status)
{
	(void)pamh, (void)status;
	free(data);
}

static long long wall_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec;
}

/* new_task_id derives a task id from the process id and the time (RFC 8907 section 8.3: it must match
 * between START and STOP and should be unique on this client). */
static void new_task_id(char *out, size_t cap)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(out, cap, "%ld-%lld%03ld", (long)getpid(), (long long)ts.tv_sec, ts.tv_nsec / 1000000);
}

static int account(pam_handle_t *pamh, const struct opts *o, bool start)
{
	const char *user;
	int r = get_user(pamh, o, &user);
	if (r != PAM_SUCCESS)
		return o->acct_required ? PAM_SESSION_ERR : PAM_SUCCESS;
	struct session *s = NULL;
	const void *d = NULL;
	long long now = wall_seconds();
	if (start) {
		s = calloc(1, sizeof *s);
		if (s == NULL)
			return o->acct_required ? PAM_BUF_ERR : PAM_SUCCESS;
		new_task_id(s->task_id, sizeof s->task_id);
		s->start = now;
		if (pam_set_data(pamh, DATA_SESSION, s, session_cleanup) != PAM_SUCCESS) {
			free(s);
			return o->acct_required ? PAM_SESSION_ERR : PAM_SUCCESS;
		}
	} else if (pam_get_data(pamh, DATA_SESSION, &d) == PAM_SUCCESS && d != NULL) {
		s = (struct session *)d;
	}
	char task_id[48];
	if (s != NULL) {
		snprintf(task_id, sizeof task_id, "%s", s->task_id);
	} else {
		/* close_session in a handle that never opened one: the STOP still says who left. */
		new_task_id(task_id, sizeof task_id);
		logm(pamh, o, LOG_DEBUG, "close_session without open_session in this handle: new task id");
	}
	char svc[8 + MAX_FIELD], proto[10 + MAX_FIELD], t1[48], t2[48];
	const char *av[4];
	size_t nav = 0;
	snprintf(svc, sizeof svc, "service=%s", o->service);
	av[nav++] = svc;
	if (o->protocol_av != NULL) {
		snprintf(proto, sizeof proto, "protocol=%s", o->protocol_av);
		av[nav++] = proto;
	}
	if (start) {
		snprintf(t1, sizeof t1, "start_time=%lld", now); /* section 8.3 */
		av[nav++] = t1;
	} else {
		snprintf(t1, sizeof t1, "stop_time=%lld", now);
		av[nav++] = t1;
		if (s != NULL) {
			snprintf(t2, sizeof t2, "elapsed_time=%lld", now >= s->start ? now - s->start : 0);
			av[nav++] = t2;
		}
	}
	char buf[REQ_BUF];
	tj_writer w;
	tjw_init(&w, buf, sizeof buf);
	tjw_begin(&w);
	tjw_str(&w, "flags", start ? "start" : "stop");
	tjw_str(&w, "user", user);
	tjw_str(&w, "task_id", task_id);
	tjw_strs(&w, "av", av, nav);
	const char *tty = item_text(pamh, o, PAM_TTY, "PAM_TTY");
	const char *rhost = item_text(pamh, o, PAM_RHOST, "PAM_RHOST");
	if (tty != NULL)
		tjw_str(&w, "port", tty);
	if (rhost != NULL)
		tjw_str(&w, "rem_addr", rhost);
	tjw_end(&w);
	const char *what = start ? "accounting start" : "accounting stop";
	struct answer a;
	enum verdict v = classify(pamh, o, what, call(pamh, o, "POST", "/v1/account", &w, &a), &a);
	/* "spooled": no server took the record yet, but the agent committed it to its durable spool and
	 * sends it when one does: the record is not lost, so acct_required is satisfied. */
	bool spooled = false;
	tj_span sp;
	if (v != V_OK && a.json && a.http.status == 200 && tj_get(a.doc, "spooled", &sp) == 0 && tj_bool(sp, &spooled) != 0)
		spooled = false;
	answer_free(&a);
	if (v == V_OK) {
		logm(pamh, o, LOG_INFO, "%s of %s task_id=%s recorded", what, user, task_id);
		return PAM_SUCCESS;
	}
	if (spooled) {
		logm(pamh, o, LOG_NOTICE, "%s of %s task_id=%s spooled by the agent: no server took it yet, it is kept and sent later",
		     what, user, task_id);
		return PAM_SUCCESS;
	}
	/* A lost record must not lock users out, unless the administrator says it must (acct_required). */
	logm(pamh, o, LOG_WARNING, "%s of %s task_id=%s not recorded%s", what, user, task_id,
	     o->acct_required ? "" : "; the session goes on (acct_required not set)");
	return o->acct_required ? PAM_SESSION_ERR : PAM_SUCCESS;
}

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)flags;
	struct opts o;
	if (parse_opts(pamh, argc, argv, &o) != PAM_SUCCESS)
		return PAM_SERVICE_ERR;
	return account(pamh, &o, true);
}

PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)flags;
	struct opts o;
	if (parse_opts(pamh, argc, argv, &o) != PAM_SUCCESS)
		return PAM_SERVICE_ERR;
	return account(pamh, &o, false);
}

/* ask_secret prompts for a secret; PAM_SUCCESS with *out set (wipe_free it), or an error. */
static int ask_secret(pam_handle_t *pamh, const char *prompt, char **out)
{
	*out = NULL;
	int r = pam_prompt(pamh, PAM_PROMPT_ECHO_OFF, out, "%s", prompt);
	if (r != PAM_SUCCESS || *out == NULL) {
		wipe_free(*out);
		*out = NULL;
		return PAM_CONV_ERR;
	}
	return PAM_SUCCESS;
}

static int chauthtok_code(enum verdict v)
{
	switch (v) {
	case V_OK: return PAM_SUCCESS;
	case V_NO: case V_EXPIRED: case V_FAKE: return PAM_AUTHTOK_ERR;
	case V_RATELIMIT: return PAM_MAXTRIES;
	case V_BADREQ: return PAM_SERVICE_ERR;
	case V_CONV: return PAM_CONV_ERR;
	case V_NOMEM: return PAM_BUF_ERR;
	case V_ERROR: return PAM_SYSTEM_ERR;
	default: return PAM_AUTHINFO_UNAVAIL;
	}
}

/* servers_usable asks GET /v1/status whether the agent answers and has a server that is not known to be
 * down ("up", "idle" or "connecting": an idle server has simply not been needed yet). */
static bool servers_usable(pam_handle_t *pamh, const struct opts *o)
{
	struct answer a;
	enum th_err e = call(pamh, o, "GET", "/v1/status", NULL, &a);
	if (e != TH_OK || a.http.status != 200 || !a.json) {
		logm(pamh, o, LOG_WARNING, "chauthtok: the agent is not available (%s, HTTP %d)", th_strerror(e),
		     e == TH_OK ? a.http.status : 0);
		answer_free(&a);
		return false;
	}
	tj_span servers, srv, st;
	size_t pos = 0;
	int all = 0, down = 0;
	if (tj_get(a.doc, "servers", &servers) == 0) {
		while (tj_next(servers, &pos, &srv) == 1) {
			all++;
			if (tj_get(srv, "state", &st) == 0 && (tj_streq(st, "dead") || tj_streq(st, "down")))
				down++;
		}
	}
	answer_free(&a);
	if (all > 0 && down == all) {
		logm(pamh, o, LOG_WARNING, "chauthtok: every TACACS+ server of the agent is down");
		return false;
	}
	return true;
}

/* pam_sm_chauthtok changes the password with a TACACS+ CHPASS (RFC 8907 section 5.4.2.7). The preliminary
 * pass checks that the agent answers and gets the current password; the update pass gets the new one and
 * runs the CHPASS conversation, answering the server's first secret prompt with the old password and the
 * later ones with the new. */
PAM_EXTERN int pam_sm_chauthtok(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct opts o;
	if (parse_opts(pamh, argc, argv, &o) != PAM_SUCCESS)
		return PAM_SERVICE_ERR;
	if (flags & PAM_CHANGE_EXPIRED_AUTHTOK) {
		/* TACACS+ says nothing about expiry: another module found the password expired, not us. */
		return PAM_IGNORE;
	}
	const char *user;
	int r = get_user(pamh, &o, &user);
	if (r != PAM_SUCCESS)
		return r;
	const void *old = NULL, *tok = NULL;
	if (flags & PAM_PRELIM_CHECK) {
		/* Before asking anything: is there an agent, and a server it can reach? */
		if (!servers_usable(pamh, &o))
			return PAM_AUTHINFO_UNAVAIL;
		if ((o.use_first_pass || o.try_first_pass) && pam_get_item(pamh, PAM_OLDAUTHTOK, &old) == PAM_SUCCESS &&
		    old != NULL)
			return is_fake(old) ? PAM_AUTHTOK_ERR : PAM_SUCCESS;
		if (o.use_first_pass) {
			logm(pamh, &o, LOG_NOTICE, "chauthtok: use_first_pass and no current password from an earlier module");
			return PAM_AUTHTOK_RECOVERY_ERR;
		}
		char *typed = NULL;
		if ((r = ask_secret(pamh, "Current password: ", &typed)) != PAM_SUCCESS)
			return r;
		if (is_fake(typed)) {
			wipe_free(typed);
			return PAM_AUTHTOK_ERR;
		}
		r = pam_set_item(pamh, PAM_OLDAUTHTOK, typed);
		wipe_free(typed);
		return r == PAM_SUCCESS ? PAM_SUCCESS : PAM_AUTHTOK_ERR;
	}
	if (!(flags & PAM_UPDATE_AUTHTOK))
		return PAM_SERVICE_ERR;

	char *typed_old = NULL, *typed_new = NULL;
	if (pam_get_item(pamh, PAM_OLDAUTHTOK, &old) != PAM_SUCCESS || old == NULL) {
		if ((r = ask_secret(pamh, "Current password: ", &typed_old)) != PAM_SUCCESS)
			return r;
		old = typed_old;
	}
	if ((o.use_first_pass || o.try_first_pass) && pam_get_item(pamh, PAM_AUTHTOK, &tok) != PAM_SUCCESS)
		tok = NULL;
	if (tok == NULL && o.use_first_pass) {
		wipe_free(typed_old);
		logm(pamh, &o, LOG_NOTICE, "chauthtok: use_first_pass and no new password from an earlier module");
		return PAM_AUTHTOK_RECOVERY_ERR;
	}
	if (tok == NULL) {
		char *again = NULL;
		if ((r = ask_secret(pamh, "New password: ", &typed_new)) != PAM_SUCCESS ||
		    (r = ask_secret(pamh, "Retype new password: ", &again)) != PAM_SUCCESS) {
			wipe_free(typed_old);
			wipe_free(typed_new);
			return r;
		}
		bool same = strcmp(typed_new, again) == 0;
		wipe_free(again);
		if (!same || typed_new[0] == '\0') {
			if (!(flags & PAM_SILENT))
				pam_error(pamh, "%s", same ? "No password given." : "Sorry, passwords do not match.");
			wipe_free(typed_old);
			wipe_free(typed_new);
			return PAM_AUTHTOK_ERR;
		}
		tok = typed_new;
	}
	enum verdict v;
	if (is_fake(old) || is_fake(tok)) {
		v = V_FAKE;
	} else {
		struct secrets s = {.first = old, .rest = tok};
		v = authenticate(pamh, &o, flags, user, "chpass", NULL, &s);
	}
	if (v == V_OK && typed_new != NULL && pam_set_item(pamh, PAM_AUTHTOK, typed_new) != PAM_SUCCESS)
		logm(pamh, &o, LOG_WARNING, "could not keep the new password for later modules");
	wipe_free(typed_old);
	wipe_free(typed_new);
	r = chauthtok_code(v);
	logm(pamh, &o, v == V_OK ? LOG_INFO : LOG_NOTICE, "password change of %s: %s", user, pam_strerror(pamh, r));
	return r;
}
