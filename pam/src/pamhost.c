/* pamhost: a small PAM application for the tests, shaped like sshd. It loads the module with dlopen twice
 * (as two PAM handles or a host that links it would), starts a PAM transaction in the parent, then runs
 * the operations in a forked child that inherits the handle (sshd's PAM "thread" is such a child), under
 * an alarm so that a hang is a failure, not a stuck test. Prompts are answered from the command line.
 *
 * usage: pamhost [-m MODULE] [-n] [-t TTY] [-r RHOST] [-a SECS] SERVICE USER OP[,OP...] [ANSWER...]
 *   -m   dlopen MODULE twice before starting (and check both handles are the same library)
 *   -n   no fork: run in this process
 *   OPs: authenticate, acct_mgmt, open_session, close_session, setcred, chauthtok
 *   ANSWER "@SSHD_FAKE@" stands for sshd's placeholder password "\b\n\r\177INCORRECT", and "@SSHD_FAKE:N@"
 *   for the placeholder sshd sends for a password of N bytes: those 13 bytes repeated to length N.
 * Output: one "PROMPT ...", "INFO ..." or "ERROR ..." line per conversation message, one
 * "RESULT op code name" line per operation, then "ENV name=value" for the PAM environment.
 * Exit status: 0 when every operation returned PAM_SUCCESS, 1 when one did not, 2 on usage or setup
 * errors, 3 when the child was killed (the alarm: it hung). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <security/pam_appl.h>

struct answers {
	char **v;
	int n;
	int next;
};

/* answer expands the placeholders of ANSWER (see above). */
static char *answer(const char *v)
{
	static const char junk[] = "\b\n\r\177INCORRECT";
	unsigned n = 0;
	if (strcmp(v, "@SSHD_FAKE@") == 0)
		return strdup(junk);
	if (sscanf(v, "@SSHD_FAKE:%u@", &n) == 1 && n < 4096) {
		char *s = malloc(n + 1);
		if (s == NULL)
			return NULL;
		for (unsigned i = 0; i < n; i++)
			s[i] = junk[i % (sizeof junk - 1)];
		s[n] = '\0';
		return s;
	}
	return strdup(v);
}

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
	struct answers *a = data;
	struct pam_response *r = calloc((size_t)n, sizeof *r);
	if (r == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		const struct pam_message *m = msg[i];
		switch (m->msg_style) {
		case PAM_PROMPT_ECHO_ON:
		case PAM_PROMPT_ECHO_OFF:
			printf("PROMPT echo=%s %s\n", m->msg_style == PAM_PROMPT_ECHO_ON ? "on" : "off", m->msg);
			if (a->next >= a->n) {
				printf("CONV no answer left\n");
				for (int j = 0; j < i; j++)
					free(r[j].resp);
				free(r);
				return PAM_CONV_ERR;
			}
			r[i].resp = answer(a->v[a->next]);
			a->next++;
			break;
		case PAM_TEXT_INFO:
			printf("INFO %s\n", m->msg);
			break;
		default:
			printf("ERROR %s\n", m->msg);
		}
	}
	fflush(stdout);
	*resp = r;
	return PAM_SUCCESS;
}

static int run(pam_handle_t *h, char *ops)
{
	int bad = 0;
	for (char *op = strtok(ops, ","); op != NULL; op = strtok(NULL, ",")) {
		int r;
		if (strcmp(op, "authenticate") == 0)
			r = pam_authenticate(h, 0);
		else if (strcmp(op, "acct_mgmt") == 0)
			r = pam_acct_mgmt(h, 0);
		else if (strcmp(op, "open_session") == 0)
			r = pam_open_session(h, 0);
		else if (strcmp(op, "close_session") == 0)
			r = pam_close_session(h, 0);
		else if (strcmp(op, "setcred") == 0)
			r = pam_setcred(h, PAM_ESTABLISH_CRED);
		else if (strcmp(op, "chauthtok") == 0)
			r = pam_chauthtok(h, 0);
		else {
			printf("RESULT %s unknown-operation\n", op);
			return 1;
		}
		printf("RESULT %s %d %s\n", op, r, pam_strerror(h, r));
		fflush(stdout);
		if (r != PAM_SUCCESS)
			bad = 1;
	}
	char **env = pam_getenvlist(h);
	for (char **e = env; e != NULL && *e != NULL; e++) {
		printf("ENV %s\n", *e);
		free(*e);
	}
	free(env);
	fflush(stdout);
	return bad;
}

int main(int argc, char **argv)
{
	const char *module = NULL, *tty = NULL, *rhost = NULL;
	int nofork = 0, secs = 20, c;
	while ((c = getopt(argc, argv, "m:nt:r:a:")) != -1) {
		switch (c) {
		case 'm': module = optarg; break;
		case 'n': nofork = 1; break;
		case 't': tty = optarg; break;
		case 'r': rhost = optarg; break;
		case 'a': secs = atoi(optarg); break;
		default: return 2;
		}
	}
	if (argc - optind < 3) {
		fprintf(stderr, "usage: pamhost [-m MODULE] [-n] [-t TTY] [-r RHOST] [-a SECS] SERVICE USER OPS [ANSWER...]\n");
		return 2;
	}
	if (module != NULL) {
		void *h1 = dlopen(module, RTLD_NOW | RTLD_LOCAL);
		void *h2 = dlopen(module, RTLD_NOW | RTLD_LOCAL);
		if (h1 == NULL || h2 == NULL || h1 != h2 || dlsym(h1, "pam_sm_authenticate") == NULL) {
			fprintf(stderr, "dlopen %s twice: %s\n", module, dlerror());
			return 2;
		}
		printf("LOADED twice\n");
	}
	struct answers a = {.v = argv + optind + 3, .n = argc - optind - 3};
	struct pam_conv pc = {.conv = conv, .appdata_ptr = &a};
	pam_handle_t *h = NULL;
	int r = pam_start(argv[optind], argv[optind + 1], &pc, &h);
	if (r != PAM_SUCCESS) {
		fprintf(stderr, "pam_start: %d\n", r);
		return 2;
	}
	if ((tty && pam_set_item(h, PAM_TTY, tty) != PAM_SUCCESS) || (rhost && pam_set_item(h, PAM_RHOST, rhost) != PAM_SUCCESS)) {
		fprintf(stderr, "pam_set_item failed\n");
		return 2;
	}
	fflush(stdout);
	int bad;
	if (nofork) {
		bad = run(h, argv[optind + 2]);
	} else {
		pid_t pid = fork();
		if (pid < 0)
			return 2;
		if (pid == 0) {
			alarm((unsigned)secs);
			int cb = run(h, argv[optind + 2]);
			pam_end(h, PAM_SUCCESS);
			_exit(cb);
		}
		int st = 0;
		if (waitpid(pid, &st, 0) < 0)
			return 2;
		if (WIFSIGNALED(st)) {
			printf("CHILD killed by signal %d\n", WTERMSIG(st));
			return 3;
		}
		bad = WEXITSTATUS(st);
		printf("CHILD exit %d\n", bad);
	}
	pam_end(h, PAM_SUCCESS);
	if (module != NULL) {
		/* Unloading is safe too: the module keeps no state and starts no thread. */
		void *h1 = dlopen(module, RTLD_NOW | RTLD_NOLOAD);
		if (h1 != NULL) {
			dlclose(h1); /* the NOLOAD reference */
			dlclose(h1);
			dlclose(h1);
		}
	}
	return bad;
}
