/* words: splits the text of one simple command, as bash prints it (BASH_COMMAND), into its words, without
 * expanding anything. Pure C, no bash headers, so that it can be tested on its own. */
#ifndef TACAGENT_WORDS_H
#define TACAGENT_WORDS_H

#include <stdbool.h>
#include <stddef.h>

#define W_MAX 1024

struct w_word {
	char *text;      /* the word as typed (quotes kept), NUL-terminated, owned by the list */
	bool expands;    /* holds $, ` or a process substitution: expanding it could run code or change state */
	bool assignment; /* NAME=..., NAME+=..., NAME[..]=... */
};

struct w_list {
	struct w_word w[W_MAX];
	int n;
	bool truncated; /* more than W_MAX words, or an unterminated quote */
};

/* w_split splits s. Redirections (2>&1, > file, <<EOF, &>> f, {fd}<x) and their targets are dropped; a
 * newline ends the command (a here-document's body follows it). Returns 0, or -1 on no memory. */
int w_split(const char *s, struct w_list *out);
void w_free(struct w_list *l);

/* w_keyword reports whether the text is a compound command's head that bash's DEBUG trap also sees
 * ((( )), [[ ]], for, case, select): not a command to authorize. */
bool w_keyword(const char *s);

#endif
