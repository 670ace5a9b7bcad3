/* Unit tests for common/ctl.c: the control socket serves root and the
 * daemon's own user only. The other user is "nobody", reached by a child
 * that drops its privileges, so this needs root (skipped otherwise). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/ctl.h"
#include "common/io.h"

#define NOBODY 65534

static int calls;

static int handler(void *ctx, const char *cmd, const char *arg, FILE *out)
{
	calls++;
	if (!strcmp(cmd, "refuse")) {
		fprintf(out, "error: refused, as asked\n");
		return -EINVAL;
	}
	if (!strcmp(cmd, "fail"))
		return -EBUSY;
	fprintf(out, "ok: %s\n", cmd);
	return 0;
}

/* In a child running as nobody: connects to path and sends "status".
 * Exit 0 with the reply in the pipe, 10 if the connect was refused by the
 * file's mode, 11 on another failure. */
static pid_t as_nobody(const char *path, int pipefd)
{
	pid_t pid = fork();

	if (pid)
		return pid;
	if (setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
		_exit(11);
	/* The server may answer and close before the request is written. */
	signal(SIGPIPE, SIG_IGN);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	char buf[128];
	ssize_t n;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		_exit(errno == EACCES ? 10 : 11);
	io_write_full(fd, "status\n", 7);
	n = read(fd, buf, sizeof(buf));
	if (n > 0)
		io_write_full(pipefd, buf, (size_t)n);
	_exit(0);
}

static void test_peer_credentials(void **state)
{
	char dir[] = "/tmp/ha-test-ctl.XXXXXX", path[108], *reply = NULL, buf[128] = "";
	struct ctl_server *s;
	size_t len = 0;
	int p[2], st;
	FILE *out;

	if (geteuid() != 0) {
		print_message("SKIP: needs root to act as another user\n");
		skip();
	}
	calls = 0;
	assert_non_null(mkdtemp(dir));
	chmod(dir, 0755);
	snprintf(path, sizeof(path), "%s/d.sock", dir);
	assert_int_equal(ctl_server_start(path, handler, NULL, &s), 0);

	/* The owner (root) is served. */
	out = open_memstream(&reply, &len);
	assert_int_equal(ctl_request(path, "status", out), 0);
	fclose(out);
	assert_string_equal(reply, "ok: status\n");
	free(reply);
	assert_int_equal(calls, 1);

	/* Another user cannot even open the socket (mode 0600)... */
	assert_int_equal(pipe(p), 0);
	waitpid(as_nobody(path, p[1]), &st, 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 10);

	/* ...and where the mode would let it, the peer credentials refuse it
	 * before the handler runs. */
	chmod(path, 0666);
	waitpid(as_nobody(path, p[1]), &st, 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	close(p[1]);
	assert_true(read(p[0], buf, sizeof(buf) - 1) > 0);
	close(p[0]);
	assert_string_equal(buf, "error: permission denied\n");
	assert_int_equal(calls, 1);

	ctl_server_stop(s);
	unlink(path);
	rmdir(dir);
}

/* A daemon's "error: ..." reply is told apart from an answer (ha-ctl
 * exits 1 on it), whether the handler wrote it or the server did. */
static void test_error_reply(void **state)
{
	char dir[] = "/tmp/ha-test-ctl.XXXXXX", path[108], *reply = NULL;
	struct ctl_server *s;
	size_t len = 0;
	FILE *out;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/d.sock", dir);
	assert_int_equal(ctl_server_start(path, handler, NULL, &s), 0);
	out = open_memstream(&reply, &len);
	assert_int_equal(ctl_request(path, "status", out), 0);
	assert_int_equal(ctl_request(path, "refuse", out), 1);
	assert_int_equal(ctl_request(path, "fail", out), 1);
	fclose(out);
	assert_string_equal(reply,
			    "ok: status\nerror: refused, as asked\nerror: Device or resource busy\n");
	free(reply);
	assert_int_equal(ctl_request(dir, "status", stdout), -ECONNREFUSED);
	ctl_server_stop(s);
	unlink(path);
	rmdir(dir);
}

static int cmd_echo(void *ctx, const char *arg, FILE *out)
{
	fprintf(out, "ok: echo '%s' for %s\n", arg, (const char *)ctx);
	return 0;
}

/* The daemons' table: a command reaches its function with the argument,
 * "stop" is everyone's, anything else lists them all. */
static void test_dispatch(void **state)
{
	static const struct ctl_cmd cmds[] = {
		{"echo", "echo WORDS", cmd_echo},
		{"status", "status", cmd_echo},
	};
	static volatile sig_atomic_t stop;
	static char name[] = "d0";
	struct ctl_commands c = {cmds, 2, name, &stop};
	char dir[] = "/tmp/ha-test-ctl.XXXXXX", path[108], *reply = NULL;
	struct ctl_server *s;
	size_t len = 0;
	FILE *out;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/d.sock", dir);
	assert_int_equal(ctl_server_start(path, ctl_dispatch, &c, &s), 0);
	out = open_memstream(&reply, &len);
	assert_int_equal(ctl_request(path, "echo a b", out), 0);
	assert_int_equal(ctl_request(path, "stat", out), 1);
	assert_int_equal(stop, 0);
	assert_int_equal(ctl_request(path, "stop", out), 0);
	assert_int_equal(stop, 1);
	fclose(out);
	assert_string_equal(reply, "ok: echo 'a b' for d0\n"
				   "error: unknown command 'stat' (echo WORDS, status, stop)\n"
				   "ok: stopping\n");
	free(reply);
	ctl_server_stop(s);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatch),
		cmocka_unit_test(test_error_reply),
		cmocka_unit_test(test_peer_credentials),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
