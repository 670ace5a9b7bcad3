/* The secondary's replica and journal: the image changes only at commits,
 * a crash recovers exactly the committed epochs, corruption is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "diskrepl/replica.h"

#define SIZE (64 * 1024)

static char dir[] = "/tmp/test_replica.XXXXXX";
static char img[256], jrn[256];
static uint8_t want[SIZE]; /* what the replica must hold */

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(img, sizeof(img), "%s/replica.img", dir);
	snprintf(jrn, sizeof(jrn), "%s/replica.img.journal", dir);
	memset(want, 0, sizeof(want));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(img);
	unlink(jrn);
	rmdir(dir);
	strcpy(dir, "/tmp/test_replica.XXXXXX");
	return 0;
}

static struct replica *open_ok(void)
{
	struct replica *r;
	char err[512];
	int rc = replica_open(img, NULL, 0, &r, err, sizeof(err));

	if (rc < 0)
		fail_msg("open: %s", err);
	return r;
}

static void config(struct replica *r, bool full, uint64_t sync_bytes, int expect)
{
	struct ckpt_ha_disk_config c = {.flags = full ? CKPT_DISKCFG_FULL : 0, .size = SIZE,
					.sync_bytes = sync_bytes};

	memcpy(c.source_id, "0123456789abcdef", 16);
	assert_int_equal(replica_config(r, &c), expect);
}

static void wr(struct replica *r, uint64_t epoch, uint64_t off, uint32_t len, int fill,
	       uint16_t flags)
{
	struct ckpt_ha_disk_write_hdr h = {.epoch = epoch, .offset = off, .length = len,
					   .flags = flags};
	uint8_t *buf = malloc(len);

	memset(buf, fill, len);
	assert_int_equal(replica_write(r, &h, buf), 0);
	free(buf);
}

static void barrier(struct replica *r, uint64_t epoch, uint64_t writes)
{
	struct ckpt_ha_disk_barrier b = {.epoch = epoch, .writes = writes};

	assert_int_equal(replica_barrier(r, &b), 0);
}

