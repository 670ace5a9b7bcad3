/* Disk replication end to end without a VM: a real NBD client (qemu-io)
 * writes through a real ha-diskrepl; the checkpoint device (diskrepl/dev.c)
 * attaches to it and its records feed a real replica and journal, while
 * this test closes epochs the way ha-protect does (barrier, flush, commit
 * after the replica is durable). The test keeps its own log of the writes
 * and checks the replica byte for byte against the image it computes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/stream_format.h"
#include "common/clock.h"
#include "diskrepl/dev.h"
#include "diskrepl/replica.h"

#define SIZE (4u << 20)
#define NWRITES 300

static char dir[] = "/tmp/test_diskrepl.XXXXXX";
static char run[256], img[256], rep[256], nbd[300], attach[300], bin[PATH_MAX];
static char bitmap[300]; /* ha-diskrepl --bitmap; "" none */
static uint8_t initial[SIZE];

/* The test's own log of what qemu-io is told to write, in order. */
struct wlog {
	uint64_t off;
	uint32_t len;
	int pattern; /* 0: write zeroes */
};
static struct wlog wl[NWRITES];

/* Secondary side: the replica the sink feeds. */
struct secondary {
	pthread_mutex_t mu; /* the forwarder thread and the test both use r */
	struct replica *r;
	int failed;
	char why[512];
};

static int sink_record(void *ctx, uint32_t type, const struct iovec *iov, int iovcnt)
{
	struct secondary *s = ctx;
	const uint8_t *b = iov[0].iov_base;
	int rc;

	assert_int_equal(iovcnt, 1);
	pthread_mutex_lock(&s->mu);
	rc = replica_take(s->r, type, b);
	if (rc < 0 && !s->failed) {
		s->failed = rc;
		snprintf(s->why, sizeof(s->why), "%s", replica_error(s->r));
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static pid_t start_diskrepl(void)
{
	char path[PATH_MAX + 16];
	pid_t pid;

	snprintf(path, sizeof(path), "%s/ha-diskrepl", bin);
	pid = fork();
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		setenv("HA_RUN_DIR", run, 1);
		dup2(fd, 1);
		if (bitmap[0])
			execl(path, "ha-diskrepl", "--name", "d0", "--image", img, "--chunk", "64",
			      "--bitmap", bitmap, NULL);
		else
			execl(path, "ha-diskrepl", "--name", "d0", "--image", img, "--chunk", "64",
			      NULL);
		_exit(127);
	}
	for (int i = 0; i < 300; i++) {
		if (access(attach, F_OK) == 0 && access(nbd, F_OK) == 0)
			return pid;
		usleep(10000);
	}
	fail_msg("ha-diskrepl did not start (%s)", path);
	return -1;
}

static void stop(pid_t pid, int sig)
{
	kill(pid, sig);
	waitpid(pid, NULL, 0);
}

/* Starts qemu-io on the export with the writes [from, to) of the log; its
 * stdout (one "wrote" line per completed write) comes back on *out. */
static pid_t start_writer(int from, int to, int *out)
{
	char url[400], (*cmds)[64] = calloc(NWRITES, 64);
	const char *argv[4 * NWRITES + 8];
	int argc = 0, p[2];
	pid_t pid;

	snprintf(url, sizeof(url), "nbd+unix:///d0?socket=%s", nbd);
	argv[argc++] = "qemu-io";
	argv[argc++] = "-f";
	argv[argc++] = "raw";
	for (int i = from; i < to; i++) {
		if (wl[i].pattern)
			snprintf(cmds[i], 64, "write -P %d %llu %u", wl[i].pattern,
				 (unsigned long long)wl[i].off, wl[i].len);
		else
			snprintf(cmds[i], 64, "write -z %llu %u", (unsigned long long)wl[i].off,
				 wl[i].len);
		argv[argc++] = "-c";
		argv[argc++] = cmds[i];
		argv[argc++] = "-c";
		argv[argc++] = "sleep 1"; /* pace the writes across many epochs */
	}
	argv[argc++] = url;
	argv[argc] = NULL;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		execvp("qemu-io", (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	free(cmds);
	*out = p[0];
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	return pid;
}

/* Counts the writes qemu-io has reported complete so far: it prints two
 * lines after each one ("wrote ..." and its timing). */
static int seen(int fd, int *count)
{
	static int lines;
	char buf[4096];
	ssize_t n;

	if (*count == 0)
		lines = 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	*count = lines / 2;
	return n == 0 ? 1 : 0; /* 1: qemu-io finished */
}

static void make_log(unsigned seed)
{
	srandom(seed);
	for (int i = 0; i < NWRITES; i++) {
		wl[i].len = 512u * (uint32_t)(1 + random() % 128); /* up to 64 KiB */
		wl[i].off = 512u * (uint64_t)(random() % ((SIZE - wl[i].len) / 512));
		wl[i].pattern = random() % 10 == 0 ? 0 : 1 + i % 250;
	}
}

/* The image after the first n writes of the log. */
static void expected(uint8_t *out, int n)
{
	memcpy(out, initial, SIZE);
	for (int i = 0; i < n; i++)
		memset(out + wl[i].off, wl[i].pattern, wl[i].len);
}

static void read_file(const char *path, uint8_t *buf)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, SIZE), SIZE);
	close(fd);
}

