/* pluginhost: loads a bash plugin the way SONiC's patched bash does (dlopen, dlsym of on_shell_execve,
 * plugin_uninit and plugin_init, then plugin_init()), and runs one command as shell_execve would: in a
 * forked child, on_shell_execve(user, SHLVL, cmd, argv) first, execve only when it returns 0; the parent
 * waits and exits with the child's status.
 *     pluginhost PLUGIN.so CMD ARGV0 ARG...      (CMD: the resolved absolute path) */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

typedef int on_shell_execve_t(char *user, int shell_level, char *cmd, char **argv);
typedef void plugin_init_t(void);
typedef void plugin_uninit_t(void);

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: pluginhost PLUGIN.so CMD ARGV0 [ARG...]\n");
		return 2;
	}
	void *h = dlopen(argv[1], RTLD_LAZY);
	if (h == NULL) {
		fprintf(stderr, "pluginhost: %s\n", dlerror());
		return 2;
	}
	on_shell_execve_t *execve_hook = (on_shell_execve_t *)dlsym(h, "on_shell_execve");
	plugin_uninit_t *uninit = (plugin_uninit_t *)dlsym(h, "plugin_uninit");
	plugin_init_t *init = (plugin_init_t *)dlsym(h, "plugin_init");
	if (execve_hook == NULL || uninit == NULL || init == NULL) {
		fprintf(stderr, "pluginhost: a plugin function is missing\n");
		return 2;
	}
	init();
	const char *lvl = getenv("SHLVL");
	pid_t pid = fork();
	if (pid < 0)
		return 2;
	if (pid == 0) {
		char *user = getenv("USER");
		int rc = execve_hook(user != NULL ? user : "", lvl != NULL ? atoi(lvl) : 1, argv[2], argv + 3);
		if (rc != 0) {
			printf("pluginhost: on_shell_execve returned %d: not executed\n", rc);
			fflush(stdout);
			_exit(126);
		}
		execv(argv[2], argv + 3);
		perror("pluginhost: execv");
		_exit(127);
	}
	int st;
	if (waitpid(pid, &st, 0) < 0)
		return 2;
	uninit();
	dlclose(h);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
