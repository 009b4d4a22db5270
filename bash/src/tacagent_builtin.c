/* tacagent_hook: a bash loadable builtin (`enable -f tacagent_hook.so tacagent_hook`) that authorizes and
 * accounts every simple command through tacagent's local API, called from a DEBUG trap under extdebug
 * (contrib/bash/tacagent.sh). Returning non-zero from the trap makes bash skip the command.
 *
 * What it sends (docs/bash.md): service=shell, cmd = the command as bash will resolve it (function or
 * builtin name, or absolute path), one cmd-arg per argument, priv_lvl. The words come from bash's own
 * print of the command (BASH_COMMAND, before expansion); words without $, ` or process substitution are
 * expanded by bash itself (braces, tilde, globs, quote removal), which has no side effects; the others go
 * as typed. A permitted command is accounted: START before it runs (sent by the agent with the
 * authorization, in one request), STOP (status, elapsed_time) when the same shell process runs its next
 * command or exits, its answer read when it has arrived. Requests go over connections kept open between
 * commands (th_conn, one set per process).
 *
 * It also keeps the hook in place: extdebug and functrace are turned back on if they were turned off (and
 * that command is refused), and `trap` on DEBUG, `enable` with -n/-d/-f, and this builtin run by hand are
 * refused. docs/bash.md lists what a shell hook cannot stop. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builtins.h"
#include "shell.h"
#include "bashgetopt.h"
#include "common.h"
#include "execute_cmd.h"
#include "jobs.h"

#include "shellauth.h"
#include "words.h"

/* Bash globals that no shipped header declares (flags.c, trap.c, findcmd.c, pathexp.c). */
extern int debugging_mode;
extern int function_trace_mode;
extern int running_trap;
extern int fail_glob_expansion;
extern char *search_for_command(const char *, int);

#define HOOK_NAME "tacagent_hook"
#define MAX_PENDING 64
#define BLOB 4096

/* pending is a command whose START went out and whose STOP is owed. The table lives in memory shared
 * with every subshell the shell forks (MAP_SHARED, made once by the first call): a subshell that execs
 * its last command (bash does that for `( cmd )` and `$(cmd)`) cannot send that STOP itself, so the
 * process that forked it sends it once the exec'd command is gone. */
enum { FREE = 0, OWED = 1, SENDING = 2 };
struct pending {
	int state; /* FREE, OWED, SENDING; changed with compare-and-swap */
	pid_t pid; /* the process that sent the START */
	int depth; /* variable_context (function nesting) when it started */
	pid_t made; /* bash's last_made_pid at the START: a new one later means the command forked ... */
	pid_t child; /* ... and this is its process; 0 while none is known */
	int forks;   /* js.c_totforked at the START: the number of its process among this shell's forks */
	int nargs;
	size_t len; /* of blob: cmd, then each argument, NUL-terminated */
	struct timespec start;
	char task[64];
	char blob[BLOB];
};

static struct pending *pend; /* MAX_PENDING slots */
static unsigned long task_seq;
static bool exit_registered;
/* The configuration of the last call, for the STOPs sent at exit. */
static char cfg_socket[256], cfg_group[64], cfg_port[64], cfg_rem[256], cfg_ack[16];
static struct sa_config cfg = {.socket = cfg_socket, .daemon_uid = -1};

static void say(const char *cmd, const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "tacagent: %s: ", cmd);
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
	fflush(stderr);
}

static char user_buf[256];
static const char *login_user(void)
{
	if (user_buf[0] == '\0' && sa_user(user_buf, sizeof user_buf) == NULL)
		return NULL;
	return user_buf;
}

