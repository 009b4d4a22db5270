/* libFuzzer target: w_split and w_keyword on any text (what BASH_COMMAND can hold), and sa_escape on every
 * word. Invariants: every word is a non-empty substring of the input, in order; escaping fits the bound it
 * reports and produces printable ASCII only. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shellauth.h"
#include "words.h"

static struct w_list l;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	(void)w_keyword(s);
	if (w_split(s, &l) != 0) {
		free(s);
		return 0;
	}
	const char *from = s;
	for (int i = 0; i < l.n; i++) {
		const char *w = l.w[i].text;
		if (w[0] == '\0')
			abort();
		const char *at = strstr(from, w);
		if (at == NULL)
			abort();
		from = at + strlen(w);
		char out[SA_MAX_PAIR + 1];
		int n = sa_escape(w, out, sizeof out);
		if (n >= 0) {
			if ((size_t)n != strlen(out))
				abort();
			for (int k = 0; k < n; k++)
				if (out[k] < 0x20 || out[k] > 0x7e)
					abort();
		}
	}
	w_free(&l);
	free(s);
	return 0;
}
