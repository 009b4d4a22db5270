/* fakeagent: a test double of the agent's socket for the PAM tests (pam/peer_test.go), which the real
 * daemon cannot play: a socket served by a uid that is not root, and an agent that answers with a user the
 * module did not ask about.
 *
 *   fakeagent SOCKET UID BODY LOG
 *
 * binds SOCKET as the caller (root, so that it can write the directory), drops to UID (group too) before
 * listen() -- the kernel records the listener's credentials at listen(), and SO_PEERCRED reports them to
 * whoever connects -- prints "READY" on stdout, and then, for each connection, appends every byte it
 * receives to LOG (opened before the drop) and answers "HTTP/1.1 200" with BODY as the JSON body. It runs
 * until killed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "fakeagent: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* request_done reports whether buf holds a whole request: headers and the Content-Length body. */
static int request_done(const char *buf, size_t n)
{
	const char *end = memmem(buf, n, "\r\n\r\n", 4);
	if (end == NULL)
		return 0;
	size_t hl = (size_t)(end - buf) + 4;
	const char *cl = memmem(buf, hl, "Content-Length:", 15);
	size_t want = cl != NULL ? (size_t)strtoul(cl + 15, NULL, 10) : 0;
	return n >= hl + want;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: fakeagent SOCKET UID BODY LOG\n");
		return 2;
	}
	uid_t uid = (uid_t)strtoul(argv[2], NULL, 10);
	const char *body = argv[3];
	int log = open(argv[4], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (log < 0)
		die("open log");
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		die("socket");
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(argv[1]) >= sizeof sa.sun_path) {
		fprintf(stderr, "fakeagent: socket path too long\n");
		return 2;
	}
	strcpy(sa.sun_path, argv[1]);
	if (bind(l, (struct sockaddr *)&sa, sizeof sa) != 0)
		die("bind");
	if (uid != getuid()) {
		if (setgroups(0, NULL) != 0 || setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0)
			die("dropping to the uid");
	}
	if (listen(l, 16) != 0)
		die("listen");
	printf("READY\n");
	fflush(stdout);
	for (;;) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR)
				continue;
			die("accept");
		}
		struct timeval tv = {.tv_sec = 10};
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		char buf[16384];
		size_t n = 0;
		while (n < sizeof buf && !request_done(buf, n)) {
			ssize_t r = read(c, buf + n, sizeof buf - n);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			write_all(log, buf + n, (size_t)r);
			n += (size_t)r;
		}
		if (n > 0) {
			char head[256];
			int hl = snprintf(head, sizeof head,
					  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
					  "Connection: close\r\n\r\n", strlen(body));
			write_all(c, head, (size_t)hl);
			write_all(c, body, strlen(body));
		}
		close(c);
	}
}
