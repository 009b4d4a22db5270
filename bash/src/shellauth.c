/* shellauth.c: see shellauth.h. */
#define _GNU_SOURCE
#include "shellauth.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "json.h"

/* put_int appends "key":n to a JSON object being written (the shared writer has strings and booleans
 * only). */
static void put_int(tj_writer *w, const char *key, int n)
{
	if (w->err)
		return;
	int k = snprintf(w->buf + w->len, w->cap - w->len, "%s\"%s\":%d", w->first ? "" : ",", key, n);
	if (k < 0 || (size_t)k + 1 >= w->cap - w->len) {
		w->err = true;
		return;
	}
	w->len += (size_t)k;
	w->first = false;
}

/* put_raw appends text as the next member (its comma first); a text ending in '{' opens an object whose
 * first member follows without a comma. */
static void put_raw(tj_writer *w, const char *text)
{
	if (w->err)
		return;
	int k = snprintf(w->buf + w->len, w->cap - w->len, "%s%s", w->first ? "" : ",", text);
	if (k < 0 || (size_t)k + 1 >= w->cap - w->len) {
		w->err = true;
		return;
	}
	w->len += (size_t)k;
	w->first = text[0] != '\0' && text[strlen(text) - 1] == '{';
}

static void close_obj(tj_writer *w)
{
	if (w->err)
		return;
	if (w->len + 2 >= w->cap) {
		w->err = true;
		return;
	}
	w->buf[w->len++] = '}';
	w->buf[w->len] = '\0';
	w->first = false;
}

/* free_kept is a kept connection with no request in flight, an open one first; NULL when none. */
static th_conn *free_kept(const struct sa_config *c)
{
	th_conn *spare = NULL;
	for (int i = 0; c->kept != NULL && i < c->nkept; i++) {
		if (!th_conn_free(&c->kept[i]))
			continue;
		if (c->kept[i].fd >= 0)
			return &c->kept[i];
		if (spare == NULL)
			spare = &c->kept[i];
	}
	return spare;
}

static const char *sock_of(const struct sa_config *c) { return c->socket ? c->socket : SA_DEFAULT_SOCKET; }
static int timeout_of(const struct sa_config *c) { return c->timeout_ms > 0 ? c->timeout_ms : SA_DEFAULT_TIMEOUT_MS; }

int sa_escape(const char *arg, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)arg; *p; p++) {
		char tmp[4];
		size_t k;
		if (*p == '\\') {
			tmp[0] = tmp[1] = '\\';
			k = 2;
		} else if (*p >= 0x20 && *p <= 0x7e) {
			tmp[0] = (char)*p;
			k = 1;
		} else {
			tmp[0] = '\\';
			tmp[1] = 'x';
			tmp[2] = hex[*p >> 4];
			tmp[3] = hex[*p & 15];
			k = 4;
		}
		if (n + k + 1 > cap)
			return -1;
		memcpy(out + n, tmp, k);
		n += k;
	}
	if (cap == 0)
		return -1;
	out[n] = '\0';
	return (int)n;
}

/* clean copies text for a terminal: control characters become '?'. */
static void clean(char *dst, size_t cap, const char *src)
{
	size_t i = 0;
	for (; src != NULL && src[i] != '\0' && i + 1 < cap; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[i] = (ch < 0x20 && ch != '\t' && ch != '\n') || ch == 0x7f ? '?' : (char)ch;
	}
	if (cap > 0)
		dst[i] = '\0';
}

/* pairs builds "service=shell", "cmd=...", "cmd-arg=..." into one allocation; NULL and why set when an
 * argument cannot travel (too long, too many). */
