/* words.c: see words.h. The grammar is the subset of bash's that print_cmd.c produces for one simple
 * command: words separated by blanks, quoting ('', "", \, $'', $""), expansions that may hold blanks
 * ($( ), $(( )), ${ }, ` `, <( ), >( )), and redirection operators. */
#include "words.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static bool blank(char c) { return c == ' ' || c == '\t'; }

/* skip_balanced returns the index after the bracket that closes the one at s[i] (open), honouring
 * quotes and nesting; len when unterminated. */
static size_t skip_balanced(const char *s, size_t i, size_t len, char open, char close)
{
	int depth = 0;
	for (; i < len; i++) {
		char c = s[i];
		if (c == '\\' && i + 1 < len) {
			i++;
		} else if (c == '\'') {
			const char *q = memchr(s + i + 1, '\'', len - i - 1);
			if (q == NULL)
				return len;
			i = (size_t)(q - s);
		} else if (c == '"') {
			for (i++; i < len && s[i] != '"'; i++)
				if (s[i] == '\\' && i + 1 < len)
					i++;
			if (i >= len)
				return len;
		} else if (c == open) {
			depth++;
		} else if (c == close) {
			if (--depth == 0)
				return i + 1;
		}
	}
	return len;
}

/* redirection reports whether a redirection operator starts at s[i], and its end (after the operator). */
static bool redirection(const char *s, size_t i, size_t len, size_t *end)
{
	size_t j = i;
	if (s[j] == '{') { /* {varname}> */
		size_t k = j + 1;
		while (k < len && (isalnum((unsigned char)s[k]) || s[k] == '_'))
			k++;
		if (k > j + 1 && k < len && s[k] == '}' && k + 1 < len && (s[k + 1] == '<' || s[k + 1] == '>'))
			j = k + 1;
	} else {
		while (j < len && isdigit((unsigned char)s[j]))
			j++;
	}
	if (j < len && s[j] == '&' && j == i && j + 1 < len && s[j + 1] == '>') {
		j += 2; /* &> and &>> */
		if (j < len && s[j] == '>')
			j++;
		*end = j;
		return true;
	}
	if (j >= len || (s[j] != '<' && s[j] != '>'))
		return false;
	if (j + 1 < len && s[j + 1] == '(') /* <( ) and >( ): process substitution, a word */
		return false;
	char op = s[j++];
	if (op == '<') {
		if (j < len && s[j] == '<') {
			j++;
			if (j < len && (s[j] == '<' || s[j] == '-'))
				j++;
		} else if (j < len && (s[j] == '&' || s[j] == '>')) {
			j++;
		}
	} else {
		if (j < len && (s[j] == '>' || s[j] == '|' || s[j] == '&'))
			j++;
	}
	*end = j;
	return true;
}

/* word_end scans one word from s[i]; sets *expands. */
static size_t word_end(const char *s, size_t i, size_t len, bool *expands)
{
	while (i < len && !blank(s[i]) && s[i] != '\n') {
		char c = s[i];
		if (c == '\\') {
			i += i + 1 < len ? 2 : 1;
		} else if (c == '\'') {
			const char *q = memchr(s + i + 1, '\'', len - i - 1);
			i = q == NULL ? len : (size_t)(q - s) + 1;
		} else if (c == '"') {
			for (i++; i < len && s[i] != '"'; i++) {
				if (s[i] == '\\' && i + 1 < len)
					i++;
				else if (s[i] == '$' || s[i] == '`') {
					*expands = true;
					if (s[i] == '$' && i + 1 < len && (s[i + 1] == '(' || s[i + 1] == '{'))
						i = skip_balanced(s, i + 1, len, s[i + 1], s[i + 1] == '(' ? ')' : '}') - 1;
					else if (s[i] == '`') {
						const char *q = memchr(s + i + 1, '`', len - i - 1);
						i = q == NULL ? len - 1 : (size_t)(q - s);
					}
				}
			}
			i = i < len ? i + 1 : len;
		} else if (c == '$') {
			*expands = true;
			if (i + 1 < len && (s[i + 1] == '(' || s[i + 1] == '{'))
				i = skip_balanced(s, i + 1, len, s[i + 1], s[i + 1] == '(' ? ')' : '}');
			else if (i + 1 < len && s[i + 1] == '\'') { /* $'...' */
				for (i += 2; i < len && s[i] != '\''; i++)
					if (s[i] == '\\' && i + 1 < len)
						i++;
				i = i < len ? i + 1 : len;
			} else
				i++;
		} else if (c == '`') {
			*expands = true;
			const char *q = memchr(s + i + 1, '`', len - i - 1);
			i = q == NULL ? len : (size_t)(q - s) + 1;
		} else if ((c == '<' || c == '>') && i + 1 < len && s[i + 1] == '(') {
			*expands = true;
			i = skip_balanced(s, i + 1, len, '(', ')');
		} else if (c == '(' ) {
			i = skip_balanced(s, i, len, '(', ')'); /* a=(1 2) and extglob @(a|b) */
		} else if (c == '<' || c == '>') {
			break; /* an operator glued to the word: the next token */
		} else {
			i++;
		}
	}
	return i;
}

static bool is_assignment(const char *w)
{
	if (!(isalpha((unsigned char)w[0]) || w[0] == '_'))
		return false;
	size_t i = 1;
	while (isalnum((unsigned char)w[i]) || w[i] == '_')
		i++;
	if (w[i] == '[') {
		while (w[i] != '\0' && w[i] != ']')
			i++;
		if (w[i] != ']')
			return false;
		i++;
	}
	if (w[i] == '+')
		i++;
	return w[i] == '=';
}

int w_split(const char *s, struct w_list *out)
{
	memset(out, 0, sizeof *out);
	size_t len = strlen(s), i = 0;
	bool skip_next = false; /* the word after a redirection operator is its target */
	while (i < len) {
		while (i < len && blank(s[i]))
			i++;
		if (i >= len || s[i] == '\n')
			break;
		size_t end;
		if (redirection(s, i, len, &end)) {
			i = end;
			skip_next = true;
			continue;
		}
		bool expands = false;
		size_t start = i;
		i = word_end(s, i, len, &expands);
		if (i == start) { /* a lone operator character we do not know: skip it */
			i++;
			continue;
		}
		if (skip_next) {
			skip_next = false;
			continue;
		}
		if (out->n == W_MAX) {
			out->truncated = true;
			break;
		}
		char *t = malloc(i - start + 1);
		if (t == NULL) {
			w_free(out);
			return -1;
		}
		memcpy(t, s + start, i - start);
		t[i - start] = '\0';
		struct w_word *w = &out->w[out->n++];
		w->text = t;
		w->expands = expands;
		w->assignment = is_assignment(t);
	}
	return 0;
}

void w_free(struct w_list *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->w[i].text);
	l->n = 0;
}

bool w_keyword(const char *s)
{
	while (blank(*s))
		s++;
	static const char *const heads[] = {"((", "[[", "for ", "for\t", "case ", "select ", NULL};
	for (int i = 0; heads[i] != NULL; i++)
		if (strncmp(s, heads[i], strlen(heads[i])) == 0)
			return true;
	return false;
}
