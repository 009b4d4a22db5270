/* The NSS module's reader of the agent's answers to GET /v1/passwd (docs/api.md, docs/nss.md): it checks
 * the answer and copies the entry into the caller's struct passwd and buffer. No allocation, no global
 * state; every field is checked before anything is copied. */
#ifndef TACAGENT_NSS_PASSWD_H
#define TACAGENT_NSS_PASSWD_H

#include <pwd.h>
#include <stdbool.h>
#include <stddef.h>

/* NP_MAX_NAME bounds a user name (the agent's limit). */
#define NP_MAX_NAME 64

enum np_result {
	NP_FOUND,    /* *pw filled, its strings in buf */
	NP_NOTFOUND, /* the agent knows no such user or uid */
	NP_UNAVAIL,  /* the agent could not say in time (servers down or slow, too many lookups) */
	NP_ERANGE,   /* the entry does not fit in buflen bytes: call again with a larger buffer */
	NP_BAD,      /* the answer is not what the agent sends, or names another user or uid, or root */
};

/* np_valid_name reports whether name may be asked about: 1 to NP_MAX_NAME bytes of ASCII letters, digits,
 * '_', '.', '@', '-', not starting with '-' or '.', not all digits (the agent's rule). */
bool np_valid_name(const char *name);

/* np_read reads the JSON body of a 200 answer, body[0..n), for a lookup by name (want_name) or, when
 * want_name is NULL, by uid (want_uid). A found entry must be for exactly that name or uid, with uid and
 * gid not 0 and no field a passwd line could not hold (':', newline, control characters); pw_passwd is
 * "*": no local password (not "x", which tells pam_unix to find a shadow entry, and its account check
 * fails without one). */
enum np_result np_read(const char *body, size_t n, const char *want_name, unsigned long want_uid, struct passwd *pw,
		       char *buf, size_t buflen);

#endif