static char **pairs(const char *cmd, char *const *args, int nargs, int extra, char *why, size_t whylen,
		    int *count)
{
	if (nargs < 0 || nargs > SA_MAX_ARGS) {
		snprintf(why, whylen, "more than %d arguments: TACACS+ cannot carry them", SA_MAX_ARGS);
		return NULL;
	}
	int n = 2 + nargs;
	char **av = calloc((size_t)(n + extra + 1), sizeof *av);
	char *text = malloc((size_t)(n + extra) * (SA_MAX_PAIR + 1));
	if (av == NULL || text == NULL) {
		free(av);
		free(text);
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	/* av[n+extra] is a sentinel that owns text, so that one free_pairs frees both. */
	av[n + extra] = text;
	for (int i = 0; i < n; i++) {
		char *slot = text + (size_t)i * (SA_MAX_PAIR + 1);
		const char *name = i == 0 ? "service=" : i == 1 ? "cmd=" : "cmd-arg=";
		const char *val = i == 0 ? "shell" : i == 1 ? cmd : args[i - 2];
		size_t nl = strlen(name);
		memcpy(slot, name, nl);
		if (sa_escape(val, slot + nl, SA_MAX_PAIR + 1 - nl) < 0) {
			if (i == 1)
				snprintf(why, whylen, "the command name is longer than TACACS+ can carry (%d bytes a pair)",
					 SA_MAX_PAIR);
			else
				snprintf(why, whylen, "argument %d is longer than TACACS+ can carry (%d bytes a pair)", i - 1,
					 SA_MAX_PAIR);
			free(av);
			free(text);
			return NULL;
		}
		av[i] = slot;
	}
	*count = n;
	return av;
}

static void free_pairs(char **av, int total)
{
	if (av == NULL)
		return;
	free(av[total]);
	free(av);
}

/* call sends one JSON request (on a free kept connection when there is one) and parses the answer. */
static enum th_err call(const struct sa_config *c, const char *path, tj_writer *w, th_response *resp, tj_span *doc,
			bool *json)
{
	*json = false;
	if (w->err)
		return TH_ARG;
	th_conn *k = free_kept(c);
	enum th_err e = k != NULL ? th_conn_request(k, sock_of(c), timeout_of(c), c->daemon_uid, "POST", path, w->buf,
						    w->len, resp)
				  : th_request(sock_of(c), timeout_of(c), c->daemon_uid, "POST", path, w->buf, w->len, resp);
	if (e == TH_OK)
		*json = resp->body_len > 0 && tj_parse(resp->body, resp->body_len, doc) == 0;
	return e;
}

static char *field(tj_span obj, const char *key)
{
	tj_span v;
	if (tj_get(obj, key, &v) != 0)
		return NULL;
	return tj_strdup(v);
}

/* unreachable_code: the error codes that mean "nobody answered" (docs/api.md, Outcomes): only these, and an
 * agent that is not running, may fall back. A FAIL never does; neither does a wrong key or a malformed
 * packet (configuration or tampering, not an outage). */
static bool unreachable_code(const char *code)
{
	static const char *const codes[] = {"unreachable", "timeout", "connection_lost", "server_error", NULL};
	for (int i = 0; code != NULL && codes[i] != NULL; i++)
		if (strcmp(code, codes[i]) == 0)
			return true;
	return false;
}

static size_t body_size(int npairs) { return 1024 + (size_t)npairs * (2 * SA_MAX_PAIR + 8); }

/* start_outcome reads the "start" member of an authorization's answer. */
static void start_outcome(tj_span doc, struct sa_result *r)
{
	tj_span st;
	r->start_sent = true;
	if (tj_get(doc, "start", &st) != 0) {
		snprintf(r->start_why, sizeof r->start_why, "the agent's answer has no START outcome (an older agent?)");
		return;
	}
	char *result = field(st, "result");
	r->start_ok = result != NULL && (strcmp(result, "ok") == 0 || strcmp(result, "durable") == 0 ||
				     strcmp(result, "queued") == 0);
	if (!r->start_ok) {
		char *code = NULL, *emsg = NULL;
		tj_span err;
		if (tj_get(st, "error", &err) == 0) {
			code = field(err, "code");
			emsg = field(err, "message");
		}
		char tmp[SA_MSG];
		snprintf(tmp, sizeof tmp, "result %s, %s%s%s", result ? result : "none", code ? code : "no code",
			 emsg ? ": " : "", emsg ? emsg : "");
		clean(r->start_why, sizeof r->start_why, tmp);
		free(code);
		free(emsg);
	}
	free(result);
}

void sa_authorize(const struct sa_config *c, const char *user, const char *cmd, char *const *args, int nargs,
		  const char *start_task, struct sa_result *r)
{
	memset(r, 0, sizeof *r);
	r->verdict = SA_ERROR;
	int n = 0;
	char **av = pairs(cmd, args, nargs, 0, r->why, sizeof r->why, &n);
	if (av == NULL)
		return;
	size_t cap = body_size(n);
	char *buf = malloc(cap);
	if (buf == NULL) {
		free_pairs(av, n);
		snprintf(r->why, sizeof r->why, "out of memory");
		return;
	}
	tj_writer w;
	tjw_init(&w, buf, cap);
	tjw_begin(&w);
	tjw_str(&w, "user", user);
	tjw_strs(&w, "av", (const char *const *)av, (size_t)n);
	put_int(&w, "priv_lvl", c->priv_lvl);
	if (c->port != NULL && c->port[0] != '\0')
		tjw_str(&w, "port", c->port);
	if (c->rem_addr != NULL && c->rem_addr[0] != '\0')
		tjw_str(&w, "rem_addr", c->rem_addr);
	if (start_task != NULL) {
		put_raw(&w, "\"start\":{");
		tjw_str(&w, "task_id", start_task);
		if (c->ack != NULL && c->ack[0] != '\0')
			tjw_str(&w, "ack", c->ack);
		close_obj(&w);
	}
	tjw_end(&w);
	free_pairs(av, n);

	th_response resp;
	tj_span doc;
	bool json;
	memset(&resp, 0, sizeof resp);
	enum th_err e = call(c, "/v1/authorize", &w, &resp, &doc, &json);
	free(buf);
	if (e != TH_OK) {
		/* Only an agent that is not there, or does not answer, is "could not ask"; an untrusted agent
		 * (TH_PEER) or a request we could not build is an error. */
		r->verdict = e == TH_NOAGENT || e == TH_TIMEOUT || e == TH_IO ? SA_UNAVAILABLE : SA_ERROR;
		if (e == TH_PEER)
			snprintf(r->why, sizeof r->why, "the agent's socket is served by uid %ld, which is not trusted",
				 resp.peer_uid);
		else
			snprintf(r->why, sizeof r->why, "agent: %s", th_strerror(e));
		return;
	}
	char *result = json ? field(doc, "result") : NULL;
	char *msg = json ? field(doc, "server_msg") : NULL;
	char *code = NULL, *emsg = NULL;
	tj_span err;
	if (json && tj_get(doc, "error", &err) == 0) {
		code = field(err, "code");
		emsg = field(err, "message");
	}
	if (resp.status == 200 && result != NULL && strcmp(result, "permit") == 0)
		r->verdict = SA_PERMIT;
	else if (resp.status == 200 && result != NULL && strcmp(result, "deny") == 0)
		r->verdict = SA_DENY;
	else if (resp.status == 200 && unreachable_code(code))
		r->verdict = SA_UNAVAILABLE;
	else
		r->verdict = SA_ERROR;
	clean(r->server_msg, sizeof r->server_msg, msg);
	if (r->verdict == SA_PERMIT && start_task != NULL)
		start_outcome(doc, r);
	if (r->verdict != SA_PERMIT && r->verdict != SA_DENY) {
		char tmp[SA_MSG];
		snprintf(tmp, sizeof tmp, "HTTP %d, %s%s%s", resp.status, code ? code : "no code", emsg ? ": " : "",
			 emsg ? emsg : "");
		clean(r->why, sizeof r->why, tmp);
	}
	free(result);
	free(msg);
	free(code);
	free(emsg);
	th_response_free(&resp);
}

bool sa_account_begin(const struct sa_config *c, const char *flags, const char *user, const char *task_id,
		      const char *cmd, char *const *args, int nargs, int status, long elapsed_s, struct sa_call *call,
		      char *why, size_t whylen)
{
	call->sent = false;
	call->kept = NULL;
	int n = 0;
	char **av = pairs(cmd, args, nargs, 2, why, whylen, &n);
	if (av == NULL)
		return false;
	char extra[2][64];
	int total = n;
	if (status >= -255) {
		snprintf(extra[0], sizeof extra[0], "status=%d", status);
		av[total++] = extra[0];
	}
	if (elapsed_s >= 0) {
		snprintf(extra[1], sizeof extra[1], "elapsed_time=%ld", elapsed_s);
		av[total++] = extra[1];
	}
	size_t cap = body_size(total);
	char *buf = malloc(cap);
	if (buf == NULL) {
		free_pairs(av, n + 2);
		snprintf(why, whylen, "out of memory");
		return false;
	}
	tj_writer w;
	tjw_init(&w, buf, cap);
	tjw_begin(&w);
	tjw_str(&w, "flags", flags);
	tjw_str(&w, "user", user);
	tjw_str(&w, "task_id", task_id);
	if (c->ack != NULL && c->ack[0] != '\0')
		tjw_str(&w, "ack", c->ack);
	tjw_strs(&w, "av", (const char *const *)av, (size_t)total);
	put_int(&w, "priv_lvl", c->priv_lvl);
	if (c->port != NULL && c->port[0] != '\0')
		tjw_str(&w, "port", c->port);
	if (c->rem_addr != NULL && c->rem_addr[0] != '\0')
		tjw_str(&w, "rem_addr", c->rem_addr);
	tjw_end(&w);
	free_pairs(av, n + 2);
	call->kept = w.err ? NULL : free_kept(c);
	enum th_err e = w.err	      ? TH_ARG
			: call->kept ? th_conn_send(call->kept, sock_of(c), timeout_of(c), c->daemon_uid, "POST",
						    "/v1/account", w.buf, w.len)
				     : th_send(&call->call, sock_of(c), timeout_of(c), c->daemon_uid, "POST", "/v1/account",
					       w.buf, w.len);
	free(buf);
	if (e != TH_OK) {
		snprintf(why, whylen, "agent: %s", th_strerror(e));
		return false;
	}
	if (call->kept == NULL) {
		/* Its own connection: moved up and identified, as a kept one is (th_conn). */
		int hi = fcntl(call->call.fd, F_DUPFD_CLOEXEC, SA_FD_MIN);
		if (hi >= 0) {
			close(call->call.fd);
			call->call.fd = hi;
		}
		struct stat st;
		if (fstat(call->call.fd, &st) != 0) {
			th_abandon(&call->call);
			snprintf(why, whylen, "agent: %s", th_strerror(TH_IO));
			return false;
		}
		call->dev = (unsigned long long)st.st_dev;
		call->ino = (unsigned long long)st.st_ino;
	}
	call->sent = true;
	return true;
}

/* own_fd reports whether a call's own descriptor is still its connection (not replaced by a redirection). */
static bool own_fd(const struct sa_call *call)
{
	struct stat st;
	return call->call.fd >= 0 && fstat(call->call.fd, &st) == 0 && (unsigned long long)st.st_dev == call->dev &&
	       (unsigned long long)st.st_ino == call->ino;
}

bool sa_account_ready(struct sa_call *call)
{
	if (!call->sent)
		return true;
	int fd = call->kept != NULL ? call->kept->fd : call->call.fd;
	long long deadline = call->kept != NULL ? call->kept->deadline : call->call.deadline;
	if (fd < 0 || (call->kept == NULL && !own_fd(call)))
		return true;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 >= deadline)
		return true;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) != 0;
}

