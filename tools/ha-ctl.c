/* ha-ctl: talk to the local ha-protect / ha-receive daemons. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/ctl.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: ha-ctl [--ctl PATH] status DOMAIN\n"
		   "       ha-ctl [--ctl PATH] interval DOMAIN MS|auto\n"
		   "       ha-ctl [--ctl PATH] stop DOMAIN\n"
		   "Talks to ha-protect (primary) or, failing that, ha-receive (secondary)\n"
		   "for DOMAIN on this host; DOMAIN disk:NAME is ha-diskrepl's disk NAME.\n"
		   "Exit status: 0 done, 1 the daemon answered \"error: ...\" or none runs\n"
		   "for DOMAIN, 2 usage.\n");
}

int main(int argc, char **argv)
{
	const char *ctl = NULL, *cmd, *dom;
	char line[128], path[108];
	int i = 1, rc;

	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[1], "--ctl")) {
		ctl = argv[2];
		i = 3;
	}
	if (argc - i < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[i];
	dom = argv[i + 1];
	if (!strcmp(cmd, "interval")) {
		if (argc - i != 3) {
			usage(stderr);
			return 2;
		}
		snprintf(line, sizeof(line), "interval %s", argv[i + 2]);
	} else if ((!strcmp(cmd, "status") || !strcmp(cmd, "stop")) && argc - i == 2) {
		snprintf(line, sizeof(line), "%s", cmd);
	} else {
		usage(stderr);
		return 2;
	}

	if (ctl) {
		rc = ctl_request(ctl, line, stdout);
	} else if (!strncmp(dom, "disk:", 5)) {
		ctl_path(path, sizeof(path), "ha-diskrepl", dom + 5);
		rc = ctl_request(path, line, stdout);
		if (rc < 0) {
			fprintf(stderr, "ha-ctl: no ha-diskrepl serving %s on this host (%s)\n",
				dom + 5, strerror(-rc));
			return 1;
		}
		return rc;
	} else {
		ctl_path(path, sizeof(path), "ha-protect", dom);
		rc = ctl_request(path, line, stdout);
		if (rc == -ENOENT || rc == -ECONNREFUSED) {
			ctl_path(path, sizeof(path), "ha-receive", dom);
			rc = ctl_request(path, line, stdout);
		}
	}
	if (rc < 0) {
		fprintf(stderr, "ha-ctl: no ha-protect or ha-receive for %s on this host (%s)\n",
			dom, strerror(-rc));
		return 1;
	}
	return rc; /* 1: the daemon answered "error: ..." */
}
