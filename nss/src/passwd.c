/* See passwd.h. */
#include "passwd.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../pam/src/json.h"

bool np_valid_name(const char *name)
{
	if (name == NULL)
		return false;
	size_t n = strnlen(name, NP_MAX_NAME + 1);
	if (n == 0 || n > NP_MAX_NAME || name[0] == '-' || name[0] == '.')
		return false;
	bool digits = true;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (c >= '0' && c <= '9')
			continue;
		digits = false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' || c == '@' || c == '-'))
			return false;
	}
	return !digits;
}

/* passwd_text reports whether a decoded field can stand in a passwd line: no ':', no control character. */
static bool passwd_text(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == ':')
			return false;
	return true;
}

/* The fields of an entry, decoded. Each is at most 255 bytes on the agent's side; 511 leaves room for
 * escapes and refuses anything larger. */
#define NP_FIELD 512

struct fields {
	char name[NP_FIELD], gecos[NP_FIELD], dir[NP_FIELD], shell[NP_FIELD];
	uint32_t uid, gid;
};

/* decode_field decodes member key of obj into out (NP_FIELD bytes): 0, or -1 when it is missing, not a
 * string, too long, holds \u0000, or is unfit for passwd(5). */
static int decode_field(tj_span obj, const char *key, char *out)
{
	tj_span v;
	if (tj_get(obj, key, &v) != 0 || v.n < 2 || v.p[0] != '"' || v.n > 6 * NP_FIELD)
		return -1;
	char *s = tj_strdup(v);
	if (s == NULL)
		return -1;
	size_t l = strlen(s);
	int r = l < NP_FIELD && passwd_text(s) ? 0 : -1;
	if (r == 0)
		memcpy(out, s, l + 1);
	free(s);
	return r;
}

static int read_fields(tj_span pw, struct fields *f)
{
	tj_span v;
	if (decode_field(pw, "name", f->name) != 0 || decode_field(pw, "gecos", f->gecos) != 0 ||
	    decode_field(pw, "dir", f->dir) != 0 || decode_field(pw, "shell", f->shell) != 0)
		return -1;
	if (tj_get(pw, "uid", &v) != 0 || tj_u32(v, &f->uid) != 0 || tj_get(pw, "gid", &v) != 0 || tj_u32(v, &f->gid) != 0)
		return -1;
	return 0;
}

/* put copies s into the caller's buffer; NULL when it does not fit. */
static char *put(char **p, size_t *left, const char *s)
{
	size_t l = strlen(s) + 1;
	if (l > *left)
		return NULL;
	char *at = *p;
	memcpy(at, s, l);
	*p += l;
	*left -= l;
	return at;
}

enum np_result np_read(const char *body, size_t n, const char *want_name, unsigned long want_uid, struct passwd *pw,
		       char *buf, size_t buflen)
{
	tj_span doc, v, ent;
	if (body == NULL || tj_parse(body, n, &doc) != 0 || tj_get(doc, "result", &v) != 0)
		return NP_BAD;
	if (tj_streq(v, "notfound"))
		return NP_NOTFOUND;
	if (tj_streq(v, "unavailable"))
		return NP_UNAVAIL;
	if (!tj_streq(v, "found") || tj_get(doc, "passwd", &ent) != 0)
		return NP_BAD;
	struct fields f;
	if (read_fields(ent, &f) != 0)
		return NP_BAD;
	if (want_name != NULL ? strcmp(f.name, want_name) != 0 : (unsigned long)f.uid != want_uid)
		return NP_BAD;
	/* Never root, whatever answered: a template is an unprivileged account (the agent refuses 0 too). */
	if (f.uid == 0 || f.gid == 0 || f.dir[0] != '/' || f.shell[0] != '/' || !np_valid_name(f.name))
		return NP_BAD;
	char *p = buf;
	size_t left = buf != NULL ? buflen : 0;
	char *name = put(&p, &left, f.name), *pass = put(&p, &left, "*"), *gecos = put(&p, &left, f.gecos);
	char *dir = put(&p, &left, f.dir), *shell = put(&p, &left, f.shell);
	if (name == NULL || pass == NULL || gecos == NULL || dir == NULL || shell == NULL)
		return NP_ERANGE;
	pw->pw_name = name;
	pw->pw_passwd = pass;
	pw->pw_uid = (uid_t)f.uid;
	pw->pw_gid = (gid_t)f.gid;
	pw->pw_gecos = gecos;
	pw->pw_dir = dir;
	pw->pw_shell = shell;
	return NP_FOUND;
}
