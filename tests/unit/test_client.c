/* ha-client counter against the counter guest's own service code, served on
 * a loopback UDP socket: a request that reaches the service a second time,
 * long after it was answered, must be reported as a replay, and the client
 * must count on (exit 1 at the end, because there was one). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/guest/svc.h"

#define COUNT 8
#define REPLAY_AFTER 3 /* replay request 1 once request 3 is answered */

struct child {
	pid_t pid;
	int out, err; /* read ends of its stdout and stderr */
};

static void spawn_client(struct child *c, uint16_t port)
{
	const char *build = getenv("HA_BUILD");
	char path[512], addr[32], count[16];
	int out[2], err[2];

	if (!build)
		build = "build/default";
	snprintf(path, sizeof(path), "%s/bin/ha-client", build);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	snprintf(count, sizeof(count), "%d", COUNT);
	if (access(path, X_OK) != 0) {
		print_error("%s is missing: build it first (make all)\n", path);
		fail();
	}
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		dup2(out[1], 1);
		dup2(err[1], 2);
		execl(path, "ha-client", "counter", addr, "--name", "t1", "--count", count,
		      "--interval", "0", "--timeout", "200", (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	c->out = out[0];
	c->err = err[0];
}

static void slurp(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	ssize_t r;

	while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	close(fd);
}

static void replay_is_reported(void **state)
{
	(void)state;
	static struct svc_counter counter;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	char first[64] = "", out[4096], err[4096];
	size_t first_len = 0;
	bool replayed = false;
	struct child c;
	int status;

	svc_counter_init(&counter);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	spawn_client(&c, ntohs(sin.sin_port));

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		char req[128], rep[SVC_REPLY_MAX];
		ssize_t n;
		size_t len;

		if (poll(&p, 1, 2000) <= 0)
			break; /* the client is done (or stuck: the checks say) */
		n = recvfrom(fd, req, sizeof(req), 0, (struct sockaddr *)&from, &fl);
		assert_true(n > 0);
		if (!first_len) {
			memcpy(first, req, (size_t)n);
			first_len = (size_t)n;
		}
		len = svc_counter_handle(&counter, req, (size_t)n, rep, sizeof(rep));
		sendto(fd, rep, len, 0, (struct sockaddr *)&from, fl);
		if (!replayed && counter.value == REPLAY_AFTER) {
			/* The first request reaches the service again. */
			len = svc_counter_handle(&counter, first, first_len, rep, sizeof(rep));
			sendto(fd, rep, len, 0, (struct sockaddr *)&from, fl);
			replayed = true;
		}
	}
	close(fd);
	slurp(c.out, out, sizeof(out));
	slurp(c.err, err, sizeof(err));
	assert_int_equal(waitpid(c.pid, &status, 0), c.pid);

	assert_true(replayed);
	/* The service refused it and did not count it. */
	assert_int_equal(counter.value, COUNT);
	/* Reported as a replay, naming the request it waited for... */
	if (!strstr(err, "ha-client: replay: ERR stale 1 last 3 (while 4 is outstanding)")) {
		print_error("stderr: %s\n", err);
		fail();
	}
	/* ...and it counted on to the end, each value its id. */
	for (int i = 1; i <= COUNT; i++) {
		char want[32];

		snprintf(want, sizeof(want), "ack %d %d ", i, i);
		if (!strstr(out, want)) {
			print_error("no '%s' in stdout: %s\nstderr: %s\n", want, out, err);
			fail();
		}
	}
	assert_non_null(strstr(err, ", 1 replays"));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(replay_is_reported),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
