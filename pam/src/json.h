/* Minimal JSON for pam_tacagent: a writer for the requests the module sends to the agent, and a
 * validating reader for the few fields it needs from the answers. No allocation in the writer, no global
 * state, every read bounds-checked; nesting is limited to TJ_MAX_DEPTH. RFC 8259 is the grammar. */
#ifndef TACAGENT_JSON_H
#define TACAGENT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* TJ_MAX_DEPTH bounds the nesting of arrays and objects the reader accepts (the agent's answers nest 3
 * deep); deeper documents are refused rather than recursed into. */
#define TJ_MAX_DEPTH 32

/* tj_span is the text of one JSON value inside a validated document. */
typedef struct {
	const char *p;
	size_t n;
} tj_span;

/* tj_parse checks that s[0..n) is exactly one JSON value (whitespace around allowed), with valid UTF-8 and
 * escapes and at most TJ_MAX_DEPTH levels, and returns its span in *doc. 0 on success, -1 otherwise. */
int tj_parse(const char *s, size_t n, tj_span *doc);

/* tj_get finds member key of the object obj; 0 and the value's span in *out, -1 when obj is not an object
 * or has no such member (the first of duplicate members wins). */
int tj_get(tj_span obj, const char *key, tj_span *out);

/* tj_strdup decodes the string value v into a new NUL-terminated buffer (free it with free()). NULL when v
 * is not a string, holds \u0000 (which C strings cannot carry), or memory is short. */
char *tj_strdup(tj_span v);

/* tj_streq reports whether v is a string equal to want after decoding. */
bool tj_streq(tj_span v, const char *want);

/* tj_bool reads true or false; 0 on success, -1 when v is neither. */
int tj_bool(tj_span v, bool *out);

/* tj_u32 reads a whole number from 0 to 2^32-1 written without sign, fraction, exponent or leading zero;
 * 0 on success, -1 otherwise. */
int tj_u32(tj_span v, uint32_t *out);

/* tj_next iterates over an array: *pos starts at 0; returns 1 with the next element in *elem, 0 at the
 * end, -1 when arr is not an array. */
int tj_next(tj_span arr, size_t *pos, tj_span *elem);

/* tj_writer appends a JSON object into caller-owned storage; any overflow or invalid UTF-8 input sets err
 * and makes every later call a no-op, so the caller checks once at the end. */
typedef struct {
	char *buf;
	size_t cap;
	size_t len;
	bool first; /* no member written yet */
	bool err;
} tj_writer;

void tjw_init(tj_writer *w, char *buf, size_t cap);
void tjw_begin(tj_writer *w);                                 /* "{" */
void tjw_str(tj_writer *w, const char *key, const char *val); /* "key":"val" (escaped) */
void tjw_bool(tj_writer *w, const char *key, bool val);
void tjw_strs(tj_writer *w, const char *key, const char *const *vals, size_t n); /* "key":["a",...] */
void tjw_end(tj_writer *w); /* "}" and a NUL after it (not counted in len) */

/* tj_utf8_valid reports whether s[0..n) is well-formed UTF-8 (no overlongs, no surrogates). */
bool tj_utf8_valid(const char *s, size_t n);

#endif
