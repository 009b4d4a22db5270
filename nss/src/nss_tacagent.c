/* libnss_tacagent.so.2: the passwd source "tacagent" of nsswitch.conf (docs/nss.md). It asks the tacagent
 * daemon over its local API (GET /v1/passwd, docs/api.md) for users the TACACS+ servers know, mapped by the
 * agent to local template accounts, and answers from the agent's cache within a hard timeout.
 *
 * C, like pam_tacagent and for the same reason: it is loaded into every process that looks a user up (sshd,
 * ls, ps, sudo), where a Go runtime has no place. Rules kept throughout: every lookup is bounded by
 * timeout_ms (50 ms by default) including the connect; nothing is asked of a socket served by anyone but
 * root or daemon_uid (SO_PEERCRED); names the agent could never know are "not found" without asking; no
 * entry with uid or gid 0 is ever returned; no signal handler, no thread, no lock (fork-safe). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <nss.h>
#include <pthread.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../pam/src/http.h"
#include "passwd.h"

#define DEFAULT_SOCKET "/run/tacagent/tacagent.sock"
#ifndef NSS_TACAGENT_CONF
#define NSS_TACAGENT_CONF "/etc/tacagent/nss.conf"
#endif
/* DEFAULT_TIMEOUT_MS bounds one lookup: NSS lookups happen constantly (ls -l, ps), and the agent answers
 * from its cache, so a lookup that takes longer is an agent in trouble, not a slow server. */
#define DEFAULT_TIMEOUT_MS 50
#define MAX_TIMEOUT_MS 10000
/* HOLD_OFF_MS: after a lookup timed out, the next ones answer UNAVAIL at once for this long, so that a
 * stuck agent costs one timeout per second, not one per lookup (ls -l of a thousand files). */
#define HOLD_OFF_MS 1000
/* NEG_SLOTS entries of NEG_TTL_MS remember "not found" answers in this process. */
#define NEG_SLOTS 64
#define NEG_TTL_MS 5000
#define MAX_CONF 4096

static struct {
	char socket[108];
	int timeout_ms;
	long daemon_uid;
} conf;
static pthread_once_t conf_once = PTHREAD_ONCE_INIT;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* load_conf reads NSS_TACAGENT_CONF once per process: "key=value" lines (socket, timeout_ms, daemon_uid),
 * '#' comments. The file must be root's and not writable by group or others, or it is ignored: whoever
 * could write it could point every lookup at their own socket. */
static void load_conf(void)
{
	snprintf(conf.socket, sizeof conf.socket, "%s", DEFAULT_SOCKET);
	conf.timeout_ms = DEFAULT_TIMEOUT_MS;
	conf.daemon_uid = TH_ROOT_ONLY;
	int fd = open(NSS_TACAGENT_CONF, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return;
	struct stat st;
	char text[MAX_CONF + 1];
	ssize_t n = -1;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == 0 && (st.st_mode & 022) == 0 && st.st_size <= MAX_CONF)
		n = read(fd, text, MAX_CONF);
	close(fd);
	if (n < 0)
		return;
	text[n] = '\0';
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		line += strspn(line, " \t");
		if (*line == '#' || *line == '\0')
			continue;
		char *eq = strchr(line, '=');
		if (eq == NULL)
			continue;
		*eq = '\0';
		char *k = line, *v = eq + 1;
		for (char *e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r');)
			*--e = '\0';
		for (char *e = k + strlen(k); e > k && (e[-1] == ' ' || e[-1] == '\t');)
			*--e = '\0';
		char *end = NULL;
		if (strcmp(k, "socket") == 0 && v[0] == '/' && strlen(v) < sizeof conf.socket) {
			snprintf(conf.socket, sizeof conf.socket, "%s", v);
		} else if (strcmp(k, "timeout_ms") == 0) {
			long t = strtol(v, &end, 10);
			if (end != v && *end == '\0' && t > 0 && t <= MAX_TIMEOUT_MS)
				conf.timeout_ms = (int)t;
		} else if (strcmp(k, "daemon_uid") == 0) {
			long u = strtol(v, &end, 10);
			if (end != v && *end == '\0' && u >= 0 && u < (long)UINT32_MAX)
				conf.daemon_uid = u;
		}
	}
}

/* The negative cache and the hold-off are read and written with atomics, without a lock: a fork in the
 * middle of a lookup leaves nothing held in the child. A slot is (key hash, expiry); a torn pair is
 * caught by reading the expiry on both sides of the hash. */
