#include "common/runcmd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/service.h"

extern char **environ;

/* environ with vars added (a variable of the same name replaced), built
 * before fork: the child may only call async-signal-safe functions. */
static char **build_env(const char *const *vars)
{
	size_t n = 0, nv = 0, k = 0;
	char **env;

	while (environ && environ[n])
		n++;
	while (vars && vars[nv])
		nv++;
	env = calloc(n + nv + 1, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		bool replaced = false;

		for (size_t j = 0; j < nv && !replaced; j++) {
			size_t len = strcspn(vars[j], "=") + 1;

			replaced = !strncmp(environ[i], vars[j], len);
		}
		if (!replaced)
			env[k++] = environ[i];
	}
	for (size_t j = 0; j < nv; j++)
		env[k++] = (char *)vars[j];
	return env;
}

struct out_sink {
	const char *what;
	run_line_fn *line;
	void *ctx;
};

static void one_line(const struct out_sink *o, const char *l)
{
	log_info("%s: %s", o->what, l);
	if (o->line)
		o->line(o->ctx, l);
}

/* Logs complete lines from buf; keeps a partial last line. */
static void log_lines(const struct out_sink *o, char *buf, size_t *len, int final)
{
	char *start = buf, *nl;

	while ((nl = memchr(start, '\n', *len - (size_t)(start - buf)))) {
		*nl = '\0';
		one_line(o, start);
		start = nl + 1;
	}
	*len -= (size_t)(start - buf);
	memmove(buf, start, *len);
	if (*len && (final || *len > 900)) {
		buf[*len] = '\0';
		one_line(o, buf);
		*len = 0;
	}
}

/* ARGV[0] is the program's path; SHOWN is how the log names the call. */
static int run(const char *what, const char *const *argv, const char *shown, unsigned timeout_ms,
	       const char *const *vars, const struct out_sink *o, char *why, size_t whylen)
{
	char **env = build_env(vars);
	uint64_t deadline = clk_now_ns() + (uint64_t)timeout_ms * NSEC_PER_MSEC;
	char out[1024];
	size_t outlen = 0;
	int p[2] = {-1, -1}, status = 0, rc;
	bool eof = false, exited = false;
	pid_t pid;

	if (!env) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		rc = -errno;
		snprintf(why, whylen, "pipe: %s", strerror(errno));
		free(env);
		return rc;
	}
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		snprintf(why, whylen, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		free(env);
		return rc;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		/* Own process group: a timeout kills everything it started. */
		setsid();
		service_child_signals();
		signal(SIGPIPE, SIG_DFL);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(p[1], 1);
		dup2(p[1], 2);
		execve(argv[0], (char *const *)argv, env);
		_exit(127);
	}
	close(p[1]);
	free(env);
	log_info("%s: running '%s' (pid %d, timeout %u ms)", what, shown, (int)pid, timeout_ms);

	while (!exited) {
		uint64_t now = clk_now_ns();

		if (now >= deadline)
			break;
		if (!eof) {
			struct pollfd pfd = {.fd = p[0], .events = POLLIN};
			int ms = (int)((deadline - now) / NSEC_PER_MSEC) + 1;

			if (poll(&pfd, 1, ms > 100 ? 100 : ms) > 0) {
				ssize_t n = read(p[0], out + outlen, sizeof(out) - 1 - outlen);

				if (n > 0) {
					outlen += (size_t)n;
					log_lines(o, out, &outlen, 0);
				} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
					eof = true;
				}
			}
		} else {
			usleep(10000);
		}
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			exited = true;
	}
	if (!exited) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	/* Whatever it printed last. */
	for (;;) {
		struct pollfd pfd = {.fd = p[0], .events = POLLIN};
		ssize_t n;

		if (poll(&pfd, 1, 0) <= 0 || outlen >= sizeof(out) - 1)
			break;
		n = read(p[0], out + outlen, sizeof(out) - 1 - outlen);
		if (n <= 0)
			break;
		outlen += (size_t)n;
		log_lines(o, out, &outlen, 0);
	}
	log_lines(o, out, &outlen, 1);
	close(p[0]);

	if (!exited) {
		snprintf(why, whylen, "the %s command did not finish within %u ms (killed)",
			 what, timeout_ms);
		return -ETIMEDOUT;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		snprintf(why, whylen, "the %s command exited 0", what);
		return 0;
	}
	if (WIFEXITED(status))
		snprintf(why, whylen, "the %s command exited %d%s", what, WEXITSTATUS(status),
			 WEXITSTATUS(status) == 127 ? " (command not found?)" : "");
	else
		snprintf(why, whylen, "the %s command was killed by signal %d", what,
			 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return -EIO;
}

int run_cmd(const char *what, const char *cmd, unsigned timeout_ms, const char *const *vars,
	    char *why, size_t whylen)
{
	const char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
	struct out_sink o = {.what = what};

	return run(what, argv, cmd, timeout_ms, vars, &o, why, whylen);
}

int run_argv(const char *what, const char *const *argv, unsigned timeout_ms,
	     const char *const *vars, run_line_fn *line, void *ctx, char *why, size_t whylen)
{
	struct out_sink o = {.what = what, .line = line, .ctx = ctx};

	return run(what, argv, argv[0], timeout_ms, vars, &o, why, whylen);
}