static int setup(void **state)
{
	int fd;

	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(run, sizeof(run), "%s/run", dir);
	snprintf(img, sizeof(img), "%s/disk.img", dir);
	snprintf(rep, sizeof(rep), "%s/replica.img", dir);
	snprintf(nbd, sizeof(nbd), "%s/ha-diskrepl/d0.nbd", run);
	snprintf(attach, sizeof(attach), "%s/ha-diskrepl/d0.attach", run);
	setenv("HA_RUN_DIR", run, 1);
	srandom(42);
	for (size_t i = 0; i < SIZE; i++)
		initial[i] = i < SIZE / 2 ? (uint8_t)random() : 0; /* half data, half zero */
	fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, initial, SIZE) != SIZE)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return -1;
	strcpy(dir, "/tmp/test_diskrepl.XXXXXX");
	bitmap[0] = '\0';
	return 0;
}

/* Closes epoch e the way ha-protect and ha-receive do. Returns the count
 * of writes the test had seen completed before the barrier. */
static void close_epoch(struct ckpt_dev *dev, struct secondary *sec, uint64_t e)
{
	int rc;

	assert_int_equal(dev->ops->postsuspend(dev, e), 0);
	assert_int_equal(dev->ops->flush(dev, e), 0);
	pthread_mutex_lock(&sec->mu);
	if (sec->failed)
		fail_msg("replica: %s", sec->why);
	rc = replica_commit(sec->r, e);
	if (rc == 0)
		rc = replica_apply(sec->r);
	if (rc < 0)
		fail_msg("replica: %s", replica_error(sec->r));
	pthread_mutex_unlock(&sec->mu);
	assert_int_equal(dev->ops->commit(dev, e), 0);
}

static struct ckpt_dev *attach_dev(struct secondary *sec, bool full)
{
	struct ckpt_sink sink = {.record = sink_record, .ctx = sec, .resync_full = full};
	struct ckpt_dev *dev;

	assert_int_equal(diskrepl_dev_create(attach, 0, &dev), 0);
	assert_int_equal(dev->ops->connect(dev, &sink), 0);
	assert_int_equal(dev->ops->setup(dev), 0);
	return dev;
}

/* Ends the protection and fails over: the replica and the primary's own
 * image must both equal the initial image plus the first n writes. */
static void end_and_compare(struct ckpt_dev *dev, struct secondary *sec, pid_t drl, int n)
{
	static uint8_t want[SIZE], got[SIZE];

	dev->ops->teardown(dev);
	dev->ops->destroy(dev);
	stop(drl, SIGTERM);
	assert_int_equal(replica_failover(sec->r), 0);
	replica_close(sec->r);
	expected(want, n);
	read_file(rep, got);
	assert_memory_equal(got, want, SIZE);
	read_file(img, got);
	assert_memory_equal(got, want, SIZE); /* the primary's own image agrees */
}

