/* libFuzzer target of the NSS module's answer reader: the HTTP answer (th_parse, at eof as the module reads
 * it), then the passwd JSON of its body (np_read) into a heap buffer of exactly the size the input's first
 * two bytes choose, looked up by name or by uid as the third byte says. Properties besides "no crash, no
 * out-of-bounds access": a found entry is the one asked for, never uid or gid 0, every string lies inside
 * the buffer and holds no ':' or control character, pw_passwd is "*"; ERANGE only when a larger buffer
 * finds it (the same answer with 64 KiB is found). Built by `make -C nss fuzz`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../pam/src/http.h"
#include "../src/passwd.h"

#define REQUIRE(c)                                                                                                    \
	do {                                                                                                          \
		if (!(c)) {                                                                                           \
			fprintf(stderr, "fuzz_passwd: property failed: %s (line %d)\n", #c, __LINE__);                \
			abort();                                                                                      \
		}                                                                                                     \
	} while (0)

static void check_str(const char *s, const char *buf, size_t buflen)
{
	REQUIRE(s >= buf && s < buf + buflen);
	size_t l = strnlen(s, (size_t)(buf + buflen - s));
	REQUIRE(s + l < buf + buflen); /* terminated inside */
	for (size_t i = 0; i < l; i++)
		REQUIRE((unsigned char)s[i] >= 0x20 && s[i] != ':' && s[i] != 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
	if (n < 3)
		return 0;
	size_t buflen = ((size_t)data[0] << 8 | data[1]) % 2048;
	bool by_uid = data[2] & 1;
	const char *want_name = by_uid ? NULL : "alice";
	unsigned long want_uid = 2015;
	data += 3, n -= 3;
	char *in = malloc(n ? n : 1);
	char *buf = malloc(buflen ? buflen : 1);
	REQUIRE(in != NULL && buf != NULL);
	memcpy(in, data, n);
	th_response r;
	memset(&r, 0, sizeof r);
	if (th_parse(in, n, true, &r) == 1) {
		struct passwd pw;
		memset(&pw, 0, sizeof pw);
		enum np_result res = np_read(r.body, r.body_len, want_name, want_uid, &pw, buf, buflen);
		REQUIRE(res >= NP_FOUND && res <= NP_BAD);
		if (res == NP_FOUND) {
			check_str(pw.pw_name, buf, buflen);
			check_str(pw.pw_passwd, buf, buflen);
			check_str(pw.pw_gecos, buf, buflen);
			check_str(pw.pw_dir, buf, buflen);
			check_str(pw.pw_shell, buf, buflen);
			REQUIRE(strcmp(pw.pw_passwd, "*") == 0);
			REQUIRE(pw.pw_uid != 0 && pw.pw_gid != 0);
			REQUIRE(by_uid ? pw.pw_uid == want_uid : strcmp(pw.pw_name, want_name) == 0);
			REQUIRE(pw.pw_dir[0] == '/' && pw.pw_shell[0] == '/');
		}
		if (res == NP_ERANGE) {
			size_t big = 64 * 1024;
			char *b2 = malloc(big);
			REQUIRE(b2 != NULL);
			struct passwd pw2;
			REQUIRE(np_read(r.body, r.body_len, want_name, want_uid, &pw2, b2, big) == NP_FOUND);
			free(b2);
		}
	}
	free(buf);
	free(in);
	return 0;
}
