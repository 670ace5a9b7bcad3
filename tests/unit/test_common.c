/* Unit tests for common/: bitmap, exact I/O, host:port parsing, fd passing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/bitmap.h"
#include "common/clock.h"
#include "common/ctl.h"
#include "common/hist.h"
#include "common/io.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/opt.h"
#include "common/sock.h"
#include "common/version.h"

static void test_bitmap(void **state)
{
	struct bitmap bm;
	size_t bits[] = {0, 1, 63, 64, 65, 127, 500, 999};

	assert_int_equal(bitmap_init(&bm, 1000), 0);
	assert_int_equal(bitmap_count(&bm), 0);
	assert_int_equal(bitmap_next_set(&bm, 0), 1000);
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		bitmap_set(&bm, bits[i]);
	assert_int_equal(bitmap_count(&bm), 8);
	size_t at = 0, n = 0;
	for (size_t b = bitmap_next_set(&bm, 0); b < bm.nbits; b = bitmap_next_set(&bm, b + 1)) {
		assert_int_equal(b, bits[n]);
		n++;
		at = b;
	}
	assert_int_equal(n, 8);
	assert_int_equal(at, 999);
	bitmap_clear(&bm, 64);
	assert_false(bitmap_test(&bm, 64));
	assert_true(bitmap_test(&bm, 65));
	assert_int_equal(bitmap_next_set(&bm, 64), 65);

	struct bitmap other;
	assert_int_equal(bitmap_init(&other, 1000), 0);
	bitmap_set(&other, 64);
	bitmap_or(&bm, &other);
	assert_int_equal(bitmap_count(&bm), 8);
	bitmap_zero(&bm);
	assert_int_equal(bitmap_count(&bm), 0);
	bitmap_destroy(&other);
	bitmap_destroy(&bm);
}

static void test_io_roundtrip_and_eof(void **state)
{
	int p[2];
	char a[] = "hello ", b[] = "world";
	struct iovec iov[2] = {{a, 6}, {b, 5}};
	char out[32] = {0};

	assert_int_equal(pipe(p), 0);
	assert_int_equal(io_writev_full(p[1], iov, 2), 0);
	close(p[1]);
	/* Asks for more than was written: gets it all, then EOF. */
	assert_int_equal(io_read_full(p[0], out, sizeof(out)), 11);
	assert_string_equal(out, "hello world");
	assert_int_equal(io_read_full(p[0], out, 1), 0);
	close(p[0]);
	assert_int_equal(io_read_full(-1, out, 1), -EBADF);
}

static void test_io_large_writev(void **state)
{
	/* More iovecs than the local window, through a socketpair read in parallel. */
	int sv[2];
	static char bufs[200][37];
	struct iovec iov[200];
	size_t total = 0;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	for (int i = 0; i < 200; i++) {
		memset(bufs[i], 'a' + i % 26, sizeof(bufs[i]));
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = sizeof(bufs[i]);
		total += sizeof(bufs[i]);
	}
	assert_int_equal(io_writev_full(sv[0], iov, 200), 0);
	close(sv[0]);
	char *in = malloc(total + 1);
	assert_int_equal(io_read_full(sv[1], in, total + 1), (ssize_t)total);
	for (int i = 0; i < 200; i++)
		assert_int_equal(in[i * 37 + 36], 'a' + i % 26);
	free(in);
	close(sv[1]);
}