static bool table(void)
{
	if (pend != NULL)
		return true;
	void *m = mmap(NULL, MAX_PENDING * sizeof *pend, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return false;
	pend = m;
	return true;
}

static bool claim(struct pending *p, int from, int to)
{
	return __atomic_compare_exchange_n(&p->state, &from, to, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* STOPs in flight: sent by stop_begin, their answers read by stops_collect when they have arrived (at a
 * later command), when their deadline passed, or at the latest before this process may be replaced or
 * exits, so that a STOP travels while the shell goes on. */
struct inflight {
	struct sa_call call;
	char cmd[64];
	pid_t pid; /* the process that sent it (a subshell inherits its parent's table and must not read them) */
};
static struct inflight inflight[MAX_PENDING];
static int ninflight;

/* KEPT connections to the agent stay open between commands (HTTP keep-alive, th_conn): the
 * authorization and a STOP in flight can each have one. Each process has its own: a subshell opens its
 * own and closes its copies of its parent's. */
#define KEPT 2
static th_conn kept[KEPT];
static bool kept_ready;

/* stops_collect reads the answers of this process's STOPs in flight: with all, every one (each within its
 * deadline); otherwise those that can be read without waiting. A subshell forgets its parent's. */
static void stops_collect(bool all)
{
	pid_t me = getpid();
	char why[SA_MSG];
	int keep = 0;
	for (int i = 0; i < ninflight; i++) {
		struct inflight *f = &inflight[i];
		if (f->pid != me) {
			sa_account_drop(&f->call);
			continue;
		}
		if (!all && !sa_account_ready(&f->call)) {
			inflight[keep++] = *f;
			continue;
		}
		if (!sa_account_end(&f->call, why, sizeof why))
			say(f->cmd, "accounting STOP not recorded: %s%s", why, "");
	}
	ninflight = keep;
}

/* stop_begin sends the STOP of a slot this process claimed (SENDING) and frees the slot. */
static void stop_begin(struct pending *p, int status)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	char *args[SA_MAX_ARGS + 1];
	int n = 0;
	const char *cmd = p->blob;
	for (size_t off = strlen(cmd) + 1; off < p->len && n < p->nargs && n < SA_MAX_ARGS; n++) {
		args[n] = p->blob + off;
		off += strlen(args[n]) + 1;
	}
	char why[SA_MSG];
	const char *user = login_user();
	if (ninflight == MAX_PENDING)
		stops_collect(true);
	struct inflight *f = &inflight[ninflight];
	if (user == NULL)
		say(cmd, "accounting STOP not recorded: %s%s", "this uid has no user name", "");
	else if (!sa_account_begin(&cfg, "stop", user, p->task, cmd, args, n, status, (long)(now.tv_sec - p->start.tv_sec),
				   &f->call, why, sizeof why))
		say(cmd, "accounting STOP not recorded: %s%s", why, "");
	else {
		snprintf(f->cmd, sizeof f->cmd, "%s", cmd);
		f->pid = getpid();
		ninflight++;
	}
	__atomic_store_n(&p->state, FREE, __ATOMIC_RELEASE);
}

/* gone reports whether pid has ended (and was reaped): its STOP is owed by us. */
static bool gone(pid_t pid) { return kill(pid, 0) != 0 && errno == ESRCH; }

/* ended reports whether the command of one of this process's slots has ended, seen from a later command
 * of the same process at function depth depth: a command that forked (an external command, a pipeline
 * element, a background job) has ended when its process is gone; one that did not (a builtin, a function)
 * when the shell is back at its depth. */
static bool ended(struct pending *p, int depth)
{
	if (p->child == 0 && last_made_pid != p->made && last_made_pid > 0)
		p->child = last_made_pid;
	if (p->child != 0)
		return gone(p->child);
	return p->depth >= depth;
}

/* status_of picks a STOP's status: for a command that forked, when it was one of the last pipeline's
 * npipe processes (the last npipe forks of this shell), its element of PIPESTATUS; otherwise $?. */
static int status_of(const struct pending *p, int status, const int *pipestatus, int npipe)
{
	if (p->child != 0 && npipe > 1) {
		int idx = p->forks - js.c_totforked + npipe;
		if (idx >= 0 && idx < npipe)
			return pipestatus[idx];
	}
	return status;
}

/* flush sends the STOPs this process owes: its own commands that ended, and those of subshells that
 * exec'd a command and are gone (they get $?). With all (exit), every STOP this process owes. */
static void flush(int depth, int status, const int *pipestatus, int npipe, bool all)
{
	if (pend == NULL)
		return;
	pid_t me = getpid();
	for (int i = 0; i < MAX_PENDING; i++) {
		struct pending *p = &pend[i];
		if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) != OWED)
			continue;
		bool ready = p->pid == me ? all || ended(p, depth) : !all && gone(p->pid);
		if (ready && claim(p, OWED, SENDING))
			stop_begin(p, p->pid == me ? status_of(p, status, pipestatus, npipe) : status);
	}
}

