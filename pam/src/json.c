/* See json.h. The reader validates a whole document once (tj_parse) and then walks spans of it; the walk
 * re-checks bounds anyway, so a span from anywhere else cannot make it read outside its text. */
#include "json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* utf8_len returns the length of the well-formed UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	if (n == 0)
		return 0;
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	size_t len;
	uint32_t cp, min;
	if ((c & 0xE0) == 0xC0) {
		len = 2, cp = c & 0x1F, min = 0x80;
	} else if ((c & 0xF0) == 0xE0) {
		len = 3, cp = c & 0x0F, min = 0x800;
	} else if ((c & 0xF8) == 0xF0) {
		len = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

bool tj_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	while (n > 0) {
		size_t l = utf8_len(p, n);
		if (l == 0)
			return false;
		p += l;
		n -= l;
	}
	return true;
}

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* hex4 reads four hex digits at p (p+4 <= end checked by the caller); -1 when they are not. */
static long hex4(const char *p)
{
	long v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval(p[i]);
		if (h < 0)
			return -1;
		v = (v << 4) | h;
	}
	return v;
}

/* skip_string checks the string starting at p (which must be '"') and returns the byte after its closing
 * quote, or NULL. */
static const char *skip_string(const char *p, const char *end)
{
	if (p >= end || *p != '"')
		return NULL;
	p++;
	while (p < end) {
		unsigned char c = (unsigned char)*p;
		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL; /* raw control characters must be escaped */
		if (c == '\\') {
			if (end - p < 2)
				return NULL;
			switch (p[1]) {
			case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
				p += 2;
				continue;
			case 'u':
				if (end - p < 6 || hex4(p + 2) < 0)
					return NULL;
				p += 6;
				continue;
			default:
				return NULL;
			}
		}
		size_t l = utf8_len((const unsigned char *)p, (size_t)(end - p));
		if (l == 0)
			return NULL;
		p += l;
	}
	return NULL;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static const char *skip_number(const char *p, const char *end)
{
	if (p < end && *p == '-')
		p++;
	if (p >= end)
		return NULL;
	if (*p == '0') {
		p++;
	} else if (is_digit(*p)) {
		while (p < end && is_digit(*p))
			p++;
	} else {
		return NULL;
	}
	if (p < end && *p == '.') {
		p++;
		if (p >= end || !is_digit(*p))
			return NULL;
		while (p < end && is_digit(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !is_digit(*p))
			return NULL;
		while (p < end && is_digit(*p))
			p++;
	}
	return p;
}

static const char *skip_literal(const char *p, const char *end, const char *lit)
{
	size_t l = strlen(lit);
	if ((size_t)(end - p) < l || memcmp(p, lit, l) != 0)
		return NULL;
	return p + l;
}

/* skip_value checks the value starting at p (no leading whitespace) and returns the byte after it. */
static const char *skip_value(const char *p, const char *end, int depth)
{
	if (p >= end)
		return NULL;
	switch (*p) {
	case '"':
		return skip_string(p, end);
	case 't':
		return skip_literal(p, end, "true");
	case 'f':
		return skip_literal(p, end, "false");
	case 'n':
		return skip_literal(p, end, "null");
	case '[':
	case '{': {
		if (depth >= TJ_MAX_DEPTH)
			return NULL;
		char close = *p == '[' ? ']' : '}';
		bool object = *p == '{';
		p = skip_ws(p + 1, end);
		if (p < end && *p == close)
			return p + 1;
		for (;;) {
			if (object) {
				p = skip_string(p, end);
				if (p == NULL)
					return NULL;
				p = skip_ws(p, end);
				if (p >= end || *p != ':')
					return NULL;
				p = skip_ws(p + 1, end);
			}
			p = skip_value(p, end, depth + 1);
			if (p == NULL)
				return NULL;
			p = skip_ws(p, end);
			if (p >= end)
				return NULL;
			if (*p == close)
				return p + 1;
			if (*p != ',')
				return NULL;
			p = skip_ws(p + 1, end);
		}
	}
	default:
		return skip_number(p, end);
	}
}

int tj_parse(const char *s, size_t n, tj_span *doc)
{
	if (s == NULL)
		return -1;
	const char *end = s + n;
	const char *p = skip_ws(s, end);
	const char *v = skip_value(p, end, 0);
	if (v == NULL)
		return -1;
	if (skip_ws(v, end) != end)
		return -1; /* trailing data */
	doc->p = p;
	doc->n = (size_t)(v - p);
	return 0;
}

/* put_utf8 writes code point cp at out; returns the bytes written (out has room for 4). */
static size_t put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* decode writes the decoded string v into out (room for v.n + 1 bytes: decoding never grows the text) and
 * returns its length, or -1. */
static long decode(tj_span v, char *out)
{
	const char *p = v.p, *end = v.p + v.n;
	if (skip_string(p, end) != end)
		return -1;
	p++;
	end--; /* the closing quote */
	size_t o = 0;
	while (p < end) {
		if (*p != '\\') {
			out[o++] = *p++;
			continue;
		}
		char e = p[1]; /* skip_string guarantees a complete escape */
		p += 2;
		switch (e) {
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'u': {
			uint32_t cp = (uint32_t)hex4(p);
			p += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
				long lo = hex4(p + 2);
				if (lo >= 0xDC00 && lo <= 0xDFFF) {
					cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
					p += 6;
				}
			}
			if (cp >= 0xD800 && cp <= 0xDFFF)
				cp = 0xFFFD; /* a lone surrogate, as Go's decoder does */
			if (cp == 0)
				return -1;
			/* \uXXXX is 6 bytes of input for at most 3 bytes of output, a pair 12 for 4. */
			o += put_utf8(out + o, cp);
			break;
		}
		default: /* '"', '\\', '/' */
			out[o++] = e;
		}
	}
	out[o] = '\0';
	return (long)o;
}

char *tj_strdup(tj_span v)
{
	if (v.p == NULL || v.n < 2 || v.p[0] != '"')
		return NULL;
	char *out = malloc(v.n + 1);
	if (out == NULL)
		return NULL;
	if (decode(v, out) < 0) {
		free(out);
		return NULL;
	}
	return out;
}

bool tj_streq(tj_span v, const char *want)
{
	char *s = tj_strdup(v);
	if (s == NULL)
		return false;
	bool eq = strcmp(s, want) == 0;
	free(s);
	return eq;
}

int tj_bool(tj_span v, bool *out)
{
	if (v.n == 4 && memcmp(v.p, "true", 4) == 0) {
		*out = true;
		return 0;
	}
	if (v.n == 5 && memcmp(v.p, "false", 5) == 0) {
		*out = false;
		return 0;
	}
	return -1;
}

int tj_u32(tj_span v, uint32_t *out)
{
	/* A validated number: digits, no sign, fraction or exponent; "0" alone or no leading zero. */
	if (v.n == 0 || v.n > 10 || (v.p[0] == '0' && v.n > 1))
		return -1;
	uint64_t x = 0;
	for (size_t i = 0; i < v.n; i++) {
		if (!is_digit(v.p[i]))
			return -1;
		x = x * 10 + (uint64_t)(v.p[i] - '0');
	}
	if (x > UINT32_MAX)
		return -1;
	*out = (uint32_t)x;
	return 0;
}

int tj_get(tj_span obj, const char *key, tj_span *out)
{
	if (obj.p == NULL || obj.n < 2 || obj.p[0] != '{')
		return -1;
	const char *end = obj.p + obj.n;
	const char *p = skip_ws(obj.p + 1, end);
	while (p < end && *p != '}') {
		const char *k = p;
		p = skip_string(p, end);
		if (p == NULL)
			return -1;
		tj_span ks = {k, (size_t)(p - k)};
		p = skip_ws(p, end);
		if (p >= end || *p != ':')
			return -1;
		p = skip_ws(p + 1, end);
		const char *v = p;
		p = skip_value(p, end, 1);
		if (p == NULL)
			return -1;
		if (tj_streq(ks, key)) {
			out->p = v;
			out->n = (size_t)(p - v);
			return 0;
		}
		p = skip_ws(p, end);
		if (p < end && *p == ',')
			p = skip_ws(p + 1, end);
	}
	return -1;
}

int tj_next(tj_span arr, size_t *pos, tj_span *elem)
{
	if (arr.p == NULL || arr.n < 2 || arr.p[0] != '[')
		return -1;
	const char *end = arr.p + arr.n;
	size_t off = *pos == 0 ? 1 : *pos;
	if (off > arr.n)
		return -1;
	const char *p = skip_ws(arr.p + off, end);
	if (p < end && *p == ',')
		p = skip_ws(p + 1, end);
	if (p >= end || *p == ']')
		return 0;
	const char *v = p;
	p = skip_value(p, end, 1);
	if (p == NULL)
		return -1;
	elem->p = v;
	elem->n = (size_t)(p - v);
	*pos = (size_t)(p - arr.p);
	return 1;
}

/* Writer. */

static void put(tj_writer *w, const char *s, size_t n)
{
	if (w->err)
		return;
	if (w->cap - w->len < n + 1) { /* keep room for the final NUL */
		w->err = true;
		return;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

static void put_quoted(tj_writer *w, const char *s)
{
	if (s == NULL || !tj_utf8_valid(s, strlen(s))) {
		w->err = true;
		return;
	}
	static const char hex[] = "0123456789abcdef";
	put(w, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p && !w->err; p++) {
		switch (*p) {
		case '"': put(w, "\\\"", 2); break;
		case '\\': put(w, "\\\\", 2); break;
		case '\n': put(w, "\\n", 2); break;
		case '\r': put(w, "\\r", 2); break;
		case '\t': put(w, "\\t", 2); break;
		default:
			if (*p < 0x20 || *p == 0x7F) {
				char e[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 0xF]};
				put(w, e, sizeof e);
			} else {
				put(w, (const char *)p, 1);
			}
		}
	}
	put(w, "\"", 1);
}

static void member(tj_writer *w, const char *key)
{
	if (!w->first)
		put(w, ",", 1);
	w->first = false;
	put_quoted(w, key);
	put(w, ":", 1);
}

void tjw_init(tj_writer *w, char *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->first = true;
	w->err = buf == NULL || cap == 0;
}

void tjw_begin(tj_writer *w) { put(w, "{", 1); }

void tjw_str(tj_writer *w, const char *key, const char *val)
{
	member(w, key);
	put_quoted(w, val);
}

void tjw_bool(tj_writer *w, const char *key, bool val)
{
	member(w, key);
	if (val)
		put(w, "true", 4);
	else
		put(w, "false", 5);
}

void tjw_strs(tj_writer *w, const char *key, const char *const *vals, size_t n)
{
	member(w, key);
	put(w, "[", 1);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			put(w, ",", 1);
		put_quoted(w, vals[i]);
	}
	put(w, "]", 1);
}

void tjw_end(tj_writer *w)
{
	put(w, "}", 1);
	if (!w->err)
		w->buf[w->len] = '\0';
}
