/* A minimal HTTP/1.1 client for tacagent's local API on its unix socket (docs/api.md): one request per
 * connection ("Connection: close"), or several in turn on a kept connection (th_conn); a Content-Length
 * body, and one deadline for connect, write and read together. No threads, no signals (writes use
 * MSG_NOSIGNAL), no global state. */
#ifndef TACAGENT_HTTP_H
#define TACAGENT_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* TH_MAX_HEADER bounds the status line and headers of an answer; TH_MAX_RESPONSE the whole answer. The
 * agent's answers are a few hundred bytes; a longer one is refused, not truncated. */
#define TH_MAX_HEADER (8 * 1024)
#define TH_MAX_RESPONSE (256 * 1024)

/* The outcomes of th_request besides TH_OK. */
enum th_err {
	TH_OK = 0,
	TH_NOAGENT,  /* nothing listens on the socket: the agent is not running */
	TH_TIMEOUT,  /* the deadline passed */
	TH_IO,       /* the connection failed mid-way */
	TH_PROTOCOL, /* the answer is not HTTP we understand, or too large */
	TH_NOMEM,
	TH_ARG, /* a bad argument (socket path too long, ...) */
	TH_PEER, /* the process serving the socket is not root or the configured daemon uid: nothing was sent */
};

/* TH_ROOT_ONLY as th_request's daemon_uid: only root may serve the socket. */
#define TH_ROOT_ONLY (-1L)

/* th_response is a parsed answer. body is NUL-terminated (the NUL is not counted in body_len). */
typedef struct {
	int status;
	char *body;
	size_t body_len;
	long retry_after; /* seconds from a Retry-After header, or -1 */
	char *raw;        /* the whole answer (owns body) */
	long peer_uid;    /* the uid serving the socket (SO_PEERCRED), -1 when not known; set with TH_PEER too */
} th_response;

/* th_request sends one request (body may be NULL for GET) to the unix socket at socket_path and reads the
 * answer, all within timeout_ms. Before a byte is sent, the kernel's word on who serves the socket
 * (SO_PEERCRED, socket(7)) must be uid 0 or daemon_uid (TH_ROOT_ONLY: root only); otherwise TH_PEER, with
 * out->peer_uid set, and nothing was written: a password or a record never goes to a process that took the
 * agent's place. On TH_OK the caller frees *out with th_response_free. */
enum th_err th_request(const char *socket_path, int timeout_ms, long daemon_uid, const char *method,
		       const char *path, const char *body, size_t body_len, th_response *out);

void th_response_free(th_response *r);

/* th_call is a request sent and not read yet: th_request in two halves, so that a caller can have several
 * requests in flight (the bash hook sends a STOP while it asks for the next command's authorization). */
typedef struct {
	int fd;
	long long deadline; /* of the whole request, from th_send */
	long peer_uid;
} th_call;

/* th_send connects, checks the peer as th_request does, and sends the request; on TH_OK the caller must
 * call th_recv (or th_abandon) exactly once. On error nothing is left open (c->peer_uid set for TH_PEER). */
enum th_err th_send(th_call *c, const char *socket_path, int timeout_ms, long daemon_uid, const char *method,
		    const char *path, const char *body, size_t body_len);
/* th_recv reads the answer of a sent request within its deadline and closes the connection. */
enum th_err th_recv(th_call *c, th_response *out);
/* th_abandon closes a sent request without reading its answer. */
void th_abandon(th_call *c);

/* th_conn is a connection kept open across requests (HTTP/1.1 keep-alive), for a caller that sends many
 * (the bash hook: one per command). One request at a time: th_conn_send, then th_conn_recv. Before it is
 * reused, the connection must still be this process's (a forked child opens its own and closes its copy
 * of the parent's), opened with the same uid and euid, to the same socket and daemon uid, with the
 * descriptor not replaced (fstat), and not closed by the agent while idle (poll); otherwise a new one is
 * opened, and its peer checked as th_send does. When the agent closes a reused connection without any
 * byte of an answer (its idle timeout, a restart), the request is sent once more on a new connection; if
 * that fails, the error is returned (callers fail closed). */
typedef struct {
	int fd;     /* -1: none */
	int min_fd; /* 0, or new descriptors are moved at or above it (out of the way of a shell's redirections) */
	long pid;
	unsigned long uid, euid;
	unsigned long long dev, ino;
	long peer_uid;
	char sock[108];
	long daemon_uid;
	bool used;   /* it has served an answer */
	bool busy;   /* a request is sent whose answer is not read yet */
	bool reused; /* that request went out on a used connection */
	long long deadline;
	char *req; /* that request, for the one resend */
	size_t req_len;
	unsigned long connects; /* connections opened, for tests and benchmarks */
} th_conn;

void th_conn_init(th_conn *k, int min_fd);
/* th_conn_free reports whether k has no request in flight (it may have no connection). */
bool th_conn_free(th_conn *k);
/* th_conn_send sends one request on k (TH_ARG when one is in flight); th_conn_recv reads its answer
 * within the request's deadline. On TH_OK the caller frees *out with th_response_free. */
enum th_err th_conn_send(th_conn *k, const char *socket_path, int timeout_ms, long daemon_uid, const char *method,
			 const char *path, const char *body, size_t body_len);
enum th_err th_conn_recv(th_conn *k, th_response *out);
enum th_err th_conn_request(th_conn *k, const char *socket_path, int timeout_ms, long daemon_uid, const char *method,
			    const char *path, const char *body, size_t body_len, th_response *out);
/* th_conn_close closes k's connection (when it is this process's) and forgets a request in flight. */
void th_conn_close(th_conn *k);

/* TH_ANSWER_MARGIN_MS is the most th_request keeps between the deadline it gives the agent and its own:
 * the agent, at its deadline, cancels the work and answers how it ended (within 1.5 s when its backend is
 * stuck), and that answer must still be read. */
#define TH_ANSWER_MARGIN_MS 2000

/* th_agent_timeout_ms is the deadline th_request sends the agent (header Tacagent-Timeout-Ms, docs/api.md)
 * for a request of timeout_ms: timeout_ms less a margin of a quarter of it, at most TH_ANSWER_MARGIN_MS. */
int th_agent_timeout_ms(int timeout_ms);

/* th_parse parses an answer received so far: buf[0..n), with eof true when the peer closed. Returns 1 when
 * the answer is complete (out filled; out->raw is left NULL, body points into buf), 0 when more bytes are
 * needed, -1 when it is malformed or over the limits. Exposed for the unit tests. */
int th_parse(const char *buf, size_t n, bool eof, th_response *out);

/* th_strerror names an outcome for logs. */
const char *th_strerror(enum th_err e);

#endif