static struct {
	uint64_t key;
	long long expires;
} neg[NEG_SLOTS];
static long long hold_until;

static uint64_t key_of(char kind, const char *name, unsigned long uid)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	h = (h ^ (unsigned char)kind) * 1099511628211ull;
	if (name != NULL) {
		for (const unsigned char *p = (const unsigned char *)name; *p; p++)
			h = (h ^ *p) * 1099511628211ull;
	} else {
		for (int i = 0; i < 8; i++, uid >>= 8)
			h = (h ^ (uid & 0xff)) * 1099511628211ull;
	}
	return h | 1; /* never 0: an empty slot */
}

static bool neg_hit(uint64_t key, long long now)
{
	for (int i = 0; i < NEG_SLOTS; i++) {
		long long e1 = __atomic_load_n(&neg[i].expires, __ATOMIC_ACQUIRE);
		uint64_t k = __atomic_load_n(&neg[i].key, __ATOMIC_ACQUIRE);
		long long e2 = __atomic_load_n(&neg[i].expires, __ATOMIC_ACQUIRE);
		if (k == key && e1 == e2 && e1 > now)
			return true;
	}
	return false;
}

static void neg_put(uint64_t key, long long now)
{
	int slot = (int)(key % NEG_SLOTS);
	__atomic_store_n(&neg[slot].expires, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&neg[slot].key, key, __ATOMIC_RELEASE);
	__atomic_store_n(&neg[slot].expires, now + NEG_TTL_MS, __ATOMIC_RELEASE);
}

/* lookup asks the agent and maps the outcome to NSS's status and errno. */
static enum nss_status lookup(const char *name, unsigned long uid, struct passwd *pw, char *buf, size_t buflen,
			      int *errnop)
{
	pthread_once(&conf_once, load_conf);
	long long now = now_ms();
	uint64_t key = key_of(name != NULL ? 'n' : 'u', name, uid);
	if (neg_hit(key, now)) {
		*errnop = ENOENT;
		return NSS_STATUS_NOTFOUND;
	}
	if (__atomic_load_n(&hold_until, __ATOMIC_ACQUIRE) > now) {
		*errnop = EAGAIN;
		return NSS_STATUS_UNAVAIL;
	}
	char path[32 + 3 * NP_MAX_NAME];
	if (name != NULL)
		snprintf(path, sizeof path, "/v1/passwd?name=%s", name); /* np_valid_name: nothing to escape */
	else
		snprintf(path, sizeof path, "/v1/passwd?uid=%lu", uid);
	th_response r;
	int saved = errno;
	enum th_err e = th_request(conf.socket, conf.timeout_ms, conf.daemon_uid, "GET", path, NULL, 0, &r);
	errno = saved;
	if (e == TH_TIMEOUT)
		__atomic_store_n(&hold_until, now_ms() + HOLD_OFF_MS, __ATOMIC_RELEASE);
	if (e == TH_NOAGENT) {
		*errnop = ENOENT;
		return NSS_STATUS_UNAVAIL;
	}
	if (e != TH_OK) {
		*errnop = e == TH_NOMEM ? ENOMEM : EAGAIN;
		return NSS_STATUS_UNAVAIL;
	}
	enum np_result res = r.status == 200 ? np_read(r.body, r.body_len, name, uid, pw, buf, buflen) : NP_UNAVAIL;
	th_response_free(&r);
	switch (res) {
	case NP_FOUND:
		return NSS_STATUS_SUCCESS;
	case NP_NOTFOUND:
		neg_put(key, now_ms());
		*errnop = ENOENT;
		return NSS_STATUS_NOTFOUND;
	case NP_ERANGE:
		*errnop = ERANGE;
		return NSS_STATUS_TRYAGAIN;
	default:
		*errnop = EAGAIN;
		return NSS_STATUS_UNAVAIL;
	}
}

enum nss_status _nss_tacagent_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t buflen, int *errnop)
{
	if (!np_valid_name(name)) {
		*errnop = ENOENT;
		return NSS_STATUS_NOTFOUND; /* a name the agent never maps: no round trip */
	}
	return lookup(name, 0, pw, buf, buflen, errnop);
}

enum nss_status _nss_tacagent_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t buflen, int *errnop)
{
	if (uid == 0) {
		*errnop = ENOENT;
		return NSS_STATUS_NOTFOUND; /* never root */
	}
	return lookup(NULL, (unsigned long)uid, pw, buf, buflen, errnop);
}