void sa_account_drop(struct sa_call *call)
{
	if (!call->sent)
		return;
	call->sent = false;
	if (call->kept != NULL)
		th_conn_close(call->kept); /* closes only this process's own connection */
	else if (own_fd(call))
		th_abandon(&call->call);
}

bool sa_account_end(struct sa_call *call, char *why, size_t whylen)
{
	if (!call->sent) {
		snprintf(why, whylen, "not sent");
		return false;
	}
	call->sent = false;
	th_response resp;
	enum th_err e;
	if (call->kept != NULL) {
		e = th_conn_recv(call->kept, &resp);
	} else if (!own_fd(call)) {
		call->call.fd = -1; /* someone else's descriptor now: not ours to close */
		snprintf(why, whylen, "its connection to the agent was replaced by a redirection");
		return false;
	} else {
		e = th_recv(&call->call, &resp);
	}
	if (e != TH_OK) {
		snprintf(why, whylen, "agent: %s", th_strerror(e));
		return false;
	}
	tj_span doc;
	bool json = resp.body_len > 0 && tj_parse(resp.body, resp.body_len, &doc) == 0;
	char *result = json ? field(doc, "result") : NULL;
	bool ok = resp.status == 200 && result != NULL &&
		  (strcmp(result, "ok") == 0 || strcmp(result, "durable") == 0 || strcmp(result, "queued") == 0);
	if (!ok)
		snprintf(why, whylen, "HTTP %d, result %s", resp.status, result ? result : "none");
	free(result);
	th_response_free(&resp);
	return ok;
}

