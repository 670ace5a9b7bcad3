/* A replica served after activation (ha-receive --disk IMAGE,serve=NAME):
 * the domain that runs here from the replica reaches its disk through
 * ha-diskrepl's NBD export NAME, as it did on the primary, so that this
 * host can protect it in turn (ha-protect --disk NAME): failback. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/ctl.h"
#include "common/log.h"
#include "common/service.h"
#include "common/sock.h"
#include "secondary/rx_int.h"

/* How long ha-diskrepl may take to open the image and listen. */
#define SERVE_START_MS 10000

void rx_serve_path(const char *name, char *buf, size_t len)
{
	char ctl[108];

	/* ha-diskrepl's own naming: its control socket, with .nbd for .sock. */
	ctl_path(ctl, sizeof(ctl), "ha-diskrepl", name);
	snprintf(buf, len, "%.*s.nbd", (int)(strlen(ctl) - 5), ctl);
}

int rx_serve_disk(const char *name, const char *image, const char *bitmap,
		  const uint8_t *lineage, char *err, size_t errlen)
{
	char self[4096], prog[4200], nbd[108];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	uint64_t until = clk_now_ns() + (uint64_t)SERVE_START_MS * NSEC_PER_MSEC;
	pid_t pid;

	if (n < 0) {
		snprintf(err, errlen, "cannot find this program's directory: %s", strerror(errno));
		return -errno;
	}
	self[n] = '\0';
	*strrchr(self, '/') = '\0';
	snprintf(prog, sizeof(prog), "%s/ha-diskrepl", self); /* ha-diskrepl sits beside us */
	rx_serve_path(name, nbd, sizeof(nbd));
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "cannot start ha-diskrepl: %s", strerror(errno));
		return -errno;
	}
	if (pid == 0) {
		const char *argv[10] = {prog, "--name", name, "--image", image};
		char hex[33];
		int argc = 5;

		if (bitmap) {
			argv[argc++] = "--bitmap";
			argv[argc++] = bitmap;
		}
		if (lineage) {
			for (int i = 0; i < 16; i++)
				snprintf(hex + 2 * i, 3, "%02x", lineage[i]);
			argv[argc++] = "--lineage";
			argv[argc++] = hex;
		}

		/* Its own session, outliving ha-receive; never our unit's main. */
		service_child_signals();
		setsid();
		signal(SIGPIPE, SIG_DFL);
		unsetenv("NOTIFY_SOCKET");
		execv(prog, (char *const *)argv);
		fprintf(stderr, "cannot run %s: %s\n", prog, strerror(errno));
		_exit(127);
	}
	/* Served once its export accepts a connection (a socket file left by
	 * an earlier run does not). */
	for (;;) {
		int status, fd = sock_unix_connect(nbd);

		if (fd >= 0) {
			close(fd);
			log_info("%s is served as %s by ha-diskrepl (pid %d): nbd:unix:%s", image, name,
				 (int)pid, nbd);
			return 0;
		}
		if (waitpid(pid, &status, WNOHANG) == pid) {
			snprintf(err, errlen, "ha-diskrepl, serving %s as %s, exited at once (%s %d; "
					      "its messages are above)",
				 image, name, WIFEXITED(status) ? "status" : "signal",
				 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
			return -ECHILD;
		}
		if (clk_now_ns() >= until) {
			kill(pid, SIGTERM);
			snprintf(err, errlen, "ha-diskrepl, serving %s as %s, did not listen on %s "
					      "within %u ms",
				 image, name, nbd, SERVE_START_MS);
			return -ETIMEDOUT;
		}
		clk_sleep_until_ns(clk_now_ns() + 10 * NSEC_PER_MSEC);
	}
}
