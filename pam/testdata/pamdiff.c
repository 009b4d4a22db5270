/* pamdiff: runs PAM service files through the real libpam, for the differential test of the policy
 * engine (pam/libpamdiff_test.go). Nothing is written to /etc/pam.d: pam_start_confdir reads the services
 * from the directory given as argv[1].
 *
 * First line of output: "codes SUCCESS PERM_DENIED AUTH_ERR AUTHINFO_UNAVAIL SYSTEM_ERR" with this libpam's
 * values. Then, for each service name read from stdin (one a line): "<name> <pam_authenticate's code>
 * <markers>", where markers are the PAM_TEXT_INFO messages the stack's pam_echo lines sent, in order,
 * joined by commas ("-" when none): they show which lines ran. */
#define _GNU_SOURCE
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char seen[4096];

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
	(void)data;
	struct pam_response *r = calloc((size_t)n, sizeof *r);
	if (r == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		if (msg[i]->msg_style != PAM_TEXT_INFO) {
			free(r);
			return PAM_CONV_ERR; /* the stacks under test never prompt */
		}
		if (strlen(seen) + strlen(msg[i]->msg) + 2 < sizeof seen) {
			if (seen[0] != '\0')
				strcat(seen, ",");
			strcat(seen, msg[i]->msg);
		}
	}
	*resp = r;
	return PAM_SUCCESS;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: pamdiff CONFDIR < services\n");
		return 2;
	}
	printf("codes %d %d %d %d %d\n", PAM_SUCCESS, PAM_PERM_DENIED, PAM_AUTH_ERR, PAM_AUTHINFO_UNAVAIL, PAM_SYSTEM_ERR);
	struct pam_conv c = {conv, NULL};
	char line[512];
	while (fgets(line, sizeof line, stdin) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0')
			continue;
		pam_handle_t *pamh = NULL;
		seen[0] = '\0';
		int rc = pam_start_confdir(line, "pamdiff-user", &c, argv[1], &pamh);
		if (rc != PAM_SUCCESS) {
			printf("%s start-failed %d\n", line, rc);
			fflush(stdout);
			continue;
		}
		rc = pam_authenticate(pamh, PAM_SILENT & 0);
		printf("%s %d %s\n", line, rc, seen[0] ? seen : "-");
		fflush(stdout);
		pam_end(pamh, rc);
	}
	return 0;
}
