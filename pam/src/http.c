/* See http.h. */
#define _GNU_SOURCE
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* TH_CONNECT_RETRY_MS is the pause between connect attempts when the agent's listen backlog is full (a unix
 * socket answers EAGAIN then, rather than queueing the connect). */
#define TH_CONNECT_RETRY_MS 10

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* wait_fd polls fd for events until the deadline; 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

static enum th_err dial(const char *path, long long deadline, int *fdp)
{
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	size_t l = strlen(path);
	if (l == 0 || l >= sizeof sa.sun_path)
		return TH_ARG;
	memcpy(sa.sun_path, path, l);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return errno == ENOMEM || errno == ENOBUFS ? TH_NOMEM : TH_IO;
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			long long left = deadline - now_ms();
			if (left <= 0) {
				close(fd);
				return TH_TIMEOUT;
			}
			poll(NULL, 0, left < TH_CONNECT_RETRY_MS ? (int)left : TH_CONNECT_RETRY_MS);
			continue;
		}
		if (errno == EINPROGRESS) {
			int r = wait_fd(fd, POLLOUT, deadline);
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			if (r == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
				break;
			close(fd);
			return r == 0 ? TH_TIMEOUT : TH_NOAGENT;
		}
		int e = errno;
		close(fd);
		/* ENOENT: no socket file; ECONNREFUSED: a stale file, nobody listening; EACCES: not ours to use. */
		return e == ENOENT || e == ECONNREFUSED || e == EACCES || e == ENOTDIR ? TH_NOAGENT : TH_IO;
	}
	*fdp = fd;
	return TH_OK;
}

static enum th_err send_all(int fd, const char *p, size_t n, long long deadline)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int r = wait_fd(fd, POLLOUT, deadline);
			if (r == 0)
				return TH_TIMEOUT;
			if (r < 0)
				return TH_IO;
			continue;
		}
		return TH_IO;
	}
	return TH_OK;
}

/* find returns the offset of needle in buf[0..n), or -1. */
static long find(const char *buf, size_t n, const char *needle)
{
	size_t l = strlen(needle);
	if (n < l)
		return -1;
	for (size_t i = 0; i + l <= n; i++)
		if (memcmp(buf + i, needle, l) == 0)
			return (long)i;
	return -1;
}