/* Many epochs under a steady stream of writes; the primary dies in the
 * middle of an epoch; the replica is exactly the committed prefix, and it
 * holds every write that completed before the last acknowledged barrier. */
static void test_primary_dies_mid_epoch(void **state)
{
	static uint8_t want[SIZE], got[SIZE];
	struct secondary sec = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct replica_stats st;
	struct ckpt_dev *dev;
	char err[512];
	pid_t drl, wr;
	int out, done = 0, lower = 0;
	uint64_t e = 0, writes_committed = 0;

	(void)state;
	make_log(1);
	drl = start_diskrepl();
	assert_int_equal(replica_open(rep, NULL, 256 << 10, &sec.r, err, sizeof(err)), 0);
	dev = attach_dev(&sec, false);
	replica_get_stats(sec.r, &st);
	assert_int_equal(st.sync_bytes, SIZE); /* the first protection copies everything */

	wr = start_writer(0, NWRITES, &out);
	for (;;) {
		int before;

		usleep(3000);
		seen(out, &done);
		before = done;
		if (done > NWRITES / 2)
			break; /* the primary dies with epoch e open */
		close_epoch(dev, &sec, e);
		pthread_mutex_lock(&sec.mu);
		replica_get_stats(sec.r, &st);
		pthread_mutex_unlock(&sec.mu);
		writes_committed = st.committed_writes;
		lower = before; /* completed before BARRIER(e): must be in the replica */
		e++;
	}
	stop(drl, SIGKILL);
	waitpid(wr, NULL, 0);
	dev->ops->teardown(dev);
	dev->ops->destroy(dev);
	assert_true(e >= 5);

	/* Failover: the replica is the committed state. */
	assert_int_equal(replica_failover(sec.r), 0);
	replica_close(sec.r);
	read_file(rep, got);
	expected(want, (int)writes_committed);
	assert_memory_equal(got, want, SIZE);
	assert_true((int)writes_committed >= lower);
	printf("# %llu epochs, %d writes seen complete before the last barrier, %llu committed\n",
	       (unsigned long long)e, lower, (unsigned long long)writes_committed);
}

/* The secondary crashes between epochs (a COMMIT durable but not applied,
 * the next epoch half received): reopening recovers exactly the committed
 * prefix. */
static void test_secondary_crash_recovers_journal(void **state)
{
	static uint8_t want[SIZE], got[SIZE];
	struct secondary sec = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct replica_stats st;
	struct ckpt_dev *dev;
	char err[512];
	pid_t drl, wr;
	int out, done = 0;
	uint64_t e = 0;

	(void)state;
	make_log(2);
	drl = start_diskrepl();
	assert_int_equal(replica_open(rep, NULL, 0, &sec.r, err, sizeof(err)), 0);
	dev = attach_dev(&sec, false);
	wr = start_writer(0, NWRITES, &out);
	while (!seen(out, &done) && done < NWRITES / 3) {
		usleep(3000);
		close_epoch(dev, &sec, e++);
	}
	/* One more epoch made durable but never applied, then the crash. */
	assert_int_equal(dev->ops->postsuspend(dev, e), 0);
	assert_int_equal(dev->ops->flush(dev, e), 0);
	pthread_mutex_lock(&sec.mu);
	assert_int_equal(replica_commit(sec.r, e), 0);
	replica_get_stats(sec.r, &st);
	pthread_mutex_unlock(&sec.mu);
	uint64_t committed = st.committed_writes;

	usleep(5000); /* writes of epoch e+1 reach the journal */
	dev->ops->teardown(dev); /* the connection drops with the crash */
	dev->ops->destroy(dev);
	replica_close(sec.r);
	stop(wr, SIGKILL);
	stop(drl, SIGTERM);

	assert_int_equal(replica_open(rep, NULL, 0, &sec.r, err, sizeof(err)), 0);
	replica_get_stats(sec.r, &st);
	replica_close(sec.r);
	read_file(rep, got);
	expected(want, (int)committed);
	assert_memory_equal(got, want, SIZE);
	printf("# recovered through epoch %llu: %llu writes applied, %llu dropped\n",
	       (unsigned long long)e, (unsigned long long)st.recovered_writes,
	       (unsigned long long)st.dropped_writes);
}

