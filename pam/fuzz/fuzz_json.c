/* libFuzzer target of the module's JSON reader (src/json.c): tj_parse on any bytes, then the walks the
 * module makes of a parsed answer (tj_get, tj_next, tj_strdup, tj_streq, tj_bool) over every value
 * reachable, and the writer's round trip: a string the writer accepts reads back equal, and a string that
 * is not UTF-8 is refused. AddressSanitizer catches a read past the input (it is copied into a buffer of
 * exactly its size, without a NUL); an assertion failure is a crash. Built by `make -C pam fuzz`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/json.h"

#define REQUIRE(c)                                                                                                    \
	do {                                                                                                          \
		if (!(c)) {                                                                                           \
			fprintf(stderr, "fuzz_json: property failed: %s (line %d)\n", #c, __LINE__);                  \
			abort();                                                                                      \
		}                                                                                                     \
	} while (0)

static const char *const keys[] = {"result", "user", "error", "code", "message", "explanation", "conversation",
				   "prompt", "echo", "kind", "server_msg", "args", "servers", "state", "", "a"};

static void inside(tj_span outer, tj_span v)
{
	REQUIRE(v.p >= outer.p && v.n <= outer.n && (size_t)(v.p - outer.p) <= outer.n - v.n);
}

static void walk(tj_span doc, tj_span v, int depth)
{
	inside(doc, v);
	char *s = tj_strdup(v);
	if (s != NULL) {
		REQUIRE(tj_utf8_valid(s, strlen(s)));
		REQUIRE(tj_streq(v, s));
		free(s);
	}
	(void)tj_streq(v, "pass");
	bool b;
	if (tj_bool(v, &b) == 0)
		REQUIRE(v.n == (b ? 4u : 5u));
	if (depth > TJ_MAX_DEPTH + 1)
		return;
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		tj_span m;
		if (tj_get(v, keys[i], &m) == 0)
			walk(doc, m, depth + 1);
	}
	size_t pos = 0;
	tj_span e;
	int r, count = 0;
	while ((r = tj_next(v, &pos, &e)) == 1) {
		REQUIRE(++count <= (int)v.n);
		walk(doc, e, depth + 1);
	}
	REQUIRE(r == 0 || r == -1);
}

static void roundtrip(const uint8_t *data, size_t n)
{
	char *in = malloc(n + 1);
	if (in == NULL)
		return;
	memcpy(in, data, n);
	in[n] = '\0';
	size_t len = strlen(in); /* up to the first NUL: C strings are what the module writes */
	size_t cap = 6 * len + 16;
	char *out = malloc(cap);
	if (out == NULL) {
		free(in);
		return;
	}
	tj_writer w;
	tjw_init(&w, out, cap);
	tjw_begin(&w);
	tjw_str(&w, "k", in);
	tjw_end(&w);
	REQUIRE(w.err == !tj_utf8_valid(in, len));
	if (!w.err) {
		tj_span doc, v;
		REQUIRE(tj_parse(w.buf, w.len, &doc) == 0);
		REQUIRE(tj_get(doc, "k", &v) == 0);
		char *back = tj_strdup(v);
		REQUIRE(back != NULL && strcmp(back, in) == 0);
		free(back);
	}
	/* Too small a buffer is an error, never an overflow. */
	tjw_init(&w, out, len / 2 + 1);
	tjw_begin(&w);
	tjw_str(&w, "k", in);
	tjw_end(&w);
	REQUIRE(w.err);
	free(out);
	free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
	char *buf = malloc(n ? n : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, n);
	tj_span doc;
	if (tj_parse(buf, n, &doc) == 0) {
		tj_span all = {buf, n};
		inside(all, doc);
		walk(doc, doc, 0);
	}
	free(buf);
	roundtrip(data, n);
	return 0;
}
