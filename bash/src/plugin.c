/* tacagent_plugin.so: command authorization for bash built with SONiC's plugin patch (sonic-buildimage
 * src/bash: plugin.c and the call in shell_execve). That bash reads plugin=PATH lines from
 * /etc/bash_plugins.conf at start, dlopens each, calls plugin_init(), and calls
 *     int on_shell_execve(char *user, int shell_level, char *cmd, char **argv)
 * in the forked child right before execve(2) of every external command: cmd is the resolved absolute
 * path, argv the argument vector the program gets. Non-zero means "do not run it"; the command does not
 * run and the child ends with an error status. plugin_uninit() is called when bash frees its plugins.
 *
 * This sees what really runs (only execs, no builtins or functions), so it is the stricter hook; it
 * authorizes only: the process is replaced by the command, so there is nobody left to send a STOP (audit
 * accounting, `tacagent audisp`, records the execs). docs/bash.md, "SONiC plugin".
 *
 * Settings: the keys of /etc/tacagent/bash.conf (BASH_CONF at build time): socket, timeout_ms,
 * fallback_group, daemon_uid. The user is this process's real uid's name, not the caller's argument. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shellauth.h"

#ifndef BASH_CONF
#define BASH_CONF "/etc/tacagent/bash.conf"
#endif

struct settings {
	char socket[256];
	char group[64];
	int timeout_ms;
	long daemon_uid;
	bool loaded;
};

/* load reads the settings file when it is root's and not writable by group or others. */
static void load(struct settings *s)
{
	memset(s, 0, sizeof *s);
	snprintf(s->socket, sizeof s->socket, "%s", SA_DEFAULT_SOCKET);
	s->timeout_ms = SA_DEFAULT_TIMEOUT_MS;
	s->daemon_uid = -1;
	s->loaded = true;
	FILE *f = fopen(BASH_CONF, "re");
	if (f == NULL)
		return;
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || st.st_uid != 0 || (st.st_mode & 022) != 0 || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "tacagent: %s is not root's or is writable by others: ignored\n", BASH_CONF);
		fclose(f);
		return;
	}
	char line[512];
	while (fgets(line, sizeof line, f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		char *eq = strchr(line, '=');
		if (eq == NULL || line[0] == '#')
			continue;
		*eq = '\0';
		const char *v = eq + 1;
		if (strcmp(line, "socket") == 0)
			snprintf(s->socket, sizeof s->socket, "%s", v);
		else if (strcmp(line, "fallback_group") == 0)
			snprintf(s->group, sizeof s->group, "%s", v);
		else if (strcmp(line, "timeout_ms") == 0 && atoi(v) > 0)
			s->timeout_ms = atoi(v);
		else if (strcmp(line, "daemon_uid") == 0 && v[0] != '\0')
			s->daemon_uid = atol(v);
	}
	fclose(f);
}

static struct settings settings;

void plugin_init(void) { load(&settings); }

void plugin_uninit(void) { memset(&settings, 0, sizeof settings); }

int on_shell_execve(char *user, int shell_level, char *cmd, char **argv)
{
	(void)user; /* the caller's word; the kernel's (getuid) counts */
	(void)shell_level;
	if (!settings.loaded)
		load(&settings);
	if (cmd == NULL)
		return 1;
	char name[256];
	const char *me = sa_user(name, sizeof name);
	if (me == NULL) {
		fprintf(stderr, "tacagent: %s: denied: this uid has no user name\n", cmd);
		return 1;
	}
	int nargs = 0;
	while (argv != NULL && argv[nargs] != NULL && argv[nargs + 1] != NULL)
		nargs++;
	struct sa_config c = {.socket = settings.socket, .timeout_ms = settings.timeout_ms,
			      .daemon_uid = settings.daemon_uid, .fallback_group = settings.group[0] ? settings.group : NULL,
			      .priv_lvl = 1, .ack = "durable"};
	const char *priv = getenv("TACACS_PRIV_LVL");
	if (priv != NULL && atoi(priv) >= 0 && atoi(priv) <= 15)
		c.priv_lvl = atoi(priv);
	struct sa_result r;
	sa_authorize(&c, me, cmd, argv != NULL && argv[0] != NULL ? argv + 1 : argv, nargs, NULL, &r);
	switch (r.verdict) {
	case SA_PERMIT:
		return 0;
	case SA_DENY:
		fprintf(stderr, "tacagent: %s: denied%s%s\n", cmd, r.server_msg[0] ? ": " : "", r.server_msg);
		return 1;
	case SA_UNAVAILABLE:
		if (sa_fallback(&c)) {
			fprintf(stderr, "tacagent: %s: no TACACS+ server could be asked (%s); allowed for group %s\n", cmd,
				r.why, c.fallback_group);
			return 0;
		}
		fprintf(stderr, "tacagent: %s: denied: no TACACS+ server could be asked (%s)\n", cmd, r.why);
		return 1;
	default:
		fprintf(stderr, "tacagent: %s: denied: %s\n", cmd, r.why);
		return 1;
	}
}
