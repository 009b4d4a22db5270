/* wordstest: table tests of words.c (the split of BASH_COMMAND) and of sa_escape. Exit 0 when all pass. */
#include <stdio.h>
#include <string.h>

#include "shellauth.h"
#include "words.h"

struct tcase {
	const char *in;
	const char *want; /* the words joined by '|'; "E:" before a word marks expands, "A:" an assignment */
};

static const struct tcase cases[] = {
	{"ls -l /tmp", "ls|-l|/tmp"},
	{"echo \"a b\" 'c d' e\\ f", "echo|\"a b\"|'c d'|e\\ f"},
	{"echo hi > /tmp/x 2>&1", "echo|hi"},
	{"cat <<EOF\nbody\nEOF", "cat"},
	{"cat <<< \"here string\" -n", "cat|-n"},
	{"exec {fd}>/tmp/f", "exec"},
	{"echo x &> /dev/null", "echo|x"},
	{"echo x &>> /tmp/log y", "echo|x|y"},
	{"cmd 3<> /dev/tcp/x/1 <&- >| f", "cmd"},
	{"FOO=1 BAR+=2 A[3]=x env", "A:FOO=1|A:BAR+=2|A:A[3]=x|env"},
	{"echo $(date +%s) `id` \"$HOME\" ${x:-a b}", "echo|E:$(date +%s)|E:`id`|E:\"$HOME\"|E:${x:-a b}"},
	{"diff <(ls a) >(cat)", "diff|E:<(ls a)|E:>(cat)"},
	{"echo $'a\\'b' rest", "echo|E:$'a\\'b'|rest"},
	{"echo $(echo \")\" ) z", "echo|E:$(echo \")\" )|z"},
	{"a=(1 2 3)", "A:a=(1 2 3)"},
	{"ls @(a|b)", "ls|@(a|b)"},
	{"2>/dev/null", ""},
	{"echo 2abc 22", "echo|2abc|22"},
	{"", ""},
};

static int check_split(void)
{
	int bad = 0;
	static struct w_list l;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (w_split(cases[i].in, &l) != 0) {
			printf("FAIL %zu: no memory\n", i);
			return 1;
		}
		char got[1024] = "";
		for (int j = 0; j < l.n; j++) {
			if (j > 0)
				strcat(got, "|");
			if (l.w[j].expands)
				strcat(got, "E:");
			if (l.w[j].assignment)
				strcat(got, "A:");
			strncat(got, l.w[j].text, sizeof got - strlen(got) - 1);
		}
		if (strcmp(got, cases[i].want) != 0) {
			printf("FAIL split %zu %s\n  got  %s\n  want %s\n", i, cases[i].in, got, cases[i].want);
			bad++;
		}
		w_free(&l);
	}
	const char *kw[] = {"(( i++ ))", "[[ -f x ]]", "for i in 1 2", "case $x in", "select x in a"};
	for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
		if (!w_keyword(kw[i])) {
			printf("FAIL keyword %s\n", kw[i]);
			bad++;
		}
	if (w_keyword("format disk")) {
		printf("FAIL keyword: format\n");
		bad++;
	}
	return bad;
}

static int check_escape(void)
{
	struct {
		const char *in, *want;
	} e[] = {{"plain", "plain"}, {"a\\b", "a\\\\b"}, {"\xc3\xa9", "\\xc3\\xa9"}, {"tab\there", "tab\\x09here"},
		 {"\x7f", "\\x7f"}};
	int bad = 0;
	char out[64];
	for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
		if (sa_escape(e[i].in, out, sizeof out) < 0 || strcmp(out, e[i].want) != 0) {
			printf("FAIL escape %s: got %s want %s\n", e[i].in, out, e[i].want);
			bad++;
		}
	}
	if (sa_escape("\xff\xff", out, 8) != -1) { /* 8 bytes of output do not fit in 8 with the NUL */
		printf("FAIL escape: overflow not refused\n");
		bad++;
	}
	return bad;
}

int main(void)
{
	int bad = check_split() + check_escape();
	printf("%s\n", bad ? "wordstest: FAIL" : "wordstest: ok");
	return bad ? 1 : 0;
}