static void at_exit(void)
{
	flush(0, last_command_exit_value, NULL, 0, true);
	stops_collect(true);
}

/* remember takes a slot for a command whose START is going out; NULL when the table is full. */
static struct pending *remember(const char *cmd, char *const *args, int nargs)
{
	if (!table())
		return NULL;
	for (int i = 0; i < MAX_PENDING; i++) {
		struct pending *p = &pend[i];
		if (!claim(p, FREE, SENDING))
			continue;
		p->pid = getpid();
		p->depth = variable_context;
		p->made = last_made_pid;
		p->forks = js.c_totforked;
		p->child = 0;
		p->nargs = 0;
		clock_gettime(CLOCK_MONOTONIC, &p->start);
		snprintf(p->task, sizeof p->task, "%ld.%lu.%ld", (long)p->pid, ++task_seq, (long)time(NULL));
		size_t off = 0, l = strlen(cmd) + 1;
		if (l > BLOB)
			l = BLOB; /* cannot happen: cmd is at most a pair long */
		memcpy(p->blob, cmd, l);
		p->blob[BLOB - 1] = '\0';
		off = l;
		for (int j = 0; j < nargs; j++) {
			l = strlen(args[j]) + 1;
			if (off + l > BLOB)
				break; /* the STOP carries fewer arguments; task_id ties it to its START */
			memcpy(p->blob + off, args[j], l);
			off += l;
			p->nargs++;
		}
		p->len = off;
		return p;
	}
	return NULL;
}

/* expand returns the words of one word as bash would expand them, or the word as typed when expanding it
 * could have side effects (it holds $, ` or a process substitution). */
static int push(char ***out, int *n, int *cap, const char *t)
{
	if (*n == *cap) {
		int nc = *cap * 2 + 16;
		char **nv = realloc(*out, (size_t)nc * sizeof **out);
		if (nv == NULL)
			return -1;
		*out = nv;
		*cap = nc;
	}
	if (((*out)[*n] = strdup(t)) == NULL)
		return -1;
	(*n)++;
	return 0;
}

/* param recognises a word that is one parameter and nothing else: $NAME, ${NAME}, $1, "$NAME", "${NAME}",
 * "$1", "$@". Reading a parameter has no side effects (beyond those of bash's dynamic variables, such as
 * RANDOM), so the hook can show the server its value. Returns false for anything else. */
static bool param(const char *t, char *name, size_t cap, bool *quoted)
{
	size_t n = strlen(t);
	*quoted = n >= 2 && t[0] == '"' && t[n - 1] == '"';
	if (*quoted) {
		t++;
		n -= 2;
	}
	if (n < 2 || t[0] != '$')
		return false;
	t++;
	n--;
	if (t[0] == '{') {
		if (n < 3 || t[n - 1] != '}')
			return false;
		t++;
		n -= 2;
	}
	if (n == 0 || n >= cap)
		return false;
	memcpy(name, t, n);
	name[n] = '\0';
	if (strcmp(name, "@") == 0)
		return *quoted; /* unquoted $@ is split and globbed: left as typed */
	if (n == 1 && name[0] >= '0' && name[0] <= '9')
		return true;
	return legal_identifier(name) != 0;
}

/* expand_param pushes the value(s) of a parameter word; returns 1 when the word is not one this can
 * expand safely (an unquoted value bash would split or glob), so the caller keeps it as typed. */
static int expand_param(const char *name, bool quoted, char ***out, int *n, int *cap)
{
	if (strcmp(name, "@") == 0) {
		WORD_LIST *l = list_rest_of_args();
		int rc = 0;
		for (WORD_LIST *p = l; p != NULL && rc == 0; p = p->next)
			rc = push(out, n, cap, p->word->word);
		dispose_words(l);
		return rc;
	}
	char *owned = NULL;
	const char *v;
	if (name[0] >= '0' && name[0] <= '9')
		v = owned = get_dollar_var_value(name[0] - '0');
	else
		v = get_string_value(name);
	int rc;
	if (!quoted && v != NULL && strpbrk(v, " \t\n*?[") != NULL)
		rc = 1;
	else if (v == NULL || v[0] == '\0')
		rc = quoted ? push(out, n, cap, "") : 0; /* unquoted and empty: no word */
	else
		rc = push(out, n, cap, v);
	free(owned);
	return rc;
}

