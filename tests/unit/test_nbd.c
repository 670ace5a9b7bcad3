/* The NBD client against a real server (qemu-nbd) and a broken one. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/io.h"
#include "common/sock.h"
#include "nbd/nbd.h"

static char dir[64], img[128], sock_rw[128], sock_ro[128], target_rw[140], target_ro[140];

static void start_server(const char *sock, const char *pidfile, bool ro)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
		 "qemu-nbd --fork --persistent --pid-file=%s -k %s -f raw -x exp %s %s", pidfile,
		 sock, ro ? "-r" : "--discard=unmap", img);
	assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
	char pid[160];

	snprintf(dir, sizeof(dir), "/tmp/ha-test-nbd.%d", (int)getpid());
	mkdir(dir, 0700);
	snprintf(img, sizeof(img), "%s/disk.img", dir);
	int fd = open(img, O_CREAT | O_RDWR, 0600);
	char block[4096];
	for (int i = 0; i < 1024; i++) {
		memset(block, i & 0xff, sizeof(block));
		assert_int_equal(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
	}
	close(fd);
	snprintf(sock_rw, sizeof(sock_rw), "%s/rw.sock", dir);
	snprintf(sock_ro, sizeof(sock_ro), "%s/ro.sock", dir);
	snprintf(target_rw, sizeof(target_rw), "unix:%s", sock_rw);
	snprintf(target_ro, sizeof(target_ro), "unix:%s", sock_ro);
	snprintf(pid, sizeof(pid), "%s/rw.pid", dir);
	start_server(sock_rw, pid, false);
	snprintf(pid, sizeof(pid), "%s/ro.pid", dir);
	start_server(sock_ro, pid, true);
	return 0;
}

static int teardown(void **state)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "kill $(cat %s/*.pid) 2>/dev/null; rm -rf %s", dir, dir);
	(void)!system(cmd);
	return 0;
}

static void test_round_trip(void **state)
{
	struct nbd_client *c;
	static uint8_t w[65536], r[65536];

	assert_int_equal(nbd_client_connect(target_rw, "exp", 2000, &c), 0);
	assert_int_equal(nbd_client_size(c), 4u << 20);
	assert_false(nbd_client_read_only(c));
	/* What the server's file holds. */
	assert_int_equal(nbd_client_pread(c, r, 4096, 5 * 4096), 0);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(r[i], 5);
	for (size_t i = 0; i < sizeof(w); i++)
		w[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(nbd_client_pwrite(c, w, sizeof(w), 1 << 20, false), 0);
	assert_int_equal(nbd_client_pwrite(c, w, 512, 3 << 20, true), 0);
	assert_int_equal(nbd_client_flush(c), 0);
	assert_int_equal(nbd_client_pread(c, r, sizeof(r), 1 << 20), 0);
	assert_memory_equal(r, w, sizeof(w));
	/* Byte for byte in the backing file too. */
	int fd = open(img, O_RDONLY);
	assert_int_equal(pread(fd, r, sizeof(r), 1 << 20), (ssize_t)sizeof(r));
	assert_memory_equal(r, w, sizeof(w));
	close(fd);
	/* Out of range: refused locally. */
	assert_int_equal(nbd_client_pread(c, r, 4096, (4u << 20) - 100), -EINVAL);
	if (nbd_client_can_trim(c))
		assert_int_equal(nbd_client_trim(c, 2 << 20, 65536), 0);
	nbd_client_close(c);
}

static void test_missing_export_and_read_only(void **state)
{
	struct nbd_client *c;
	uint8_t b[512] = {0};

	assert_int_equal(nbd_client_connect(target_rw, "nosuch", 2000, &c), -ENOENT);
	assert_int_equal(nbd_client_connect(target_ro, "exp", 2000, &c), 0);
	assert_true(nbd_client_read_only(c));
	assert_int_equal(nbd_client_pwrite(c, b, sizeof(b), 0, false), -EROFS);
	assert_int_equal(nbd_client_pread(c, b, sizeof(b), 4096), 0);
	assert_int_equal(b[0], 1);
	nbd_client_close(c);
	assert_true(nbd_client_connect("unix:/nonexistent/sock", "exp", 500, &c) < 0);
}

/* A server that says something else, or hangs up mid-handshake. */
static void *bad_server(void *arg)
{
	int lfd = *(int *)arg;

	for (int i = 0; i < 3; i++) {
		int fd = sock_tcp_accept(lfd);

		if (i == 0)
			io_write_full(fd, "HTTP/1.1 400 Bad Request\r\n\r\n", 28);
		if (i == 1)
			io_write_full(fd, "NBDMAGIC", 8); /* then hangs up */
		close(fd);
	}
	return NULL;
}

static void test_bad_servers(void **state)
{
	char path[160], target[170];
	struct nbd_client *c;
	pthread_t th;
	int lfd;

	snprintf(path, sizeof(path), "%s/bad.sock", dir);
	snprintf(target, sizeof(target), "unix:%s", path);
	lfd = sock_unix_listen(path, 4);
	assert_true(lfd >= 0);
	pthread_create(&th, NULL, bad_server, &lfd);
	assert_int_equal(nbd_client_connect(target, "exp", 1000, &c), -EPROTO);
	assert_int_equal(nbd_client_connect(target, "exp", 1000, &c), -ECONNRESET);
	assert_true(nbd_client_connect(target, "exp", 1000, &c) < 0);
	pthread_join(th, NULL);
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_missing_export_and_read_only),
		cmocka_unit_test(test_bad_servers),
	};

	if (system("command -v qemu-nbd >/dev/null") != 0) {
		printf("SKIP: qemu-nbd (qemu-utils) is not installed\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("nbd", tests, setup, teardown);
}