static void test_hostport(void **state)
{
	char h[64], p[8];

	assert_int_equal(sock_split_hostport("10.0.0.2:7000", h, sizeof(h), p, sizeof(p)), 0);
	assert_string_equal(h, "10.0.0.2");
	assert_string_equal(p, "7000");
	assert_int_equal(sock_split_hostport("[::1]:9", h, sizeof(h), p, sizeof(p)), 0);
	assert_string_equal(h, "::1");
	assert_int_equal(sock_split_hostport(":80", h, sizeof(h), p, sizeof(p)), 0);
	assert_string_equal(h, "");
	assert_int_equal(sock_split_hostport("nohost", h, sizeof(h), p, sizeof(p)), -EINVAL);
	assert_int_equal(sock_split_hostport("h:", h, sizeof(h), p, sizeof(p)), -EINVAL);
	assert_int_equal(sock_split_hostport("h:8x", h, sizeof(h), p, sizeof(p)), -EINVAL);
	assert_int_equal(sock_split_hostport("[::1:9", h, sizeof(h), p, sizeof(p)), -EINVAL);
	/* An address without a port is told as such, not as "Invalid argument". */
	assert_int_equal(sock_tcp_listen("127.0.0.1", 1), -EINVAL);
	assert_non_null(strstr(sock_tcp_strerror(-EINVAL), "HOST:PORT"));
	assert_non_null(strstr(sock_tcp_strerror(-ENXIO), "does not resolve"));
	assert_string_equal(sock_tcp_strerror(-ECONNREFUSED), strerror(ECONNREFUSED));
	assert_true(sock_hostport_option("t", "--listen", NULL));
	assert_true(sock_hostport_option("t", "--listen", "127.0.0.1:7"));
	assert_false(sock_hostport_option("t", "--listen", "127.0.0.1"));
}

static void test_tcp_loopback(void **state)
{
	int l = sock_tcp_listen("127.0.0.1:0", 1);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char hp[64];

	assert_true(l >= 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&ss, &len), 0);
	snprintf(hp, sizeof(hp), "127.0.0.1:%u", ntohs(((struct sockaddr_in *)&ss)->sin_port));
	int c = sock_tcp_connect(hp, 1000);
	assert_true(c >= 0);
	int a = sock_tcp_accept(l);
	assert_true(a >= 0);
	assert_int_equal(sock_tcp_tune(c), 0);
	assert_int_equal(io_write_full(c, "x", 1), 0);
	char x;
	assert_int_equal(io_read_full(a, &x, 1), 1);
	close(a);
	close(c);
	close(l);
	/* Nobody listens on the old port any more. */
	assert_true(sock_tcp_connect(hp, 1000) < 0);
}

static void test_fd_passing(void **state)
{
	int sv[2], fd, got;
	char buf[8];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fd = open("/dev/null", O_RDONLY);
	assert_int_equal(sock_send_fd(sv[0], fd, "memfd", 5), 0);
	assert_int_equal(sock_recv_fd(sv[1], &got, buf, sizeof(buf)), 5);
	assert_true(got >= 0 && got != fd);
	pid_t pid;
	uid_t uid;
	assert_int_equal(sock_peer_cred(sv[1], &pid, &uid, NULL), 0);
	assert_int_equal(pid, getpid());
	assert_int_equal(uid, getuid());
	close(got);
	close(fd);
	close(sv[0]);
	close(sv[1]);
}

static int ctl_echo(void *ctx, const char *cmd, const char *arg, FILE *out)
{
	(void)ctx;
	fprintf(out, "%s|%s\n", cmd, arg);
	return 0;
}

static void on_usr1(int sig)
{
	(void)sig;
}

struct late_client {
	int fd;
	pthread_t server;
};

/* Interrupts the server's read with a signal, then sends the request. */
static void *late_client_main(void *arg)
{
	struct late_client *c = arg;

	clk_sleep_until_ns(clk_now_ns() + 100 * NSEC_PER_MSEC);
	pthread_kill(c->server, SIGUSR1);
	clk_sleep_until_ns(clk_now_ns() + 100 * NSEC_PER_MSEC);
	io_write_full(c->fd, "interval 20\n", 12);
	return NULL;
}

/* A signal during the request read (a read with a timeout: SA_RESTART
 * does not restart it) must not cut the request short. */
static void test_ctl_request_survives_signal(void **state)
{
	struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART};
	struct late_client c;
	pthread_t th;
	char reply[64] = "";
	int sv[2];

	(void)state;
	assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c.fd = sv[1];
	c.server = pthread_self();
	assert_int_equal(pthread_create(&th, NULL, late_client_main, &c), 0);
	assert_int_equal(ctl_serve_fd(sv[0], ctl_echo, NULL), 0);
	pthread_join(th, NULL);
	close(sv[0]);
	assert_true(io_read_full(sv[1], reply, sizeof(reply) - 1) > 0);
	assert_string_equal(reply, "interval|20\n");
	close(sv[1]);
}

static void test_clock(void **state)
{
	uint64_t a = clk_now_ns();
	clk_sleep_until_ns(a + 2 * NSEC_PER_MSEC);
	assert_true(clk_now_ns() >= a + 2 * NSEC_PER_MSEC);
}