/* expand pushes what a word becomes; *raw tells when it is pushed as typed (its expansion could run code
 * or change state: command substitution, arithmetic, ${x:=y}...). */
static int expand(const struct w_word *w, char ***out, int *n, int *cap, bool *raw)
{
	*raw = false;
	if (w->expands) {
		char name[256];
		bool quoted;
		if (param(w->text, name, sizeof name, &quoted)) {
			int rc = expand_param(name, quoted, out, n, cap);
			if (rc <= 0)
				return rc;
		}
		*raw = true;
		return push(out, n, cap, w->text);
	}
	WORD_LIST *in = make_word_list(make_word(w->text), NULL);
	int saved = fail_glob_expansion;
	fail_glob_expansion = 0; /* failglob would abort the command line from inside the trap */
	WORD_LIST *res = expand_words_no_vars(in);
	fail_glob_expansion = saved;
	dispose_words(in);
	int rc = 0;
	for (WORD_LIST *l = res; l != NULL && rc == 0; l = l->next)
		rc = push(out, n, cap, l->word->word);
	dispose_words(res);
	return rc;
}

enum kind { K_FUNCTION, K_BUILTIN, K_FILE, K_NOTFOUND };

/* resolve finds what bash will run for name, as bash looks it up: a path, a function, a builtin, then
 * PATH (through bash's hash table). *cmd is a new string. */
static enum kind resolve(const char *name, bool functions, bool builtins, char **cmd)
{
	if (strchr(name, '/') != NULL) {
		*cmd = name[0] == '/' ? strdup(name) : make_absolute(name, get_string_value("PWD"));
		return K_FILE;
	}
	if (functions && find_function(name) != NULL) {
		*cmd = strdup(name);
		return K_FUNCTION;
	}
	if (builtins && find_shell_builtin((char *)name) != NULL) {
		*cmd = strdup(name);
		return K_BUILTIN;
	}
	char *path = search_for_command(name, 0);
	if (path != NULL) {
		*cmd = strdup(path);
		free(path);
		return K_FILE;
	}
	*cmd = strdup(name);
	return K_NOTFOUND;
}


/* tamper names what a builtin's arguments would do to the hook, or NULL. The caller refuses it. */
static const char *tamper(const char *cmd, char **args, int nargs, const bool *raw)
{
	if (strcmp(cmd, "trap") == 0) {
		if (nargs > 0 && !raw[0] && (strcmp(args[0], "-p") == 0 || strcmp(args[0], "-l") == 0))
			return NULL; /* listing only */
		for (int i = 0; i < nargs; i++) {
			if (raw[i])
				return "trap with an unexpanded argument could change the DEBUG trap";
			if (strcasestr(args[i], "debug") != NULL)
				return "the DEBUG trap is the command authorization hook";
		}
	} else if (strcmp(cmd, "enable") == 0) {
		for (int i = 0; i < nargs; i++) {
			if (raw[i])
				return "enable with an unexpanded argument could unload the hook";
			if (args[i][0] == '-' && strpbrk(args[i], "ndf") != NULL)
				return "enable -n, -d and -f are not allowed under command authorization";
			if (strcmp(args[i], HOOK_NAME) == 0 || strcmp(args[i], "enable") == 0 || strcmp(args[i], "trap") == 0)
				return "the hook's builtins stay as they are";
		}
	} else if (strcmp(cmd, HOOK_NAME) == 0) {
		return "the hook runs from the DEBUG trap only";
	}
	return NULL;
}

/* options from the trap's command line (contrib/bash/tacagent.sh); the words after them are $? and
 * ${PIPESTATUS[@]}. */