bool sa_account(const struct sa_config *c, const char *flags, const char *user, const char *task_id,
		const char *cmd, char *const *args, int nargs, int status, long elapsed_s, char *why, size_t whylen)
{
	struct sa_call call;
	if (!sa_account_begin(c, flags, user, task_id, cmd, args, nargs, status, elapsed_s, &call, why, whylen))
		return false;
	return sa_account_end(&call, why, whylen);
}

bool sa_in_group(const char *group)
{
	if (group == NULL || group[0] == '\0')
		return false;
	struct group gr, *res = NULL;
	char buf[4096];
	if (getgrnam_r(group, &gr, buf, sizeof buf, &res) != 0 || res == NULL)
		return false;
	if (getgid() == gr.gr_gid || getegid() == gr.gr_gid)
		return true;
	gid_t gids[256];
	int n = getgroups(256, gids);
	for (int i = 0; i < n; i++)
		if (gids[i] == gr.gr_gid)
			return true;
	return false;
}

bool sa_fallback(const struct sa_config *c) { return sa_in_group(c->fallback_group); }

const char *sa_user(char *buf, size_t cap)
{
	struct passwd pw, *res = NULL;
	char tmp[4096];
	if (getpwuid_r(getuid(), &pw, tmp, sizeof tmp, &res) != 0 || res == NULL)
		return NULL;
	/* A TACACS+ user mapped to a template account by libnss_tacagent (docs/nss.md) shares the template's
	 * uid with every user of that template, and getpwuid names the template. The login name sshd and
	 * login put in LOGNAME is taken instead when NSS maps that very name to this uid: it can only name a
	 * user of the same account, never one with another uid. */
	const char *login = getenv("LOGNAME");
	uid_t uid = pw.pw_uid;
	if (login != NULL && login[0] != '\0' && strcmp(login, pw.pw_name) != 0 && strlen(login) < 256) {
		struct passwd lpw, *lres = NULL;
		char ltmp[4096];
		if (getpwnam_r(login, &lpw, ltmp, sizeof ltmp, &lres) == 0 && lres != NULL && lpw.pw_uid == uid &&
		    strlen(lpw.pw_name) + 1 <= cap) {
			strcpy(buf, lpw.pw_name);
			return buf;
		}
	}
	if (strlen(pw.pw_name) + 1 > cap)
		return NULL;
	strcpy(buf, pw.pw_name);
	return buf;
}
