/* nsshost: calls the module's entry points directly (dlopen, no nsswitch.conf), for the tests of
 * nss/nss_test.go. Usage: nsshost MODULE name|uid KEY BUFLEN [COUNT]. Prints one line per call:
 * "STATUS ERRNO name:passwd:uid:gid:gecos:dir:shell" (the entry only on success), STATUS one of success,
 * notfound, unavailable, tryagain. COUNT repeats the call (the negative cache, the hold-off). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <nss.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum nss_status (*byname)(const char *, struct passwd *, char *, size_t, int *);
typedef enum nss_status (*byuid)(uid_t, struct passwd *, char *, size_t, int *);

static const char *status_name(enum nss_status s)
{
	switch (s) {
	case NSS_STATUS_SUCCESS: return "success";
	case NSS_STATUS_NOTFOUND: return "notfound";
	case NSS_STATUS_UNAVAIL: return "unavailable";
	case NSS_STATUS_TRYAGAIN: return "tryagain";
	default: return "other";
	}
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: nsshost MODULE name|uid KEY BUFLEN [COUNT]\n");
		return 2;
	}
	void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 2;
	}
	byname nam = (byname)dlsym(h, "_nss_tacagent_getpwnam_r");
	byuid uid = (byuid)dlsym(h, "_nss_tacagent_getpwuid_r");
	if (nam == NULL || uid == NULL || dlsym(h, "th_request") != NULL || dlsym(h, "tj_parse") != NULL) {
		fprintf(stderr, "the module's exports are wrong\n");
		return 2;
	}
	size_t buflen = strtoul(argv[4], NULL, 10);
	int count = argc > 5 ? atoi(argv[5]) : 1;
	for (int i = 0; i < count; i++) {
		/* Exactly buflen bytes on the heap: a write past them is caught by valgrind or ASan. */
		char *buf = malloc(buflen ? buflen : 1);
		struct passwd pw;
		memset(&pw, 0, sizeof pw);
		int err = 0;
		enum nss_status s = strcmp(argv[2], "uid") == 0 ? uid((uid_t)strtoul(argv[3], NULL, 10), &pw, buf, buflen, &err)
							       : nam(argv[3], &pw, buf, buflen, &err);
		if (s == NSS_STATUS_SUCCESS)
			printf("%s %d %s:%s:%u:%u:%s:%s:%s\n", status_name(s), err, pw.pw_name, pw.pw_passwd, (unsigned)pw.pw_uid,
			       (unsigned)pw.pw_gid, pw.pw_gecos, pw.pw_dir, pw.pw_shell);
		else
			printf("%s %d\n", status_name(s), err);
		fflush(stdout);
		free(buf);
	}
	return 0;
}