/* Quantiles within a bucket's width; the text form lists every sample. */
static void test_hist(void **state)
{
	static struct hist h;
	char buf[4096];
	unsigned long long mid, cnt, total = 0;
	const char *p = buf;
	int n;

	assert_int_equal(hist_quantile(&h, 0.5), 0);
	for (uint64_t v = 1; v <= 10000; v++)
		hist_add(&h, v);
	hist_add(&h, (uint64_t)1 << 50); /* beyond the range: the last bucket */
	assert_int_equal(h.count, 10001);
	assert_in_range(hist_quantile(&h, 0.5), 5000 * 7 / 8, 5000 * 9 / 8);
	assert_in_range(hist_quantile(&h, 0.99), 9900 * 7 / 8, 9900 * 9 / 8);
	assert_int_equal(hist_quantile(&h, 0.0), 1);
	assert_true(hist_quantile(&h, 1.0) > 10000);
	assert_true(hist_format(&h, buf, sizeof(buf)) < (int)sizeof(buf));
	while (sscanf(p, "%llu:%llu%n", &mid, &cnt, &n) == 2) {
		total += cnt;
		p += n;
	}
	assert_int_equal(total, 10001);
	assert_true(hist_format(&h, buf, 8) > 8); /* truncated, length reported */
	assert_true(strlen(buf) < 8);

	/* A bucket's midpoint never lies beyond the samples: one sample at a
	 * bucket's lower edge is every quantile, exactly. */
	static struct hist one;
	hist_add(&one, 232900);
	assert_int_equal(hist_quantile(&one, 0.99), 232900);
	assert_int_equal(hist_quantile(&one, 0.5), 232900);
	hist_add(&one, 232800);
	assert_true(hist_quantile(&one, 0.99) <= 232900);
	assert_true(hist_quantile(&one, 0.0) >= 232800);
}

static int stop_calls;

static bool stop_on_third(void)
{
	return ++stop_calls >= 3;
}

static bool never(void)
{
	return false;
}

/* A sleep that a stop ends early (it is looked at every 20 ms), or that
 * ends at its deadline. */
static void test_sleep_until_or(void **state)
{
	uint64_t t0 = clk_now_ns();

	(void)state;
	assert_true(clk_sleep_until_or(t0 + 10 * NSEC_PER_SEC, stop_on_third));
	assert_int_equal(stop_calls, 3);
	assert_true(clk_now_ns() - t0 < 5 * NSEC_PER_SEC);
	t0 = clk_now_ns();
	assert_false(clk_sleep_until_or(t0 + 30 * NSEC_PER_MSEC, never));
	assert_true(clk_now_ns() >= t0 + 30 * NSEC_PER_MSEC);
	assert_false(clk_sleep_until_or(0, never)); /* already past */
}

/* Runs opt_ulong (POW2: opt_pow2) on S in [MIN, MAX] in a child: its exit
 * status (0 when the value was taken) and what it wrote to stderr. */
