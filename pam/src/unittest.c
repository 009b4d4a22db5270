/* Unit tests of the module's JSON reader and writer and its HTTP answer parser: table cases, then every
 * truncation and many random mutations of real agent answers, deep nesting and oversized inputs. Run by
 * pam/pam_test.go, also under valgrind: a read out of bounds is a failure even when no assertion sees it.
 * Exit status 0 when every check passed. */
#define _GNU_SOURCE
#include <grp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http.h"
#include "json.h"

static int passed, failed;

#define CHECK(cond, ...)                                                                                     \
	do {                                                                                                 \
		if (cond) {                                                                                  \
			passed++;                                                                            \
		} else {                                                                                     \
			failed++;                                                                            \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                 \
			fprintf(stderr, __VA_ARGS__);                                                        \
			fputc('\n', stderr);                                                                 \
		}                                                                                            \
	} while (0)

/* parse_copy parses a heap copy of exactly n bytes, so valgrind sees any read past the end. */
static int parse_copy(const char *s, size_t n, tj_span *doc, char **keep)
{
	char *c = malloc(n ? n : 1);
	memcpy(c, s, n);
	int r = tj_parse(c, n, doc);
	*keep = c;
	return r;
}

static void test_parse_table(void)
{
	struct {
		const char *in;
		int ok;
	} cases[] = {
		{"{}", 1},
		{" {\"a\":1} ", 1},
		{"[1,2,3]", 1},
		{"\"x\"", 1},
		{"true", 1},
		{"null", 1},
		{"-0.5e+10", 1},
		{"{\"a\":[{\"b\":null}],\"c\":\"\\u00e9\\ud83d\\ude00\"}", 1},
		{"", 0},
		{"{", 0},
		{"{\"a\"}", 0},
		{"{\"a\":}", 0},
		{"{\"a\":1,}", 0},
		{"[1,]", 0},
		{"[1 2]", 0},
		{"01", 0},
		{"1.", 0},
		{"-", 0},
		{"1e", 0},
		{"tru", 0},
		{"nul", 0},
		{"\"abc", 0},
		{"\"a\\x\"", 0},
		{"\"a\\u12\"", 0},
		{"\"a\\u12zz\"", 0},
		{"\"tab\there\"", 0},
		{"\"\xff\"", 0},
		{"\"\xc0\xaf\"", 0},       /* overlong '/' */
		{"\"\xed\xa0\x80\"", 0},   /* a UTF-8 encoded surrogate */
		{"\"\xf4\x90\x80\x80\"", 0}, /* beyond U+10FFFF */
		{"{} {}", 0},
		{"{}x", 0},
		{"{1:2}", 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		tj_span d;
		char *keep;
		int r = parse_copy(cases[i].in, strlen(cases[i].in), &d, &keep);
		CHECK((r == 0) == cases[i].ok, "tj_parse(%s) = %d, want ok=%d", cases[i].in, r, cases[i].ok);
		free(keep);
	}
}

static void test_fields(void)
{
	const char *doc = "{\"result\":\"prompt\",\"conversation\":\"0123456789abcdef0123456789abcdef\","
			  "\"prompt\":{\"message\":\"OTP \\\"code\\\": \\u00e9\\n\",\"echo\":false,\"kind\":\"password\"},"
			  "\"args\":[\"priv-lvl=15\",\"acl*7\", \"x\"],\"empty\":[],\"nul\":\"a\\u0000b\","
			  "\"pair\":\"\\ud83d\\ude00\",\"lone\":\"\\ud800x\"}";
	tj_span d, v, p;
	char *keep;
	CHECK(parse_copy(doc, strlen(doc), &d, &keep) == 0, "valid document refused");
	CHECK(tj_get(d, "result", &v) == 0 && tj_streq(v, "prompt"), "result");
	CHECK(tj_get(d, "missing", &v) != 0, "missing key found");
	CHECK(tj_get(d, "prompt", &p) == 0, "prompt");
	char *m = NULL;
	CHECK(tj_get(p, "message", &v) == 0 && (m = tj_strdup(v)) != NULL && strcmp(m, "OTP \"code\": \xc3\xa9\n") == 0,
	      "message decoded as %s", m ? m : "(null)");
	free(m);
	bool echo = true;
	CHECK(tj_get(p, "echo", &v) == 0 && tj_bool(v, &echo) == 0 && !echo, "echo");
	CHECK(tj_bool(d, &echo) != 0, "an object read as bool");
	CHECK(tj_get(v, "x", &p) != 0, "tj_get on a non-object");
	CHECK(tj_get(d, "args", &v) == 0, "args");
	size_t pos = 0;
	tj_span e;
	const char *want[] = {"priv-lvl=15", "acl*7", "x"};
	int n = 0;
	int r;
	while ((r = tj_next(v, &pos, &e)) == 1) {
		CHECK(n < 3 && tj_streq(e, want[n]), "args[%d]", n);
		n++;
	}
	CHECK(r == 0 && n == 3, "args: %d elements, end %d", n, r);
	CHECK(tj_get(d, "empty", &v) == 0 && (pos = 0, tj_next(v, &pos, &e)) == 0, "empty array");
	CHECK(tj_next(d, &pos, &e) == -1, "tj_next on an object");
	CHECK(tj_get(d, "nul", &v) == 0 && tj_strdup(v) == NULL, "\\u0000 accepted");
	CHECK(tj_get(d, "pair", &v) == 0 && (m = tj_strdup(v)) != NULL && strcmp(m, "\xf0\x9f\x98\x80") == 0,
	      "surrogate pair");
	free(m);
	CHECK(tj_get(d, "lone", &v) == 0 && (m = tj_strdup(v)) != NULL && strcmp(m, "\xef\xbf\xbdx") == 0,
	      "lone surrogate");
	free(m);
	tj_span bad = {"\"abc", 4};
	CHECK(tj_strdup(bad) == NULL, "an unterminated string decoded");
	tj_span none = {NULL, 0};
	CHECK(tj_get(none, "a", &v) != 0 && tj_strdup(none) == NULL, "a NULL span");
	free(keep);
}

static void test_depth(void)
{
	size_t n = 100000;
	char *s = malloc(2 * n);
	for (size_t i = 0; i < n; i++)
		s[i] = '[', s[2 * n - 1 - i] = ']';
	tj_span d;
	CHECK(tj_parse(s, 2 * n, &d) != 0, "100000 levels accepted");
	size_t ok = TJ_MAX_DEPTH;
	CHECK(tj_parse(s + n - ok, 2 * ok, &d) == 0, "%zu levels refused", ok);
	CHECK(tj_parse(s + n - ok - 1, 2 * ok + 2, &d) != 0, "%zu levels accepted", ok + 1);
	free(s);
	/* A huge flat string and a huge array are fine: only nesting is bounded. */
	size_t big = 1 << 20;
	char *h = malloc(big);
	h[0] = '"';
	memset(h + 1, 'a', big - 2);
	h[big - 1] = '"';
	CHECK(tj_parse(h, big, &d) == 0, "a 1 MiB string refused");
	char *m = tj_strdup(d);
	CHECK(m != NULL && strlen(m) == big - 2, "1 MiB string decoded");
	free(m);
	free(h);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* walk exercises every accessor on whatever parsed, recursively. */
static void walk(tj_span v, int depth)
{
	if (depth > TJ_MAX_DEPTH + 2)
		return;
	bool b;
	(void)tj_bool(v, &b);
	free(tj_strdup(v));
	const char *keys[] = {"result", "prompt", "message", "echo", "kind", "args", "error", "code", ""};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		tj_span f;
		if (tj_get(v, keys[i], &f) == 0)
			walk(f, depth + 1);
	}
	size_t pos = 0;
	tj_span e;
	for (int i = 0; i < 64 && tj_next(v, &pos, &e) == 1; i++)
		walk(e, depth + 1);
}

static void test_mutations(void)
{
	const char *seeds[] = {
		"{\"result\":\"prompt\",\"conversation\":\"0123456789abcdef0123456789abcdef\",\"prompt\":{\"message\":\"Password: \",\"echo\":false,\"kind\":\"password\"},\"user\":\"alice\"}\n",
		"{\"result\":\"permit\",\"args\":[\"priv-lvl=15\"],\"effective\":[\"service=shell\",\"cmd=\",\"priv-lvl=15\"],\"server\":\"127.0.0.1:49\",\"session_id\":12345}\n",
		"{\"result\":\"unavailable\",\"user\":\"bob\",\"error\":{\"code\":\"unreachable\",\"message\":\"server unreachable\",\"explanation\":\"default: 127.0.0.1:1 unreachable\"}}\n",
		"{\"error\":{\"code\":\"rate_limited\",\"message\":\"too many failed authentications for this user; retry in 1m0s\"}}\n",
	};
	long parsed = 0, iterations = 0;
	for (size_t si = 0; si < sizeof seeds / sizeof seeds[0]; si++) {
		const char *seed = seeds[si];
		size_t n = strlen(seed);
		tj_span d;
		char *keep;
		CHECK(parse_copy(seed, n, &d, &keep) == 0, "seed %zu refused", si);
		walk(d, 0);
		free(keep);
		/* Every truncation: none may parse except the whole (and the whole minus trailing space). */
		for (size_t cut = 0; cut < n - 1; cut++) {
			int r = parse_copy(seed, cut, &d, &keep);
			CHECK(r != 0, "seed %zu cut at %zu parsed", si, cut);
			free(keep);
		}
		for (int it = 0; it < 20000; it++, iterations++) {
			char buf[512];
			size_t m = n;
			memcpy(buf, seed, n);
			int edits = 1 + (int)(next_rand() % 4);
			for (int k = 0; k < edits && m > 0; k++) {
				size_t at = next_rand() % m;
				switch (next_rand() % 4) {
				case 0: buf[at] = (char)next_rand(); break;
				case 1: buf[at] = "{}[]\",:\\u0e-"[next_rand() % 12]; break;
				case 2: memmove(buf + at, buf + at + 1, m - at - 1); m--; break;
				default:
					if (m < sizeof buf) {
						memmove(buf + at + 1, buf + at, m - at);
						buf[at] = "{}[]\",:\\"[next_rand() % 8];
						m++;
					}
				}
			}
			if (parse_copy(buf, m, &d, &keep) == 0) {
				parsed++;
				walk(d, 0);
			}
			free(keep);
		}
	}
	CHECK(parsed > 0, "no mutation parsed: the mutator is broken");
	printf("mutations: %ld tried, %ld parsed and walked\n", iterations, parsed);
}

static void test_writer(void)
{
	char buf[256];
	tj_writer w;
	tjw_init(&w, buf, sizeof buf);
	tjw_begin(&w);
	tjw_str(&w, "user", "al\"ice\\\n\t\x01\x7f\xc3\xa9");
	tjw_bool(&w, "abort", true);
	const char *av[] = {"service=shell", "cmd="};
	tjw_strs(&w, "av", av, 2);
	tjw_end(&w);
	const char *want = "{\"user\":\"al\\\"ice\\\\\\n\\t\\u0001\\u007f\xc3\xa9\",\"abort\":true,\"av\":[\"service=shell\",\"cmd=\"]}";
	CHECK(!w.err && strcmp(buf, want) == 0 && w.len == strlen(want), "writer wrote %s", buf);
	tj_span d, v;
	CHECK(tj_parse(buf, w.len, &d) == 0 && tj_get(d, "user", &v) == 0 && tj_streq(v, "al\"ice\\\n\t\x01\x7f\xc3\xa9"),
	      "writer output does not round-trip");

	tjw_init(&w, buf, sizeof buf);
	tjw_begin(&w);
	tjw_str(&w, "password", "\xff\xfe");
	tjw_end(&w);
	CHECK(w.err, "invalid UTF-8 written");

	char small[16];
	tjw_init(&w, small, sizeof small);
	tjw_begin(&w);
	tjw_str(&w, "user", "a-rather-long-name");
	tjw_end(&w);
	CHECK(w.err && w.len < sizeof small, "overflow not reported (len %zu)", w.len);
}

static void test_http(void)
{
	struct {
		const char *in;
		int eof;
		int want; /* th_parse's result */
		int status;
		const char *body;
	} cases[] = {
		{"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n{}\n", 0, 1, 200, "{}\n"},
		{"HTTP/1.1 200 OK\r\ncontent-length:3\r\n\r\n{}\n", 0, 1, 200, "{}\n"},
		{"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 60\r\nContent-Length: 2\r\n\r\n{}", 0, 1, 429, "{}"},
		{"HTTP/1.0 503 X\r\n\r\nbody-to-eof", 1, 1, 503, "body-to-eof"},
		{"HTTP/1.0 503 X\r\n\r\nbody-to-eof", 0, 0, 0, NULL},
		{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", 0, 0, 0, NULL},
		{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", 1, -1, 0, NULL},
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{}", 0, -1, 0, NULL},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 0, -1, 0, NULL},
		{"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, -1, 0, NULL},
		{"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", 0, -1, 0, NULL},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 0, -1, 0, NULL},
		{"HTTP/1.1 200 OK\r\nNoColonHere\r\n\r\n", 0, -1, 0, NULL},
		{"HTTP/2 200 OK\r\n\r\n", 1, -1, 0, NULL},
		{"HTTP/1.1 2000 OK\r\n\r\n", 1, -1, 0, NULL},
		{"HTTP/1.1 abc OK\r\n\r\n", 1, -1, 0, NULL},
		{"HTTP/1.1 200", 0, 0, 0, NULL},
		{"HTTP/1.1 200", 1, -1, 0, NULL},
		{"", 1, -1, 0, NULL},
		{"garbage\r\n\r\n", 0, -1, 0, NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = strlen(cases[i].in);
		char *c = malloc(n ? n : 1);
		memcpy(c, cases[i].in, n);
		th_response r;
		memset(&r, 0, sizeof r);
		int got = th_parse(c, n, cases[i].eof, &r);
		CHECK(got == cases[i].want, "th_parse case %zu = %d, want %d", i, got, cases[i].want);
		if (got == 1 && cases[i].want == 1) {
			CHECK(r.status == cases[i].status, "case %zu status %d", i, r.status);
			CHECK(r.body_len == strlen(cases[i].body) && memcmp(r.body, cases[i].body, r.body_len) == 0,
			      "case %zu body", i);
		}
		free(c);
	}
	/* Headers that never end, and a body over the limit. */
	size_t n = TH_MAX_HEADER + 100;
	char *h = malloc(n);
	memcpy(h, "HTTP/1.1 200 OK\r\n", 17);
	memset(h + 17, 'a', n - 17);
	th_response r;
	CHECK(th_parse(h, n, false, &r) == -1, "endless headers accepted");
	free(h);
	char big[128];
	snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", TH_MAX_RESPONSE);
	CHECK(th_parse(big, strlen(big), false, &r) == -1, "a body over TH_MAX_RESPONSE accepted");
	/* Every truncation of a good answer asks for more; random corruption never crashes. */
	const char *good = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"result\":\"ok\"}\n";
	size_t gl = strlen(good);
	for (size_t cut = 0; cut < gl; cut++) {
		char *c = malloc(cut ? cut : 1);
		memcpy(c, good, cut);
		CHECK(th_parse(c, cut, false, &r) == 0, "truncated at %zu: not 'need more'", cut);
		free(c);
	}
	for (int it = 0; it < 20000; it++) {
		char buf[256];
		memcpy(buf, good, gl);
		size_t m = 1 + next_rand() % gl;
		for (int k = 0; k < 3; k++)
			buf[next_rand() % m] = (char)next_rand();
		char *c = malloc(m);
		memcpy(c, buf, m);
		if (th_parse(c, m, next_rand() & 1, &r) == 1) {
			tj_span d;
			if (r.body_len <= m && tj_parse(r.body, r.body_len, &d) == 0)
				walk(d, 0);
		}
		free(c);
	}
}

/* PEER_UID is the uid the server of test_peer listens as when the test runs as root; otherwise it is the
 * test's own (not 0) uid. */
#define PEER_UID 65534

/* peer_server runs in a forked child: it listens on path as a uid that is not 0, and for each of n
 * connections reports on report how many bytes it received, and answers 200 when it received any. */
static void peer_server(const char *path, int ready, int report, int n)
{
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) != 0)
		_exit(2);
	if (getuid() == 0 && (setgroups(0, NULL) != 0 || setresgid(PEER_UID, PEER_UID, PEER_UID) != 0 ||
			      setresuid(PEER_UID, PEER_UID, PEER_UID) != 0))
		_exit(3);
	if (listen(l, 4) != 0)
		_exit(4);
	unsigned uid = (unsigned)getuid();
	if (write(ready, &uid, sizeof uid) != sizeof uid)
		_exit(5);
	static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
	for (int i = 0; i < n; i++) {
		int c = accept(l, NULL, NULL);
		if (c < 0)
			_exit(6);
		/* The client sends its request at once or closes at once: read until the headers' end or EOF. */
		char buf[2048];
		size_t got = 0;
		for (;;) {
			struct pollfd p = {.fd = c, .events = POLLIN};
			if (poll(&p, 1, 10000) != 1)
				break;
			ssize_t r = read(c, buf + got, sizeof buf - got);
			if (r <= 0)
				break;
			got += (size_t)r;
			if (memmem(buf, got, "\r\n\r\n", 4) != NULL || got == sizeof buf)
				break;
		}
		unsigned g = (unsigned)got;
		if (write(report, &g, sizeof g) != sizeof g)
			_exit(7);
		if (got > 0 && write(c, answer, sizeof answer - 1) < 0)
			_exit(8);
		close(c);
	}
	_exit(0);
}

/* test_peer: th_request sends nothing to a socket served by a uid that is neither 0 nor daemon_uid, and
 * talks to it when daemon_uid names it. */
static void test_peer(void)
{
	char dir[] = "/tmp/pam-tacagent-peer-XXXXXX";
	if (mkdtemp(dir) == NULL) {
		CHECK(0, "mkdtemp failed");
		return;
	}
	char path[sizeof dir + 16];
	snprintf(path, sizeof path, "%s/s.sock", dir);
	int ready[2], report[2];
	if (pipe(ready) != 0 || pipe(report) != 0) {
		CHECK(0, "pipe failed");
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(ready[0]);
		close(report[0]);
		peer_server(path, ready[1], report[1], 3);
	}
	close(ready[1]);
	close(report[1]);
	unsigned uid = 0, got = 0;
	CHECK(read(ready[0], &uid, sizeof uid) == sizeof uid && uid != 0, "the peer server did not start as a uid not 0");
	th_response r;
	enum th_err e = th_request(path, 10000, TH_ROOT_ONLY, "POST", "/v1/authenticate", "{\"password\":\"x\"}", 16, &r);
	CHECK(e == TH_PEER && r.peer_uid == (long)uid, "root only: got %d peer %ld, want TH_PEER from uid %u", e,
	      r.peer_uid, uid);
	CHECK(read(report[0], &got, sizeof got) == sizeof got && got == 0, "root only: the server got %u bytes", got);
	th_response_free(&r);
	e = th_request(path, 10000, (long)uid + 1, "GET", "/v1/status", NULL, 0, &r);
	CHECK(e == TH_PEER, "another daemon_uid: got %d, want TH_PEER", e);
	CHECK(read(report[0], &got, sizeof got) == sizeof got && got == 0, "another uid: the server got %u bytes", got);
	th_response_free(&r);
	e = th_request(path, 10000, (long)uid, "GET", "/v1/status", NULL, 0, &r);
	CHECK(e == TH_OK && r.status == 200 && r.peer_uid == (long)uid, "daemon_uid %u: got %d status %d", uid, e, r.status);
	CHECK(read(report[0], &got, sizeof got) == sizeof got && got > 0, "daemon_uid: the server got nothing");
	th_response_free(&r);
	int st = 0;
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the peer server ended with %d", st);
	close(ready[0]);
	close(report[0]);
	unlink(path);
	rmdir(dir);
}

/* test_agent_timeout: the deadline sent to the agent keeps a margin of a quarter, at most 2 s, and is
 * never more than the module's own. */
static void test_agent_timeout(void)
{
	static const int cases[][2] = {{10000, 8000}, {2000, 1500}, {100, 75}, {1, 1}, {600000, 598000}, {8000, 6000},
				       {0, 0}, {-5, 0}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int got = th_agent_timeout_ms(cases[i][0]);
		CHECK(got == cases[i][1], "th_agent_timeout_ms(%d) = %d, want %d", cases[i][0], got, cases[i][1]);
		CHECK(got <= cases[i][0] || cases[i][0] <= 0, "th_agent_timeout_ms(%d) = %d exceeds it", cases[i][0], got);
	}
}

static void test_u32(void)
{
	static const struct {
		const char *doc;
		int want;
		uint32_t v;
	} cases[] = {
		{"0", 0, 0}, {"7", 0, 7}, {"4294967295", 0, 4294967295u}, {"4294967296", -1, 0}, {"01", -1, 0},
		{"-1", -1, 0}, {"1.0", -1, 0}, {"1e3", -1, 0}, {"\"5\"", -1, 0}, {"99999999999", -1, 0}, {"true", -1, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		tj_span doc;
		char *keep;
		uint32_t v = 12345;
		int r = parse_copy(cases[i].doc, strlen(cases[i].doc), &doc, &keep);
		if (r == 0)
			r = tj_u32(doc, &v);
		CHECK(r == cases[i].want && (r != 0 || v == cases[i].v), "tj_u32(%s) = %d %u", cases[i].doc, r, v);
		free(keep);
	}
}

/* kept_read reads one request without a body (up to its blank line); false when the client closed. */
static bool kept_read(int fd)
{
	char buf[2048];
	size_t n = 0;
	while (n < sizeof buf) {
		ssize_t r = read(fd, buf + n, sizeof buf - n);
		if (r <= 0)
			return false;
		n += (size_t)r;
		for (size_t i = 0; i + 4 <= n; i++)
			if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
				return true;
	}
	return false;
}

static void kept_answer(int fd, bool close_hdr)
{
	const char *a = close_hdr ? "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
				  : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
	if (write(fd, a, strlen(a)) < 0)
		_exit(3);
}

/* kept_server plays an agent that closes kept connections in every way a real one may. */
static void kept_server(const char *path, int ready)
{
	alarm(30); /* bounded even when the client under test goes wrong */
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(l, 8) != 0)
		_exit(2);
	if (write(ready, "r", 1) != 1)
		_exit(2);
	/* 1: answers A, then reads B and closes without a byte of answer (the idle timeout's race). */
	int c = accept(l, NULL, NULL);
	if (c < 0 || !kept_read(c))
		_exit(4);
	kept_answer(c, false);
	if (!kept_read(c))
		_exit(5);
	close(c);
	/* 2: B again; answered, then closed while idle (a restart). */
	c = accept(l, NULL, NULL);
	if (c < 0 || !kept_read(c))
		_exit(6);
	kept_answer(c, false);
	close(c);
	/* 3: C, answered with Connection: close. */
	c = accept(l, NULL, NULL);
	if (c < 0 || !kept_read(c))
		_exit(7);
	kept_answer(c, true);
	close(c);
	/* 4: D and E on one connection; 5: the forked child's own. */
	c = accept(l, NULL, NULL);
	for (int i = 0; i < 2; i++) {
		if (c < 0 || !kept_read(c))
			_exit(8);
		kept_answer(c, false);
	}
	int c5 = accept(l, NULL, NULL);
	if (c5 < 0 || !kept_read(c5))
		_exit(9);
	kept_answer(c5, false);
	close(c5);
	close(c);
	close(l);
	_exit(0);
}

static void test_kept(void)
{
	char dir[] = "/tmp/pam-tacagent-kept-XXXXXX";
	if (mkdtemp(dir) == NULL) {
		CHECK(0, "mkdtemp failed");
		return;
	}
	char path[sizeof dir + 16];
	snprintf(path, sizeof path, "%s/s.sock", dir);
	int ready[2];
	if (pipe(ready) != 0) {
		CHECK(0, "pipe failed");
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(ready[0]);
		kept_server(path, ready[1]);
	}
	close(ready[1]);
	char ch;
	CHECK(read(ready[0], &ch, 1) == 1, "the kept server did not start");
	close(ready[0]);
	long me = (long)getuid();
	th_conn k;
	th_conn_init(&k, 150);
	th_response r;
	enum th_err e = th_conn_request(&k, path, 10000, me, "GET", "/v1/status", NULL, 0, &r);
	CHECK(e == TH_OK && r.status == 200 && k.connects == 1 && k.fd >= 150, "A: %d, %lu connects, fd %d", e, k.connects, k.fd);
	th_response_free(&r);
	e = th_conn_request(&k, path, 10000, me, "GET", "/v1/status", NULL, 0, &r);
	CHECK(e == TH_OK && r.status == 200 && k.connects == 2, "B, closed unanswered then sent again: %d, %lu connects", e,
	      k.connects);
	th_response_free(&r);
	/* Wait until the agent's close of connection 2 is visible, then C finds it stale. */
	struct pollfd p = {.fd = k.fd, .events = POLLIN};
	CHECK(poll(&p, 1, 10000) == 1, "connection 2 not closed by the server");
	e = th_conn_request(&k, path, 10000, me, "GET", "/v1/status", NULL, 0, &r);
	CHECK(e == TH_OK && k.connects == 3 && k.fd < 0, "C, stale connection and Connection: close: %d, %lu connects, fd %d",
	      e, k.connects, k.fd);
	th_response_free(&r);
	for (int i = 0; i < 2; i++) {
		e = th_conn_request(&k, path, 10000, me, "GET", "/v1/status", NULL, 0, &r);
		CHECK(e == TH_OK && k.connects == 4, "D/E on one kept connection: %d, %lu connects", e, k.connects);
		th_response_free(&r);
	}
	pid_t child = fork();
	if (child == 0) {
		/* A forked child never writes on its parent's connection: it opens its own. */
		alarm(30);
		e = th_conn_request(&k, path, 10000, me, "GET", "/v1/status", NULL, 0, &r);
		_exit(e == TH_OK && k.connects == 5 ? 0 : 1);
	}
	int st = 0;
	CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the forked child: %d", st);
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the kept server ended with %d", st);
	/* The agent gone: the connection cannot be reopened, and nothing pretends otherwise. */
	unlink(path);
	e = th_conn_request(&k, path, 10000, me, "GET", "/v1/status", NULL, 0, &r);
	CHECK(e == TH_NOAGENT, "no agent: got %d, want TH_NOAGENT", e);
	th_conn_close(&k);
	rmdir(dir);
}

int main(void)
{
	test_u32();
	test_agent_timeout();
	test_peer();
	test_parse_table();
	test_fields();
	test_depth();
	test_mutations();
	test_writer();
	test_http();
	test_kept();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