/* A detach (secondary lost) while writes go on, then re-protection: only the
 * changed chunks are sent, and the replica ends equal to the primary. */
static void test_incremental_resync(void **state)
{
	struct secondary sec = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct replica_stats st;
	struct ckpt_dev *dev;
	char err[512];
	pid_t drl, wr;
	int out;
	uint64_t e = 0;

	(void)state;
	make_log(3);
	drl = start_diskrepl();
	assert_int_equal(replica_open(rep, NULL, 0, &sec.r, err, sizeof(err)), 0);
	dev = attach_dev(&sec, false);
	close_epoch(dev, &sec, e++);
	dev->ops->teardown(dev); /* degraded from here */
	wr = start_writer(0, 40, &out);
	waitpid(wr, NULL, 0);
	close(out);

	dev->ops->destroy(dev);
	replica_close(sec.r);
	assert_int_equal(replica_open(rep, NULL, 0, &sec.r, err, sizeof(err)), 0);
	sec.failed = 0;
	dev = attach_dev(&sec, false);
	replica_get_stats(sec.r, &st);
	assert_true(st.sync_bytes > 0);
	assert_true(st.sync_bytes <= 40u * 2 * 65536); /* at most 2 chunks per write */
	printf("# incremental resync: %llu KiB of %u\n", (unsigned long long)(st.sync_bytes >> 10),
	       SIZE >> 10);
	e = 0;
	close_epoch(dev, &sec, e++);
	wr = start_writer(40, 80, &out);
	waitpid(wr, NULL, 0);
	close(out);
	close_epoch(dev, &sec, e++);
	end_and_compare(dev, &sec, drl, 80);
}

static void write_range(int from, int to)
{
	int out;
	pid_t wr = start_writer(from, to, &out);

	waitpid(wr, NULL, 0);
	close(out);
}

/* ha-diskrepl --bitmap: killed with writes mirrored but not committed, then
 * restarted, it resynchronises only the chunks written since the last
 * commit (those and the ones written while it was detached), and the
 * replica ends up exact. A damaged bitmap file means a full copy. */