static int opt_child(const char *s, unsigned long min, unsigned long max, bool pow2, char *msg,
		     size_t len)
{
	int p[2], st;
	pid_t pid;
	ssize_t n;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 2);
		if (pow2)
			opt_pow2("prog", "--opt", s, min, max);
		else
			opt_ulong("prog", "--opt", s, min, max);
		_exit(0);
	}
	close(p[1]);
	n = read(p[0], msg, len - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static FILE *usage_to;

static void usage_seen(FILE *f)
{
	usage_to = f;
}

/* -v goes on, -h is usage on stdout and exit 0, anything else usage on
 * stderr and exit 2. */
static void test_opt_common(void **state)
{
	(void)state;
	assert_int_equal(opt_common('v', usage_seen), -1);
	assert_null(usage_to);
	assert_int_equal(opt_common('h', usage_seen), 0);
	assert_ptr_equal(usage_to, stdout);
	assert_int_equal(opt_common('?', usage_seen), 2);
	assert_ptr_equal(usage_to, stderr);
}

/* --version alone prints the release, the stream versions and features;
 * anything else is left to the program's own parser. */
static void test_version(void **state)
{
	char prog[] = "ha-x", ver[] = "--version", extra[] = "extra", verbose[] = "--verbose";
	char *a1[] = {prog, ver}, *a2[] = {prog, ver, extra}, *a3[] = {prog, verbose};
	char buf[1024] = "";
	FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");

	(void)state;
	assert_int_equal(version_arg(2, a2 + 1, "ha-x"), 0);
	assert_int_equal(version_arg(3, a2, "ha-x"), 0);
	assert_int_equal(version_arg(2, a3, "ha-x"), 0);
	assert_int_equal(version_arg(1, a1, "ha-x"), 0);
	assert_non_null(f);
	version_print(f, "ha-x");
	fclose(f);
	assert_non_null(strstr(buf, "ha-x " HA_VERSION "\n"));
	assert_non_null(strstr(buf, "stream protocol: writes 3, reads 2 to 3; back channel 1\n"));
	assert_non_null(strstr(buf, "libraries: gnutls "));
}

/* One validator per kind of value: a bad one is quoted, exit 2. */
static void test_opt(void **state)
{
	char msg[256];

	(void)state;
	assert_int_equal(opt_ulong("prog", "--opt", "20", 20, 600000), 20);
	assert_int_equal(opt_uint("prog", "--opt", "600000", 20, 600000), 600000);
	assert_int_equal(opt_pow2("prog", "--opt", "64", 4, 65536), 64);
	assert_int_equal(opt_child("19", 20, 600000, false, msg, sizeof(msg)), 2);
	assert_string_equal(msg, "prog: --opt wants a number in 20..600000, not '19'\n");
	assert_int_equal(opt_child("5ms", 1, 10, false, msg, sizeof(msg)), 2);
	assert_int_equal(opt_child("", 0, 10, false, msg, sizeof(msg)), 2);
	assert_int_equal(opt_child("-1", 0, ~0ul, false, msg, sizeof(msg)), 2);
	assert_int_equal(opt_child("99999999999999999999999", 0, ~0ul, false, msg, sizeof(msg)), 2);
	assert_int_equal(opt_child("48", 4, 65536, true, msg, sizeof(msg)), 2);
	assert_string_equal(msg, "prog: --opt wants a power of two in 4..65536, not '48'\n");
	assert_int_equal(opt_child("7", 1, 10, false, msg, sizeof(msg)), 0);
}

/* Runs fn in a child whose stderr is a pipe, with HA_LOG_LEVEL set to
 * level (NULL: unset) and, if journal, JOURNAL_STREAM naming that pipe;
 * returns its exit status and what it wrote. */
static int log_child(const char *level, bool journal, void (*fn)(void), char *out, size_t len)
{
	int p[2], st;
	size_t n = 0;
	ssize_t r;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct stat sb;
		char js[64];

		dup2(p[1], 2);
		if (level)
			setenv("HA_LOG_LEVEL", level, 1);
		else
			unsetenv("HA_LOG_LEVEL");
		unsetenv("JOURNAL_STREAM");
		if (journal && fstat(2, &sb) == 0) {
			snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)sb.st_dev,
				 (unsigned long long)sb.st_ino);
			setenv("JOURNAL_STREAM", js, 1);
		}
		log_init("/usr/sbin/ha-test");
		fn();
		_exit(0);
	}
	close(p[1]);
	while (n < len - 1 && (r = read(p[0], out + n, len - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void log_some(void)
{
	log_warn("a warning");
	log_unsafe("no fencing");
	log_error("an error");
}

static void log_repeats(void)
{
	struct log_rl rl = {0};

	for (int i = 0; i < 10; i++)
		log_rl_msg(&rl, LOG_LVL_WARN, "retry %d", i);
	log_rl_end(&rl);
	log_rl_msg(&rl, LOG_LVL_WARN, "retry again");
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *s = strstr(hay, needle); s; s = strstr(s + 1, needle))
		n++;
	return n;
}

/* HA_LOG_LEVEL: an invalid value is refused; "error" hides warnings but
 * not the UNSAFE ones; repeated lines are limited and counted; under the
 * journal, lines carry their priority. */
static void test_log(void **state)
{
	char out[4096];

	(void)state;
	assert_int_equal(log_child("loud", false, log_some, out, sizeof(out)), 2);
	assert_string_equal(out, "ha-test: HA_LOG_LEVEL wants error, warn, info or debug, not "
				 "'loud'\n");

	assert_int_equal(log_child("error", false, log_some, out, sizeof(out)), 0);
	assert_null(strstr(out, "a warning"));
	assert_non_null(strstr(out, "ha-test["));
	assert_non_null(strstr(out, ": warning: UNSAFE: no fencing\n"));
	assert_non_null(strstr(out, ": error: an error\n"));

	assert_int_equal(log_child(NULL, false, log_repeats, out, sizeof(out)), 0);
	assert_int_equal(count(out, "retry "), (size_t)LOG_RL_BURST + 1);
	assert_non_null(strstr(out, "retry 2\n"));
	assert_null(strstr(out, "retry 3\n"));
	assert_non_null(strstr(out, "7 repeated line(s) were suppressed\n"));
	assert_non_null(strstr(out, "retry again\n"));

	assert_int_equal(log_child("info", true, log_some, out, sizeof(out)), 0);
	assert_int_equal(strncmp(out, "<4>ha-test[", 11), 0);
	assert_non_null(strstr(out, "\n<4>ha-test["));
	assert_non_null(strstr(out, "\n<3>ha-test["));
	assert_int_equal(count(out, "Z ha-test["), 0);
	assert_int_equal(log_child("info", false, log_some, out, sizeof(out)), 0);
	assert_int_equal(count(out, "Z ha-test["), 3);
}

static char *slurp(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = '\0';
	return buf;
}

/* Hooks run in order, one at a time, off the caller's thread, with the
 * event in their environment; a failing or hanging one (killed at its
 * timeout) changes nothing for the next. */
static void test_notify(void **state)
{
	char dir[] = "/tmp/test_notify.XXXXXX", cmd[512], out[300];
	struct notify *n;
	uint64_t t0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(out, sizeof(out), "%s/events", dir);
	snprintf(cmd, sizeof(cmd),
		 "echo \"$HA_SEQ $HA_EVENT $HA_ROLE $HA_DOMAIN $HA_PEER [$HA_EPOCH] $HA_REASON\" >> "
		 "%s; case $HA_EVENT in degraded) exit 3 ;; stuck) sleep 30 ;; esac",
		 out);
	assert_int_equal(notify_start(NULL, 1000, "primary", &n), 0);
	assert_null(n);
	notify_event(n, "ignored", "web", NULL, 1, NULL); /* no hooks: nothing */
	notify_stop(n);

	assert_int_equal(notify_start(cmd, 300, "primary", &n), 0);
	t0 = clk_now_ns();
	notify_event(n, "protected", "kvm:web", "10.0.0.2:7788", NOTIFY_NO_EPOCH, NULL);
	notify_event(n, "degraded", "kvm:web", "10.0.0.2:7788", 41, "the link broke");
	notify_event(n, "stuck", "kvm:web", NULL, 42, "");
	notify_event(n, "reprotected", "kvm:web", "10.0.0.2:7788", NOTIFY_NO_EPOCH, NULL);
	/* Queued, not run: the caller never waits for a hook. */
	assert_true(clk_now_ns() - t0 < 100 * NSEC_PER_MSEC);
	notify_stop(n); /* runs what is queued, the stuck one killed at 300 ms */
	assert_true(clk_now_ns() - t0 < 5 * NSEC_PER_SEC);
	assert_string_equal(slurp(out), "1 protected primary kvm:web 10.0.0.2:7788 [] \n"
					 "2 degraded primary kvm:web 10.0.0.2:7788 [41] the link broke\n"
					 "3 stuck primary kvm:web  [42] \n"
					 "4 reprotected primary kvm:web 10.0.0.2:7788 [] \n");
	unlink(out);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bitmap),
		cmocka_unit_test(test_io_roundtrip_and_eof),
		cmocka_unit_test(test_io_large_writev),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_opt),
		cmocka_unit_test(test_opt_common),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_sleep_until_or),
		cmocka_unit_test(test_tcp_loopback),
		cmocka_unit_test(test_fd_passing),
		cmocka_unit_test(test_clock),
		cmocka_unit_test(test_ctl_request_survives_signal),
		cmocka_unit_test(test_hist),
		cmocka_unit_test(test_log),
		cmocka_unit_test(test_notify),
	};
	return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
