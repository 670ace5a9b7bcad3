/* systemd readiness (sd_notify) and SIGHUP: first common/service.c itself,
 * against a NOTIFY_SOCKET of the test's own, then the real ha-witness: it
 * says READY=1 once it listens, and a SIGHUP reloads its PSK file (or says
 * why it keeps the key in use) and never stops it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/notify.h"
#include "common/service.h"

static char dir[64];

/* A datagram socket at DIR/notify, named by NOTIFY_SOCKET. */
static int notify_socket(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/notify", dir);
	unlink(sun.sun_path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	setenv("NOTIFY_SOCKET", sun.sun_path, 1);
	return fd;
}

/* The next message within MS, NUL-terminated in BUF; "" on a timeout. */
static const char *next_msg(int fd, char *buf, size_t len, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ssize_t n;

	buf[0] = '\0';
	if (poll(&p, 1, ms) == 1 && (n = recv(fd, buf, len - 1, 0)) >= 0)
		buf[n] = '\0';
	return buf;
}

/* Waits up to MS for a message holding WANT. */
static bool wait_msg(int fd, const char *want, int ms)
{
	uint64_t end = clk_now_ns() + (uint64_t)ms * 1000000;
	char buf[512];

	while (clk_now_ns() < end)
		if (strstr(next_msg(fd, buf, sizeof(buf), 100), want))
			return true;
	return false;
}

static atomic_int reloads;

static void count_reload(void *ctx)
{
	atomic_fetch_add(&reloads, 1);
}

static void notify_and_hup(void **state)
{
	int fd = notify_socket();
	char buf[512];

	(void)state;
	service_ready("up on %s", "here");
	assert_string_equal(next_msg(fd, buf, sizeof(buf), 1000), "READY=1\nSTATUS=up on here");
	service_status("degraded");
	assert_string_equal(next_msg(fd, buf, sizeof(buf), 1000), "STATUS=degraded");
	/* Each event becomes the status, from the hooks' thread (never on
	 * the caller's path), also when there is no hook. */
	{
		struct notify *n;

		assert_int_equal(notify_start(NULL, 1000, "primary", &n), 0);
		assert_non_null(n);
		notify_event(n, "degraded", "kvm:web", "b:7788", 3, "no ACK for 500 ms");
		assert_string_equal(next_msg(fd, buf, sizeof(buf), 2000),
				    "STATUS=degraded kvm:web: no ACK for 500 ms");
		notify_stop(n);
	}

	assert_int_equal(service_init(count_reload, NULL), 0);
	/* To the process, as systemctl reload sends it: the thread that
	 * waits for it takes it, and nothing else notices. */
	assert_int_equal(kill(getpid(), SIGHUP), 0);
	assert_string_equal(next_msg(fd, buf, sizeof(buf), 2000), "RELOADING=1");
	assert_string_equal(next_msg(fd, buf, sizeof(buf), 2000), "READY=1");
	assert_int_equal(atomic_load(&reloads), 1);
	kill(getpid(), SIGHUP);
	assert_true(wait_msg(fd, "READY=1", 2000));
	assert_int_equal(atomic_load(&reloads), 2);
	close(fd);
	unsetenv("NOTIFY_SOCKET");
}

static bool log_has(const char *path, const char *want)
{
	char buf[16384];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return strstr(buf, want) != NULL;
}

static void witness_under_systemd(void **state)
{
	const char *build = getenv("HA_BUILD") ? getenv("HA_BUILD") : "build/default";
	const char *src = getenv("HA_SRC") ? getenv("HA_SRC") : ".";
	char bin[512], psk[128], logp[128], ctl[128], st[128], listen[32], cmd[1024];
	int fd = notify_socket(), status;
	pid_t pid;

	(void)state;
	snprintf(bin, sizeof(bin), "%s/bin/ha-witness", build);
	snprintf(psk, sizeof(psk), "%s/psk", dir);
	snprintf(logp, sizeof(logp), "%s/witness.log", dir);
	snprintf(ctl, sizeof(ctl), "%s/w.sock", dir);
	snprintf(st, sizeof(st), "%s/state", dir);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", 20000 + getpid() % 20000);
	snprintf(cmd, sizeof(cmd), "sh %s/scripts/tls-gen.sh psk %s pair", src, psk);
	assert_int_equal(system(cmd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int lf = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		dup2(lf, 2);
		execl(bin, "ha-witness", "--listen", listen, "--tls-psk", psk, "--ctl", ctl,
		      "--state", st, (char *)NULL);
		_exit(127);
	}
	if (!wait_msg(fd, "READY=1", 10000)) {
		print_error("no READY=1 from ha-witness; its log (%s) follows\n", logp);
		snprintf(cmd, sizeof(cmd), "cat %s >&2", logp);
		(void)!system(cmd);
		kill(pid, SIGKILL);
		fail();
	}

	/* The key rotated in place: reloaded, the witness still up. */
	snprintf(cmd, sizeof(cmd), "sh %s/scripts/tls-gen.sh psk %s.new pair && mv %s.new %s",
		 src, psk, psk, psk);
	assert_int_equal(system(cmd), 0);
	kill(pid, SIGHUP);
	assert_true(wait_msg(fd, "RELOADING=1", 5000));
	assert_true(wait_msg(fd, "READY=1", 5000));
	assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
	assert_true(log_has(logp, "reload: the witness's TLS credentials read again"));

	/* A broken file: said, the key in use kept, still up. */
	snprintf(cmd, sizeof(cmd), "echo broken > %s", psk);
	assert_int_equal(system(cmd), 0);
	kill(pid, SIGHUP);
	assert_true(wait_msg(fd, "READY=1", 5000));
	assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
	assert_true(log_has(logp, "the ones in use stay"));

	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(fd);
	unsetenv("NOTIFY_SOCKET");
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/ha-test-service.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(witness_under_systemd),
		cmocka_unit_test(notify_and_hup),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