static int options(WORD_LIST *list, int *status, int *pipestatus, int *npipe)
{
	*status = last_command_exit_value;
	*npipe = 0;
	cfg.priv_lvl = 1;
	cfg.timeout_ms = SA_DEFAULT_TIMEOUT_MS;
	cfg.fallback_group = NULL;
	cfg.port = NULL;
	cfg.rem_addr = NULL;
	cfg.ack = "durable"; /* the record is fsynced in the agent's spool before the command runs */
	if (!kept_ready) {
		for (int i = 0; i < KEPT; i++)
			th_conn_init(&kept[i], SA_FD_MIN);
		kept_ready = true;
	}
	cfg.kept = kept;
	cfg.nkept = KEPT;
	snprintf(cfg_socket, sizeof cfg_socket, "%s", SA_DEFAULT_SOCKET);
	bool first_status = true;
	for (; list != NULL; list = list->next) {
		const char *o = list->word->word;
		const char *v = list->next != NULL ? list->next->word->word : NULL;
		if (o[0] == '-' && o[1] != '\0' && o[2] == '\0' && strchr("stgpdTra", o[1]) != NULL) {
			if (v == NULL)
				return -1;
			switch (o[1]) {
			case 's': snprintf(cfg_socket, sizeof cfg_socket, "%s", v); break;
			case 't': cfg.timeout_ms = atoi(v); break;
			case 'g': snprintf(cfg_group, sizeof cfg_group, "%s", v); cfg.fallback_group = cfg_group[0] ? cfg_group : NULL; break;
			case 'p': cfg.priv_lvl = atoi(v) < 0 || atoi(v) > 15 ? 1 : atoi(v); break;
			case 'd': cfg.daemon_uid = v[0] ? atol(v) : -1; break;
			case 'T': snprintf(cfg_port, sizeof cfg_port, "%s", v); cfg.port = cfg_port; break;
			case 'r': snprintf(cfg_rem, sizeof cfg_rem, "%s", v); cfg.rem_addr = cfg_rem; break;
			case 'a':
				if (strcmp(v, "queued") != 0 && strcmp(v, "durable") != 0 && strcmp(v, "delivered") != 0 &&
				    v[0] != '\0')
					return -1;
				if (v[0] != '\0') {
					snprintf(cfg_ack, sizeof cfg_ack, "%s", v);
					cfg.ack = cfg_ack;
				}
				break;
			}
			list = list->next;
		} else if (strcmp(o, "--") == 0) {
			continue;
		} else if (first_status) {
			*status = atoi(o);
			first_status = false;
		} else if (*npipe < 256) {
			pipestatus[(*npipe)++] = atoi(o);
		}
	}
	return 0;
}

static struct w_list words; /* 16 KiB: not on bash's stack */

/* A function call: bash runs the DEBUG trap once more as the function starts (extdebug), with the
 * call's text and one level deeper. That second run is not a command. */
static char fn_text[1024];
static int fn_depth = -1;
static pid_t fn_pid;

static bool function_entry(const char *text)
{
	bool entry = fn_depth >= 0 && variable_context == fn_depth + 1 && fn_pid == getpid() && strcmp(text, fn_text) == 0;
	fn_depth = -1;
	return entry;
}

static int decide(const char *text, bool tampered);
/* replacing: the command decided is run by exec. */
static bool replacing;

static int tacagent_hook_builtin(WORD_LIST *list)
{
	int status, pipestatus[256], npipe;
	if (options(list, &status, pipestatus, &npipe) != 0) {
		builtin_usage();
		return EX_USAGE;
	}
	const char *text = the_printed_command_except_trap;
	if (running_trap == 0 || text == NULL) {
		say(HOOK_NAME, "%s%s", "the hook runs from the DEBUG trap only", "");
		return EXECUTION_FAILURE;
	}
	if (!exit_registered) {
		exit_registered = atexit(at_exit) == 0;
	}
	/* The hook's own switches: extdebug makes a non-zero trap skip the command, functrace hands the trap
	 * to functions, subshells and command substitutions. Turned off means tampering: back on, and this
	 * command is refused. */
	bool tampered = !debugging_mode || !function_trace_mode;
	debugging_mode = 1;
	function_trace_mode = 1;

	if (function_entry(text))
		return tampered ? EXECUTION_FAILURE : EXECUTION_SUCCESS;
	stops_collect(false);
	flush(variable_context, status, pipestatus, npipe, false);
	replacing = false;
	int rc = decide(text, tampered);
	/* A subshell (bash execs the last command of `( )` and `$( )`) or exec may replace this process before
	 * its next command: closing a connection before the agent answers could cancel a record. */
	if (subshell_environment != 0 || replacing)
		stops_collect(true);
	return rc;
}

