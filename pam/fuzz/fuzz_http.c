/* libFuzzer target of the module's HTTP answer reader (src/http.c th_parse) and the JSON reading of the
 * body that follows it in the module. Properties besides "no crash, no out-of-bounds read": a complete
 * answer's body lies inside the input and its status is 100-599; eof never turns a complete answer into
 * another; a proper prefix of a complete answer is "need more" (never complete, never malformed), which
 * is what the module's read loop relies on. Built by `make -C pam fuzz`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/http.h"
#include "../src/json.h"

#define REQUIRE(c)                                                                                                    \
	do {                                                                                                          \
		if (!(c)) {                                                                                           \
			fprintf(stderr, "fuzz_http: property failed: %s (line %d)\n", #c, __LINE__);                  \
			abort();                                                                                      \
		}                                                                                                     \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
	char *buf = malloc(n ? n : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, n);
	th_response r, re;
	memset(&r, 0, sizeof r);
	memset(&re, 0, sizeof re);
	int got = th_parse(buf, n, false, &r);
	int goteof = th_parse(buf, n, true, &re);
	REQUIRE(got >= -1 && got <= 1 && goteof >= -1 && goteof <= 1);
	REQUIRE(goteof != 0); /* at eof the answer is complete or malformed */
	if (goteof == 1) {
		REQUIRE(re.status >= 100 && re.status <= 599);
		REQUIRE(re.body >= buf && re.body_len <= n && (size_t)(re.body - buf) <= n - re.body_len);
		REQUIRE(re.raw == NULL);
		tj_span doc, v;
		if (tj_parse(re.body, re.body_len, &doc) == 0 && tj_get(doc, "result", &v) == 0) {
			char *s = tj_strdup(v);
			free(s);
		}
	}
	if (got == 1) {
		REQUIRE(goteof == 1 && re.status == r.status && re.body == r.body && re.body_len == r.body_len &&
			re.retry_after == r.retry_after);
		REQUIRE(r.body_len <= TH_MAX_RESPONSE);
		/* A proper prefix is incomplete: needs more. */
		if (n > 0) {
			size_t cut = (size_t)data[n - 1] * 7919 % n;
			th_response p;
			memset(&p, 0, sizeof p);
			REQUIRE(th_parse(buf, cut, false, &p) == 0);
		}
	}
	free(buf);
	return 0;
}