static void test_bitmap_survives_restart(void **state)
{
	struct secondary sec = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct replica_stats st;
	struct ckpt_dev *dev;
	char err[512];
	pid_t drl;
	int fd;

	(void)state;
	make_log(7);
	for (int i = 0; i < 60; i++) /* the writes stay in the first MiB */
		wl[i].off %= (1u << 20) - wl[i].len;
	snprintf(bitmap, sizeof(bitmap), "%s/d0.bitmap", dir);
	drl = start_diskrepl();
	assert_int_equal(replica_open(rep, NULL, 0, &sec.r, err, sizeof(err)), 0);
	dev = attach_dev(&sec, false);
	replica_get_stats(sec.r, &st);
	assert_int_equal(st.sync_bytes, SIZE); /* no base yet: everything */
	close_epoch(dev, &sec, 0);
	write_range(0, 20);
	close_epoch(dev, &sec, 1); /* 0..20 committed */
	write_range(20, 40);	   /* mirrored, never committed */
	stop(drl, SIGKILL);
	/* A killed ha-diskrepl leaves its sockets: the restart below must be
	 * awaited, not found at once. */
	unlink(attach);
	unlink(nbd);
	dev->ops->teardown(dev);
	dev->ops->destroy(dev);

	drl = start_diskrepl();
	write_range(40, 60); /* while detached */
	replica_close(sec.r);
	assert_int_equal(replica_open(rep, NULL, 0, &sec.r, err, sizeof(err)), 0);
	sec.failed = 0;
	dev = attach_dev(&sec, false);
	replica_get_stats(sec.r, &st);
	printf("# after a kill and a restart with --bitmap: %llu KiB resynchronised; the full "
	       "copy without it: %u KiB (%.3fx)\n",
	       (unsigned long long)(st.sync_bytes >> 10), SIZE >> 10,
	       (double)st.sync_bytes / SIZE);
	assert_true(st.sync_bytes > 0);
	/* Where the writes went. The file may keep chunks the replica has (it
	 * is cleared at most every 10 s), never fewer than it lacks. */
	assert_true(st.sync_bytes <= (1u << 20) + 65536);
	close_epoch(dev, &sec, 0);
	end_and_compare(dev, &sec, drl, 60);

	/* A damaged header: no base is believed. */
	fd = open(bitmap, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "XX", 2, 40), 2);
	close(fd);
	drl = start_diskrepl();
	assert_int_equal(replica_open(rep, NULL, 0, &sec.r, err, sizeof(err)), 0);
	sec.failed = 0;
	dev = attach_dev(&sec, false);
	replica_get_stats(sec.r, &st);
	assert_int_equal(st.sync_bytes, SIZE);
	close_epoch(dev, &sec, 0);
	dev->ops->teardown(dev);
	dev->ops->destroy(dev);
	stop(drl, SIGTERM);
	replica_close(sec.r);
}

/* The secondary's disk fills up: the replica reports ENOSPC, and what was
 * committed before is intact. */
static void test_secondary_disk_full(void **state)
{
	static uint8_t want[SIZE], got[SIZE];
	struct secondary sec = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct ckpt_dev *dev;
	char err[512], small[300], jrn[320];
	pid_t drl, wr;
	int out;

	(void)state;
	if (geteuid() != 0) {
		printf("SKIP: mounting a small tmpfs needs root\n");
		skip();
	}
	make_log(4);
	snprintf(small, sizeof(small), "%s/small", dir);
	snprintf(jrn, sizeof(jrn), "%s/journal", small);
	mkdir(small, 0700);
	if (mount("tmpfs", small, "tmpfs", 0, "size=1m") < 0) {
		printf("SKIP: cannot mount a tmpfs: %s\n", strerror(errno));
		skip();
	}
	drl = start_diskrepl();
	assert_int_equal(replica_open(rep, jrn, 0, &sec.r, err, sizeof(err)), 0);
	dev = attach_dev(&sec, false);
	close_epoch(dev, &sec, 0);
	/* 300 writes of up to 64 KiB into a 1 MiB journal. */
	wr = start_writer(0, NWRITES, &out);
	for (int i = 0; i < 1000 && !sec.failed; i++)
		usleep(10000);
	assert_int_equal(sec.failed, -ENOSPC);
	assert_non_null(strstr(sec.why, "disk is full"));
	/* ha-protect degrades: the detach lets the guest's writes go on. */
	dev->ops->teardown(dev);
	dev->ops->destroy(dev);
	waitpid(wr, NULL, 0);
	close(out);
	stop(drl, SIGTERM);
	assert_int_equal(replica_failover(sec.r), 0);
	replica_close(sec.r);
	umount(small);
	read_file(rep, got);
	expected(want, 0); /* epoch 0 held no writes: the initial image */
	assert_memory_equal(got, want, SIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_primary_dies_mid_epoch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secondary_crash_recovers_journal, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_incremental_resync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bitmap_survives_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secondary_disk_full, setup, teardown),
	};
	ssize_t n = readlink("/proc/self/exe", bin, sizeof(bin) - 1);

	if (n < 0)
		return 1;
	bin[n] = '\0';
	*strrchr(bin, '/') = '\0';
	strcat(bin, "/../bin");
	if (system("command -v qemu-io >/dev/null") != 0) {
		printf("SKIP: qemu-io (qemu-utils) is not installed\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