/* parse_uint reads a decimal number of at most 9 digits from s[0..n) (surrounding spaces allowed). */
static long parse_uint(const char *s, size_t n)
{
	while (n > 0 && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n == 0 || n > 9)
		return -1;
	long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int th_parse(const char *buf, size_t n, bool eof, th_response *out)
{
	long hend = find(buf, n > TH_MAX_HEADER ? TH_MAX_HEADER : n, "\r\n\r\n");
	if (hend < 0)
		return n >= TH_MAX_HEADER || eof ? -1 : 0;
	/* Status line: HTTP/1.x SSS reason */
	if (hend < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') || buf[8] != ' ')
		return -1;
	long status = parse_uint(buf + 9, 3);
	if (status < 100 || status > 599 || (hend > 12 && buf[12] != ' ' && buf[12] != '\r'))
		return -1;
	long clen = -1, retry = -1;
	const char *line = memchr(buf, '\n', (size_t)hend);
	while (line != NULL && line + 1 < buf + hend) {
		const char *ls = line + 1;
		const char *le = memchr(ls, '\r', (size_t)(buf + hend - ls));
		if (le == NULL)
			le = buf + hend;
		const char *colon = memchr(ls, ':', (size_t)(le - ls));
		if (colon == NULL)
			return -1;
		size_t nl = (size_t)(colon - ls);
		const char *v = colon + 1;
		size_t vl = (size_t)(le - v);
		if (nl == 14 && strncasecmp(ls, "Content-Length", 14) == 0) {
			long c = parse_uint(v, vl);
			if (c < 0 || (clen >= 0 && c != clen))
				return -1;
			clen = c;
		} else if (nl == 17 && strncasecmp(ls, "Transfer-Encoding", 17) == 0) {
			return -1; /* the agent always sends Content-Length; chunking is not spoken here */
		} else if (nl == 11 && strncasecmp(ls, "Retry-After", 11) == 0) {
			retry = parse_uint(v, vl);
		}
		line = memchr(ls, '\n', (size_t)(buf + hend - ls));
	}
	size_t bstart = (size_t)hend + 4;
	if (clen >= 0) {
		if ((size_t)clen > TH_MAX_RESPONSE - bstart)
			return -1;
		if (n < bstart + (size_t)clen)
			return eof ? -1 : 0;
		if (n > bstart + (size_t)clen)
			return -1; /* bytes after the answer: not one answer */
	} else {
		if (!eof)
			return 0; /* the body runs until the close */
		clen = (long)(n - bstart);
	}
	out->status = (int)status;
	out->body = (char *)buf + bstart;
	out->body_len = (size_t)clen;
	out->retry_after = retry;
	out->raw = NULL;
	return 1;
}

/* peer_ok checks the credentials the kernel recorded for the process that serves the socket (those of its
 * listen() call; the peer cannot forge them). */
static enum th_err peer_ok(int fd, long daemon_uid, long *peer_uid)
{
	struct ucred cred;
	socklen_t cl = sizeof cred;
	memset(&cred, 0, sizeof cred);
	*peer_uid = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 || cl != sizeof cred)
		return TH_PEER; /* not known: not trusted */
	*peer_uid = (long)cred.uid;
	if (cred.uid == 0 || (daemon_uid >= 0 && (long)cred.uid == daemon_uid))
		return TH_OK;
	return TH_PEER;
}

int th_agent_timeout_ms(int timeout_ms)
{
	if (timeout_ms <= 0)
		return 0;
	int margin = timeout_ms / 4;
	if (margin > TH_ANSWER_MARGIN_MS)
		margin = TH_ANSWER_MARGIN_MS;
	return timeout_ms - margin;
}

/* build_request writes the request line, headers and body into one new buffer (one send). Without keep,
 * it asks the agent to close the connection after its answer. */
static enum th_err build_request(int timeout_ms, const char *method, const char *path, const char *body,
				 size_t body_len, bool keep, char **out, size_t *out_len)
{
	char head[512];
	int hl;
	/* The agent gets a deadline a margin earlier than ours, so that its answer (a FAIL it saw, or "no
	 * answer in time") reaches us before we stop reading: see th_agent_timeout_ms. */
	int agent_ms = th_agent_timeout_ms(timeout_ms);
	const char *conn = keep ? "" : "Connection: close\r\n";
	if (body != NULL)
		hl = snprintf(head, sizeof head,
			      "%s %s HTTP/1.1\r\nHost: tacagent\r\nUser-Agent: pam_tacagent\r\n%s"
			      "Tacagent-Timeout-Ms: %d\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			      method, path, conn, agent_ms, body_len);
	else
		hl = snprintf(head, sizeof head,
			      "%s %s HTTP/1.1\r\nHost: tacagent\r\nUser-Agent: pam_tacagent\r\n%s"
			      "Tacagent-Timeout-Ms: %d\r\n\r\n",
			      method, path, conn, agent_ms);
	if (hl < 0 || (size_t)hl >= sizeof head)
		return TH_ARG;
	size_t bl = body != NULL ? body_len : 0;
	char *buf = malloc((size_t)hl + bl + 1);
	if (buf == NULL)
		return TH_NOMEM;
	memcpy(buf, head, (size_t)hl);
	if (bl > 0)
		memcpy(buf + hl, body, bl);
	*out = buf;
	*out_len = (size_t)hl + bl;
	return TH_OK;
}

/* open_checked dials the socket and checks who serves it (peer_ok) before anything is written. */
static enum th_err open_checked(const char *socket_path, long long deadline, long daemon_uid, int *fdp,
				long *peer_uid)
{
	int fd = -1;
	enum th_err e = dial(socket_path, deadline, &fd);
	if (e != TH_OK)
		return e;
	e = peer_ok(fd, daemon_uid, peer_uid);
	if (e != TH_OK) {
		close(fd);
		return e;
	}
	*fdp = fd;
	return TH_OK;
}

enum th_err th_send(th_call *c, const char *socket_path, int timeout_ms, long daemon_uid, const char *method,
		    const char *path, const char *body, size_t body_len)
{
	c->fd = -1;
	c->peer_uid = -1;
	if (socket_path == NULL || method == NULL || path == NULL || timeout_ms <= 0)
		return TH_ARG;
	c->deadline = now_ms() + timeout_ms;
	char *req = NULL;
	size_t rl = 0;
	enum th_err e = build_request(timeout_ms, method, path, body, body_len, false, &req, &rl);
	if (e != TH_OK)
		return e;
	int fd = -1;
	e = open_checked(socket_path, c->deadline, daemon_uid, &fd, &c->peer_uid);
	if (e == TH_OK) {
		e = send_all(fd, req, rl, c->deadline);
		if (e != TH_OK)
			close(fd);
	}
	free(req);
	if (e != TH_OK)
		return e;
	c->fd = fd;
	return TH_OK;
}

/* read_answer reads one answer from fd within deadline, leaving fd open. *got counts the bytes received:
 * a kept connection the agent closed before reading the request gives TH_PROTOCOL or TH_IO with none. On
 * TH_OK out->raw owns the answer. */
static enum th_err read_answer(int fd, long long deadline, th_response *out, size_t *got)
{
	enum th_err e = TH_OK;
	size_t cap = 4096, n = 0;
	*got = 0;
	char *buf = malloc(cap + 1);
	if (buf == NULL)
		return TH_NOMEM;
	bool eof = false;
	for (;;) {
		int pr = th_parse(buf, n, eof, out);
		if (pr == 1)
			break;
		if (pr < 0 || eof) {
			e = TH_PROTOCOL;
			break;
		}
		if (n == cap) {
			if (cap >= TH_MAX_RESPONSE) {
				e = TH_PROTOCOL;
				break;
			}
			size_t ncap = cap * 2 > TH_MAX_RESPONSE ? TH_MAX_RESPONSE : cap * 2;
			char *nb = realloc(buf, ncap + 1);
			if (nb == NULL) {
				e = TH_NOMEM;
				break;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t r = recv(fd, buf + n, cap - n, 0);
		if (r > 0) {
			n += (size_t)r;
			*got = n;
			continue;
		}
		if (r == 0) {
			eof = true;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int w = wait_fd(fd, POLLIN, deadline);
			if (w == 0) {
				e = TH_TIMEOUT;
				break;
			}
			if (w < 0) {
				e = TH_IO;
				break;
			}
			continue;
		}
		e = TH_IO;
		break;
	}
	if (e != TH_OK) {
		free(buf);
		memset(out, 0, sizeof *out);
		return e;
	}
	/* th_parse pointed body into buf; terminate it for the JSON reader and callers. */
	out->raw = buf;
	out->body[out->body_len] = '\0';
	return TH_OK;
}

enum th_err th_recv(th_call *c, th_response *out)
{
	memset(out, 0, sizeof *out);
	out->peer_uid = c->peer_uid;
	int fd = c->fd;
	c->fd = -1;
	if (fd < 0)
		return TH_ARG;
	size_t got;
	enum th_err e = read_answer(fd, c->deadline, out, &got);
	close(fd);
	out->peer_uid = c->peer_uid;
	return e;
}

void th_abandon(th_call *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

enum th_err th_request(const char *socket_path, int timeout_ms, long daemon_uid, const char *method,
		       const char *path, const char *body, size_t body_len, th_response *out)
{
	th_call c;
	memset(out, 0, sizeof *out);
	enum th_err e = th_send(&c, socket_path, timeout_ms, daemon_uid, method, path, body, body_len);
	if (e != TH_OK) {
		out->peer_uid = c.peer_uid;
		return e;
	}
	return th_recv(&c, out);
}

void th_response_free(th_response *r)
{
	if (r == NULL)
		return;
	free(r->raw);
	memset(r, 0, sizeof *r);
}

const char *th_strerror(enum th_err e)
{
	switch (e) {
	case TH_OK: return "ok";
	case TH_NOAGENT: return "the agent is not running (nothing listens on its socket)";
	case TH_TIMEOUT: return "the agent did not answer in time";
	case TH_IO: return "the connection to the agent failed";
	case TH_PROTOCOL: return "the agent's answer is malformed or too large";
	case TH_NOMEM: return "out of memory";
	case TH_ARG: return "bad request arguments";
	case TH_PEER: return "the process serving the agent's socket is not root or the daemon user; nothing was sent";
	}
	return "unknown error";
}

/* has_close reports whether an answer's headers ask to close the connection ("Connection: close"). */
static bool has_close(const th_response *r)
{
	if (r->raw == NULL || r->body == NULL)
		return true;
	const char *h = r->raw;
	size_t hn = (size_t)(r->body - r->raw);
	static const char name[] = "\r\nconnection:";
	size_t nl = sizeof name - 1;
	for (size_t i = 0; i + nl <= hn; i++) {
		if (strncasecmp(h + i, name, nl) != 0)
			continue;
		const char *v = h + i + nl;
		while (v < h + hn && (*v == ' ' || *v == '\t'))
			v++;
		if ((size_t)(h + hn - v) >= 5 && strncasecmp(v, "close", 5) == 0)
			return true;
	}
	return false;
}

void th_conn_init(th_conn *k, int min_fd)
{
	memset(k, 0, sizeof *k);
	k->fd = -1;
	k->min_fd = min_fd;
	k->peer_uid = -1;
}

/* conn_ours reports whether k's descriptor is still the connection it opened, in this process, with
 * the credentials it was opened with. A forked child's copy is closed here (the parent's stays open); a
 * descriptor the shell's user replaced (`exec 150>file`) is forgotten, not closed. */
static bool conn_ours(th_conn *k)
{
	if (k->fd < 0)
		return false;
	struct stat st;
	bool same = fstat(k->fd, &st) == 0 && (unsigned long long)st.st_dev == k->dev &&
		    (unsigned long long)st.st_ino == k->ino;
	if (same && k->pid == (long)getpid() && k->uid == (unsigned long)getuid() &&
	    k->euid == (unsigned long)geteuid())
		return true;
	if (same)
		close(k->fd);
	k->fd = -1;
	k->busy = false;
	free(k->req);
	k->req = NULL;
	return false;
}

/* conn_stale reports whether the agent closed a kept connection (or sent something unasked) while it
 * was idle: it is then closed, and a new one is opened instead. */
static bool conn_stale(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
	int r;
	do
		r = poll(&p, 1, 0);
	while (r < 0 && errno == EINTR);
	return r != 0;
}

static void conn_drop(th_conn *k)
{
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
	k->used = false;
}

static enum th_err conn_open(th_conn *k, long long deadline)
{
	int fd = -1;
	enum th_err e = open_checked(k->sock, deadline, k->daemon_uid, &fd, &k->peer_uid);
	if (e != TH_OK)
		return e;
	if (k->min_fd > 0 && fd < k->min_fd) {
		int hi = fcntl(fd, F_DUPFD_CLOEXEC, k->min_fd);
		if (hi >= 0) {
			close(fd);
			fd = hi;
		}
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return TH_IO;
	}
	k->fd = fd;
	k->dev = (unsigned long long)st.st_dev;
	k->ino = (unsigned long long)st.st_ino;
	k->pid = (long)getpid();
	k->uid = (unsigned long)getuid();
	k->euid = (unsigned long)geteuid();
	k->used = false;
	k->connects++;
	return TH_OK;
}

bool th_conn_free(th_conn *k)
{
	if (!conn_ours(k))
		return true;
	return !k->busy;
}

enum th_err th_conn_send(th_conn *k, const char *socket_path, int timeout_ms, long daemon_uid, const char *method,
			 const char *path, const char *body, size_t body_len)
{
	if (socket_path == NULL || method == NULL || path == NULL || timeout_ms <= 0 ||
	    strlen(socket_path) >= sizeof k->sock)
		return TH_ARG;
	bool ours = conn_ours(k);
	if (ours && k->busy)
		return TH_ARG; /* one request at a time: read the answer first */
	k->deadline = now_ms() + timeout_ms;
	/* Another socket or daemon uid than the connection was checked for: a new connection. */
	if (ours && (strcmp(k->sock, socket_path) != 0 || k->daemon_uid != daemon_uid || conn_stale(k->fd)))
		conn_drop(k);
	snprintf(k->sock, sizeof k->sock, "%s", socket_path);
	k->daemon_uid = daemon_uid;
	char *req = NULL;
	size_t rl = 0;
	enum th_err e = build_request(timeout_ms, method, path, body, body_len, true, &req, &rl);
	if (e != TH_OK)
		return e;
	for (int attempt = 0;; attempt++) {
		if (k->fd < 0 && (e = conn_open(k, k->deadline)) != TH_OK)
			break;
		k->reused = k->used;
		e = send_all(k->fd, req, rl, k->deadline);
		if (e == TH_OK)
			break;
		bool again = k->reused && e == TH_IO && attempt == 0;
		conn_drop(k);
		if (!again)
			break;
	}
	if (e != TH_OK) {
		free(req);
		return e;
	}
	k->req = req;
	k->req_len = rl;
	k->busy = true;
	return TH_OK;
}

enum th_err th_conn_recv(th_conn *k, th_response *out)
{
	memset(out, 0, sizeof *out);
	out->peer_uid = k->peer_uid;
	if (!conn_ours(k) || !k->busy)
		return TH_ARG;
	enum th_err e;
	for (int attempt = 0;; attempt++) {
		size_t got = 0;
		e = read_answer(k->fd, k->deadline, out, &got);
		if (e == TH_OK)
			break;
		/* A kept connection closed by the agent with no byte of an answer (its idle timeout, a restart)
		 * did not serve the request: it is sent once more on a new connection. At least once: an agent
		 * that died after acting on it and before answering sees it twice. */
		bool again = k->reused && got == 0 && (e == TH_PROTOCOL || e == TH_IO) && attempt == 0;
		conn_drop(k);
		if (!again)
			break;
		if ((e = conn_open(k, k->deadline)) != TH_OK)
			break;
		k->reused = false;
		if ((e = send_all(k->fd, k->req, k->req_len, k->deadline)) != TH_OK) {
			conn_drop(k);
			break;
		}
	}
	if (e == TH_OK) {
		if (has_close(out))
			conn_drop(k);
		else
			k->used = true;
	}
	out->peer_uid = k->peer_uid;
	free(k->req);
	k->req = NULL;
	k->busy = false;
	return e;
}

enum th_err th_conn_request(th_conn *k, const char *socket_path, int timeout_ms, long daemon_uid, const char *method,
			    const char *path, const char *body, size_t body_len, th_response *out)
{
	memset(out, 0, sizeof *out);
	enum th_err e = th_conn_send(k, socket_path, timeout_ms, daemon_uid, method, path, body, body_len);
	if (e != TH_OK) {
		out->peer_uid = k->peer_uid;
		return e;
	}
	return th_conn_recv(k, out);
}

void th_conn_close(th_conn *k)
{
	if (conn_ours(k))
		close(k->fd);
	k->fd = -1;
	k->busy = false;
	k->used = false;
	free(k->req);
	k->req = NULL;
}