static void expect_image(void)
{
	uint8_t got[SIZE];
	int fd = open(img, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(read(fd, got, SIZE), SIZE);
	close(fd);
	assert_memory_equal(got, want, SIZE);
}

/* A full session: resync data lands at once, epoch writes only at commit. */
static void test_commit_then_failover(void **state)
{
	struct replica *r = open_ok();

	(void)state;
	config(r, true, 8192, 0);
	wr(r, 0, 0, 8192, 0x11, CKPT_DISK_SYNC);
	memset(want, 0x11, 8192);
	wr(r, 0, 4096, 512, 0x22, 0);
	wr(r, 0, 10000, 100, 0x33, CKPT_DISK_FUA);
	expect_image(); /* not yet committed */
	barrier(r, 0, 2);
	assert_int_equal(replica_commit(r, 0), 0);
	assert_int_equal(replica_apply(r), 0);
	memset(want + 4096, 0x22, 512);
	memset(want + 10000, 0x33, 100);
	expect_image();

	wr(r, 1, 0, 4096, 0x44, 0); /* epoch 1 never commits */
	barrier(r, 1, 1);
	assert_int_equal(replica_failover(r), 0);
	expect_image();
	replica_close(r);
}

/* A crash after COMMIT(0) but before applying it, with epoch 1 half sent:
 * the reopen applies epoch 0 and drops epoch 1. */
static void test_recovery_applies_committed_only(void **state)
{
	struct replica *r = open_ok();
	struct replica_stats st;

	(void)state;
	config(r, true, 0, 0);
	wr(r, 0, 100, 200, 0x55, 0);
	wr(r, 0, 150, 10, 0x56, 0); /* overlaps: order matters */
	barrier(r, 0, 2);
	wr(r, 1, 0, 50, 0x66, 0); /* epoch 1 arrives before CHECKPOINT 0 */
	assert_int_equal(replica_commit(r, 0), 0);
	replica_close(r); /* crash: nothing applied */

	r = open_ok();
	memset(want + 100, 0x55, 200);
	memset(want + 150, 0x56, 10);
	expect_image();
	replica_get_stats(r, &st);
	assert_int_equal(st.recovered_writes, 2);
	assert_int_equal(st.dropped_writes, 1);
	assert_true(st.base_complete);
	replica_close(r);

	/* Recovering twice changes nothing. */
	r = open_ok();
	expect_image();
	replica_close(r);
}

/* A torn last entry (a crash mid-append) is dropped, not refused. */
static void test_torn_tail_is_dropped(void **state)
{
	struct replica *r = open_ok();
	struct stat sb;

	(void)state;
	config(r, true, 0, 0);
	wr(r, 0, 0, 1000, 0x77, 0);
	barrier(r, 0, 1);
	assert_int_equal(replica_commit(r, 0), 0);
	wr(r, 1, 2000, 3000, 0x78, 0);
	replica_close(r);
	assert_int_equal(stat(jrn, &sb), 0);
	assert_int_equal(truncate(jrn, sb.st_size - 1500), 0);

	r = open_ok();
	memset(want, 0x77, 1000);
	expect_image();
	replica_close(r);
}

/* A damaged committed entry is refused and the image left alone. */
static void test_corrupt_entry_is_refused(void **state)
{
	struct replica *r = open_ok();
	struct replica *r2;
	char err[512];
	uint8_t b;
	int fd;

	(void)state;
	config(r, true, 0, 0);
	wr(r, 0, 0, 1000, 0x77, 0);
	wr(r, 0, 4096, 1000, 0x79, 0);
	barrier(r, 0, 2);
	assert_int_equal(replica_commit(r, 0), 0);
	replica_close(r);

	/* Flip one octet in the first write's data (header 64 + entry 40). */
	fd = open(jrn, O_RDWR);
	assert_int_equal(pread(fd, &b, 1, 64 + 40 + 10), 1);
	b ^= 0x01;
	assert_int_equal(pwrite(fd, &b, 1, 64 + 40 + 10), 1);
	close(fd);
	assert_int_equal(replica_open(img, NULL, 0, &r2, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "corrupt"));
	expect_image(); /* all zero: nothing applied */

	/* A damaged entry header in the middle is refused too. */
	fd = open(jrn, O_RDWR);
	b ^= 0x01;
	assert_int_equal(pwrite(fd, &b, 1, 64 + 40 + 10), 1);
	assert_int_equal(pread(fd, &b, 1, 64 + 8), 1);
	b ^= 0x80;
	assert_int_equal(pwrite(fd, &b, 1, 64 + 8), 1);
	close(fd);
	assert_int_equal(replica_open(img, NULL, 0, &r2, err, sizeof(err)), -EBADMSG);
	expect_image();
}

/* Incremental resync needs a complete base from the same source. */
static void test_incremental_needs_matching_base(void **state)
{
	struct replica *r = open_ok();
	struct ckpt_ha_disk_config c = {.size = SIZE};

	(void)state;
	config(r, false, 0, -ESTALE); /* nothing there yet */
	config(r, true, 0, 0);
	config(r, false, 0, -ESTALE); /* the full copy never committed */
	config(r, true, 0, 0);
	barrier(r, 0, 0);
	assert_int_equal(replica_commit(r, 0), 0);
	replica_close(r);

	r = open_ok();
	config(r, false, 0, 0);
	memcpy(c.source_id, "another disk....", 16);
	assert_int_equal(replica_config(r, &c), -ESTALE);
	replica_close(r);
}

/* The stream's promises are checked: counts, epochs, bounds. */
static void test_protocol_errors(void **state)
{
	struct replica *r = open_ok();
	struct ckpt_ha_disk_write_hdr h = {.epoch = 0, .offset = SIZE - 10, .length = 20};
	struct ckpt_ha_disk_barrier b = {.epoch = 0, .writes = 5};
	uint8_t buf[20] = {0};

	(void)state;
	assert_int_equal(replica_write(r, &h, buf), -EPROTO); /* before config */
	config(r, true, 100, 0);
	assert_int_equal(replica_write(r, &h, buf), -EPROTO); /* beyond the end */
	h.offset = 0;
	h.epoch = 3;
	assert_int_equal(replica_write(r, &h, buf), -EPROTO); /* wrong epoch */
	h.epoch = 0;
	assert_int_equal(replica_write(r, &h, buf), 0);
	assert_int_equal(replica_barrier(r, &b), -EPROTO); /* 5 writes claimed, 1 came */
	b.writes = 1;
	assert_int_equal(replica_barrier(r, &b), -EPROTO); /* 100 sync octets missing */
	assert_int_equal(replica_commit(r, 0), -EPROTO);    /* no barrier */
	replica_close(r);
}

/* An empty write (a guest may send one) is journalled like any other and
 * does not make the journal look corrupt to the recovery after a crash,
 * nor after a compaction. */
static void test_empty_write_recovers(void **state)
{
	struct replica *r;
	char err[512];

	(void)state;
	assert_int_equal(replica_open(img, NULL, 4096, &r, err, sizeof(err)), 0);
	config(r, true, 0, 0);
	wr(r, 0, 300, 0, 0, 0);
	wr(r, 0, 0, 100, 0x21, 0);
	barrier(r, 0, 2);
	wr(r, 1, 600, 0, 0, 0); /* epoch 1, uncommitted, kept by compaction */
	wr(r, 1, 8000, 100, 0x22, 0);
	assert_int_equal(replica_commit(r, 0), 0);
	replica_close(r); /* crash before applying epoch 0 */

	r = open_ok();
	memset(want, 0x21, 100);
	expect_image();
	config(r, true, 0, 0);
	wr(r, 0, 0, 4000, 0x23, 0);
	barrier(r, 0, 1);
	wr(r, 1, 700, 0, 0, 0);
	wr(r, 1, 5000, 10, 0x24, 0);
	assert_int_equal(replica_commit(r, 0), 0);
	assert_int_equal(replica_apply(r), 0); /* compacts: epoch 1 rewritten */
	barrier(r, 1, 2);
	assert_int_equal(replica_commit(r, 1), 0);
	replica_close(r);

	r = open_ok();
	memset(want, 0x23, 4000);
	memset(want + 5000, 0x24, 10);
	expect_image();
	replica_close(r);
}

/* Compaction keeps what is uncommitted, and recovery still works after it. */
static void test_compaction_keeps_uncommitted(void **state)
{
	struct replica *r;
	struct replica_stats st;
	char err[512];

	(void)state;
	assert_int_equal(replica_open(img, NULL, 4096, &r, err, sizeof(err)), 0);
	config(r, true, 0, 0);
	wr(r, 0, 0, 5000, 0x10, 0);
	barrier(r, 0, 1);
	wr(r, 1, 500, 100, 0x80, 0); /* epoch 1 before CHECKPOINT 0 */
	assert_int_equal(replica_commit(r, 0), 0);
	assert_int_equal(replica_apply(r), 0); /* compacts: only epoch 1 stays */
	replica_get_stats(r, &st);
	assert_int_equal(st.compactions, 2); /* the config's, then this one */
	assert_true(st.journal_bytes < 4096);
	memset(want, 0x10, 5000);
	expect_image();

	barrier(r, 1, 1);
	wr(r, 2, 7000, 100, 0x90, 0);
	assert_int_equal(replica_commit(r, 1), 0);
	assert_int_equal(replica_apply(r), 0);
	memset(want + 500, 0x80, 100);
	expect_image();
	replica_close(r); /* crash with epoch 2 uncommitted */

	r = open_ok();
	expect_image();
	replica_close(r);
}

/* A commit taken back because memory could not commit the epoch is taken
 * back durably: a crash after the rollback (before the failover rewrites
 * the journal) must not recover the epoch as committed. */
static void test_rollback_survives_crash(void **state)
{
	struct replica *r = open_ok();
	struct replica_stats st;

	(void)state;
	config(r, true, 0, 0);
	wr(r, 0, 0, 1000, 0x31, 0);
	barrier(r, 0, 1);
	assert_int_equal(replica_commit(r, 0), 0);
	assert_int_equal(replica_apply(r), 0);
	memset(want, 0x31, 1000);
	wr(r, 1, 500, 1000, 0x32, 0);
	barrier(r, 1, 1);
	wr(r, 2, 3000, 100, 0x33, 0); /* epoch 2 before CHECKPOINT 1 */
	assert_int_equal(replica_commit(r, 1), 0);
	assert_int_equal(replica_rollback(r, 1), 0); /* memory failed to commit 1 */
	replica_get_stats(r, &st);
	assert_int_equal(st.committed, 0);
	replica_close(r); /* crash before the failover */

	r = open_ok();
	expect_image(); /* epoch 0 only */
	replica_get_stats(r, &st);
	assert_int_equal(st.recovered_writes, 1); /* epoch 0 again */
	assert_int_equal(st.dropped_writes, 2);   /* epochs 1 and 2 */
	assert_true(st.base_complete);
	replica_close(r);
}

/* Taking back the first commit of a full copy also takes back the claim
 * that the copy completed: the primary never saw it acknowledged and
 * copies everything again, so the replica must refuse an incremental one. */
static void test_rollback_of_first_commit(void **state)
{
	struct replica *r = open_ok();
	struct replica_stats st;

	(void)state;
	config(r, true, 4096, 0);
	wr(r, 0, 0, 4096, 0x41, CKPT_DISK_SYNC);
	memset(want, 0x41, 4096);
	wr(r, 0, 100, 10, 0x42, 0);
	barrier(r, 0, 1);
	assert_int_equal(replica_commit(r, 0), 0);
	replica_get_stats(r, &st);
	assert_true(st.base_complete);
	assert_int_equal(replica_rollback(r, 0), 0);
	replica_get_stats(r, &st);
	assert_false(st.base_complete);
	assert_int_equal(st.committed, -1);
	replica_close(r);

	r = open_ok();
	expect_image(); /* the resync data, not epoch 0 */
	replica_get_stats(r, &st);
	assert_false(st.base_complete);
	config(r, false, 0, -ESTALE);
	replica_close(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commit_then_failover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recovery_applies_committed_only, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_is_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_entry_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incremental_needs_matching_base, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_protocol_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction_keeps_uncommitted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_write_recovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback_survives_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback_of_first_commit, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