/* decide authorizes the command about to run, sends its START and remembers its STOP. */
static int decide(const char *text, bool tampered)
{
	if (w_keyword(text))
		return tampered ? EXECUTION_FAILURE : EXECUTION_SUCCESS;
	if (w_split(text, &words) != 0)
		return EXECUTION_FAILURE;
	int first = 0;
	while (first < words.n && words.w[first].assignment)
		first++;
	char **argv = NULL;
	bool *raw = NULL;
	int argc = 0, cap = 0, rc = EXECUTION_FAILURE;
	char *cmd = NULL;
	struct pending *p = NULL; /* the slot of its STOP, while it is taken and not owed yet */
	for (int i = first; i < words.n; i++) {
		int before = argc;
		bool kept;
		if (expand(&words.w[i], &argv, &argc, &cap, &kept) != 0)
			goto out;
		bool *nr = realloc(raw, (size_t)(cap > 0 ? cap : 1) * sizeof *raw);
		if (nr == NULL)
			goto out;
		raw = nr;
		for (int k = before; k < argc; k++)
			raw[k] = kept;
	}
	if (argc == 0) { /* assignments or redirections only: no command runs */
		rc = tampered ? EXECUTION_FAILURE : EXECUTION_SUCCESS;
		goto out;
	}
	if (words.truncated) {
		say(argv[0], "denied: %s%s", "the command line is too long to authorize", "");
		goto out;
	}

	/* command, builtin and exec name the command they run. */
	int at = 0;
	bool functions = true, builtins = true;
	enum kind k = resolve(argv[0], functions, builtins, &cmd);
	while (k == K_BUILTIN && at + 1 < argc && !raw[at + 1] &&
	       (strcmp(cmd, "command") == 0 || strcmp(cmd, "builtin") == 0 || strcmp(cmd, "exec") == 0)) {
		int j = at + 1;
		bool query = false;
		if (strcmp(cmd, "builtin") != 0) {
			for (; j < argc && argv[j][0] == '-' && argv[j][1] != '\0'; j++) {
				if (strcmp(argv[j], "--") == 0) {
					j++;
					break;
				}
				if (strpbrk(argv[j], "vV") != NULL && strcmp(cmd, "command") == 0)
					query = true;
				if (strcmp(cmd, "exec") == 0 && strchr(argv[j], 'a') != NULL)
					j++; /* exec -a NAME */
			}
		}
		if (query || j >= argc || raw[j])
			break;
		bool is_exec = strcmp(cmd, "exec") == 0, is_builtin = strcmp(cmd, "builtin") == 0;
		free(cmd);
		cmd = NULL;
		at = j;
		k = resolve(argv[at], false, !is_exec, &cmd);
		if (is_builtin && k != K_BUILTIN)
			break;
	}
	if (cmd == NULL)
		goto out;
	const char *why = k == K_BUILTIN ? tamper(cmd, argv + at + 1, argc - at - 1, raw + at + 1) : NULL;
	/* The command must be named, not computed: `$(echo rm) -rf x` or `command \`which rm\`` would show
	 * the server nothing it could judge. */
	if (why == NULL && (raw[at] || (k == K_BUILTIN && at + 1 < argc && raw[at + 1] &&
					 (strcmp(cmd, "command") == 0 || strcmp(cmd, "builtin") == 0 ||
					  strcmp(cmd, "exec") == 0))))
		why = "the command to run is computed by an expansion; name it";
	if (why == NULL && tampered)
		why = "extdebug or functrace was turned off; it is back on";
	if (why != NULL) {
		say(raw[at] ? argv[at] : cmd, "denied: %s%s", why, "");
		goto out;
	}
	const char *user = login_user();
	if (user == NULL) {
		say(cmd, "denied: %s%s", "this uid has no user name", "");
		goto out;
	}
	for (int i = 0; i < at; i++)
		replacing = replacing || strcmp(argv[i], "exec") == 0;
	/* The slot of its STOP is taken first: its task_id goes with the authorization, which sends the
	 * START in the same request when the command is permitted. */
	p = remember(cmd, argv + at + 1, argc - at - 1);
	struct sa_result r;
	sa_authorize(&cfg, user, cmd, argv + at + 1, argc - at - 1, p != NULL ? p->task : NULL, &r);
	switch (r.verdict) {
	case SA_PERMIT:
		break;
	case SA_DENY:
		say(cmd, "denied%s%s", r.server_msg[0] ? ": " : "", r.server_msg);
		goto out;
	case SA_UNAVAILABLE:
	case SA_ERROR:
		/* Leaving the shell is never refused for want of an answer: a user must be able to log out
		 * while the agent or every server is down. A FAIL still refuses it. */
		if (k == K_BUILTIN && (strcmp(cmd, "exit") == 0 || strcmp(cmd, "logout") == 0))
			break;
		if (r.verdict == SA_ERROR) {
			say(cmd, "denied: %s%s", r.why, "");
			goto out;
		}
		if (sa_fallback(&cfg)) {
			say(cmd, "no TACACS+ server could be asked (%s); allowed for group %s", r.why, cfg.fallback_group);
			break;
		}
		say(cmd, "denied: no TACACS+ server could be asked (%s)%s", r.why, "");
		goto out;
	}
	rc = EXECUTION_SUCCESS;
	if (k == K_FUNCTION && strlen(text) < sizeof fn_text) {
		snprintf(fn_text, sizeof fn_text, "%s", text);
		fn_depth = variable_context;
		fn_pid = getpid();
	}

	/* The START went with the authorization; without a server's PASS (the fallback group, exit) it goes
	 * on its own, and the agent's spool keeps it while no server answers. */
	char ewhy[SA_MSG];
	if (p == NULL) {
		char task[64];
		snprintf(task, sizeof task, "%ld.%lu.%ld", (long)getpid(), ++task_seq, (long)time(NULL));
		if (!sa_account(&cfg, "start", user, task, cmd, argv + at + 1, argc - at - 1, -1000, -1, ewhy, sizeof ewhy))
			say(cmd, "accounting START not recorded: %s%s", ewhy, "");
		say(cmd, "too many commands in flight: no STOP will be sent for this one%s%s", "", "");
		goto out;
	}
	if (r.verdict != SA_PERMIT) {
		if (!sa_account(&cfg, "start", user, p->task, cmd, argv + at + 1, argc - at - 1, -1000, -1, ewhy, sizeof ewhy))
			say(cmd, "accounting START not recorded: %s%s", ewhy, "");
	} else if (!r.start_sent) {
		say(cmd, "accounting START not recorded: %s%s", "the agent did not send it", "");
	} else if (!r.start_ok) {
		say(cmd, "accounting START not recorded: %s%s", r.start_why, "");
	}
	__atomic_store_n(&p->state, OWED, __ATOMIC_RELEASE);
	p = NULL;
out:
	if (p != NULL)
		__atomic_store_n(&p->state, FREE, __ATOMIC_RELEASE); /* it does not run: no STOP */
	free(cmd);
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	free(argv);
	free(raw);
	w_free(&words);
	return rc;
}

static char *tacagent_hook_doc[] = {
	"Authorize and account the command about to run through tacagent.",
	"",
	"Run from a DEBUG trap under extdebug (contrib/bash/tacagent.sh); returns",
	"non-zero when the command must not run. Options: -s SOCKET, -t TIMEOUT_MS,",
	"-g FALLBACK_GROUP, -p PRIV_LVL, -d DAEMON_UID, -T TTY, -r REMOTE_ADDR,",
	"-a ACCOUNTING_ACK (delivered or queued);",
	"then $? and ${PIPESTATUS[@]}. See docs/bash.md.",
	NULL,
};

struct builtin tacagent_hook_struct = {
	HOOK_NAME, tacagent_hook_builtin, BUILTIN_ENABLED, tacagent_hook_doc,
	HOOK_NAME " [-s SOCKET] [-t MS] [-g GROUP] [-p PRIV] [-d UID] [-T TTY] [-r ADDR] [-a ACK] [STATUS [PIPESTATUS...]]", 0,
};
