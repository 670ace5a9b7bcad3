/* The secondary's replica and journal: the image changes only at commits,
 * a crash recovers exactly the committed epochs, corruption is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/bitmap.h"
#include "diskrepl/dirtylog.h"
#include "diskrepl/replica.h"

#define SIZE (64 * 1024)
#define MAX_CRASH 32

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

static void crash_path(unsigned k, const char *name, char *out, size_t len);

static int teardown(void **state)
{
	(void)state;
	unlink(img);
	unlink(jrn);
	/* Crash copies a failed test left behind. */
	for (unsigned k = 0; k < MAX_CRASH; k++) {
		char p[300];

		crash_path(k, "replica.img", p, sizeof(p));
		unlink(p);
		crash_path(k, "replica.img.journal", p, sizeof(p));
		unlink(p);
		crash_path(k, NULL, p, sizeof(p));
		rmdir(p);
	}
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

/* A bitmap file as the image's ha-diskrepl leaves it: lineage "0123..."
 * (known base or not), chunks 3 and 4 of 4 KiB marked. */
static void make_bitmap(const char *path, bool known)
{
	struct dirtylog_base base;
	struct dirtylog *d;
	struct bitmap dirty;
	struct stat sb;
	char err[256];
	int fd = open(img, O_RDWR | O_CREAT, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SIZE), 0);
	assert_int_equal(fstat(fd, &sb), 0);
	close(fd);
	assert_int_equal(bitmap_init(&dirty, SIZE / 4096), 0);
	if (dirtylog_open(path, SIZE, 4096, &sb, &dirty, &base, &d, err, sizeof(err)) < 0)
		fail_msg("dirtylog_open: %s", err);
	assert_int_equal(dirtylog_set_base(d, (const uint8_t *)"0123456789abcdef", known), 0);
	assert_int_equal(dirtylog_mark(d, 3, 4), 0);
	dirtylog_close(d);
	bitmap_destroy(&dirty);
}

/* Failback: the old primary's image becomes the replica. Its bitmap file
 * gives the lineage and the chunks it may hold beyond it: an incremental
 * copy of that lineage is refused (-EAGAIN) until it says it resends
 * them; the first commit then records the base in the journal. */
static void test_failback_adoption(void **state)
{
	struct ckpt_ha_disk_config c = {.size = SIZE};
	const struct ckpt_ha_disk_need_hdr *h;
	struct replica *r;
	char bm[300];
	uint8_t lineage[16];
	uint32_t len;
	void *body;

	(void)state;
	snprintf(bm, sizeof(bm), "%s/bitmap", dir);
	make_bitmap(bm, false);
	r = open_ok();
	assert_int_equal(replica_adopt(r, bm), 0); /* no base recorded: not adopted */
	assert_non_null(strstr(replica_error(r), "no complete base"));
	assert_int_equal(replica_need(r, 0, &body, &len), -ENOENT);
	replica_close(r);

	make_bitmap(bm, true);
	r = open_ok();
	assert_int_equal(replica_adopt(r, bm), 1);
	assert_non_null(strstr(replica_error(r), "2 chunks of 4 KiB"));
	config(r, false, 0, -EAGAIN);
	assert_int_equal(replica_need(r, 2, &body, &len), 0);
	assert_int_equal(len, sizeof(*h) + 8);
	h = body;
	assert_int_equal(h->disk, 2);
	assert_int_equal(h->chunk, 4096);
	assert_int_equal(h->size, SIZE);
	assert_int_equal(h->nchunks, SIZE / 4096);
	assert_memory_equal(h->source_id, "0123456789abcdef", 16);
	assert_int_equal(*(const uint64_t *)(h + 1), (1u << 3) | (1u << 4));
	free(body);
	/* Another lineage is no base at all; this one, resent, is. */
	memcpy(c.source_id, "another disk....", 16);
	assert_int_equal(replica_config(r, &c), -ESTALE);
	memcpy(c.source_id, "0123456789abcdef", 16);
	c.flags = CKPT_DISKCFG_NEED_MET;
	assert_int_equal(replica_config(r, &c), 0);
	assert_false(replica_lineage(r, lineage)); /* not before it commits */
	barrier(r, 0, 0);
	assert_int_equal(replica_commit(r, 0), 0);
	assert_true(replica_lineage(r, lineage));
	assert_memory_equal(lineage, "0123456789abcdef", 16);
	replica_close(r);

	/* The journal says it now: the file is not read again, and an
	 * incremental copy needs nothing more. */
	r = open_ok();
	assert_int_equal(replica_adopt(r, bm), 0);
	assert_non_null(strstr(replica_error(r), "complete replica already"));
	config(r, false, 0, 0);
	replica_close(r);
	unlink(bm);
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

/* Crash points. While armed, every call that changes a file or makes it
 * durable (pwrite, ftruncate, fdatasync, fsync, rename) first copies the
 * image and the journal as they are: the files a crash just before that
 * call leaves (each step of the code under test is synced before the next
 * one, so a crash that loses unsynced data leaves one of these states
 * too). The calls themselves go through to the C library unchanged. */
static int crash_armed;
static unsigned ncrash;
/* Fault injection: the fail_at-th of those calls (1-based, 0 none) fails
 * with EIO instead, without touching anything; ncalls counts them. */
static unsigned fail_at, ncalls;

static void copy_file(const char *from, const char *to)
{
	uint8_t buf[65536];
	int in = open(from, O_RDONLY), out;
	ssize_t got;

	if (in < 0)
		return; /* not created yet */
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (out < 0)
		fail_msg("cannot create %s", to);
	while ((got = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)got) != got)
			fail_msg("cannot copy %s", from);
	close(in);
	close(out);
}

static void crash_path(unsigned k, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/crash%u%s%s", dir, k, name ? "/" : "", name ? name : "");
}

static void snapshot(void)
{
	char d[300], f[300];

	if (!crash_armed)
		return;
	crash_armed = 0;
	if (ncrash == MAX_CRASH)
		fail_msg("more than %d crash points", MAX_CRASH);
	crash_path(ncrash, NULL, d, sizeof(d));
	if (mkdir(d, 0700) < 0)
		fail_msg("mkdir %s", d);
	crash_path(ncrash, "replica.img", f, sizeof(f));
	copy_file(img, f);
	crash_path(ncrash, "replica.img.journal", f, sizeof(f));
	copy_file(jrn, f);
	ncrash++;
	crash_armed = 1;
}

#define REAL(name, type) ((type)dlsym(RTLD_NEXT, name))

/* Returns true when this call is to fail. */
static bool injected(void)
{
	if (!fail_at || ++ncalls != fail_at)
		return false;
	errno = EIO;
	return true;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	snapshot();
	if (injected())
		return -1;
	return REAL("pwrite", ssize_t (*)(int, const void *, size_t, off_t))(fd, buf, n, off);
}

int ftruncate(int fd, off_t len)
{
	snapshot();
	if (injected())
		return -1;
	return REAL("ftruncate", int (*)(int, off_t))(fd, len);
}

int fdatasync(int fd)
{
	snapshot();
	if (injected())
		return -1;
	return REAL("fdatasync", int (*)(int))(fd);
}

int fsync(int fd)
{
	snapshot();
	if (injected())
		return -1;
	return REAL("fsync", int (*)(int))(fd);
}

int rename(const char *from, const char *to)
{
	snapshot();
	if (injected())
		return -1;
	return REAL("rename", int (*)(const char *, const char *))(from, to);
}

static void crash_arm(void)
{
	ncrash = 0;
	crash_armed = 1;
}

/* Stops recording; the last state is the one after the call returned. */
static void crash_disarm(void)
{
	snapshot();
	crash_armed = 0;
}

/* Recovers every recorded crash state and checks that each gives exactly
 * the image before (0) or after (1) the operation, never a mix and never a
 * refusal; that the states go from `first` to the other at most once; and
 * that the state after the call gives `last`, with the complete-copy mark
 * base. Removes the copies. */
static void crash_check(const uint8_t *before, const uint8_t *after, int first, int last,
			bool base)
{
	int prev = first;

	assert_true(ncrash >= 2);
	for (unsigned k = 0; k < ncrash; k++) {
		char ci[300], cj[300], cd[300], err[512];
		static uint8_t got[SIZE];
		struct replica *r;
		struct replica_stats st;
		int fd, now = -1;

		crash_path(k, "replica.img", ci, sizeof(ci));
		crash_path(k, "replica.img.journal", cj, sizeof(cj));
		crash_path(k, NULL, cd, sizeof(cd));
		if (replica_open(ci, cj, 0, &r, err, sizeof(err)) < 0)
			fail_msg("crash point %u: the reopen failed: %s", k, err);
		replica_get_stats(r, &st);
		replica_close(r);
		fd = open(ci, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(read(fd, got, SIZE), SIZE);
		close(fd);
		if (!memcmp(got, before, SIZE))
			now = 0;
		else if (!memcmp(got, after, SIZE))
			now = 1;
		else
			fail_msg("crash point %u of %u: the image is neither the state before nor "
				 "the one after",
				 k, ncrash);
		if (k == 0 && now != first)
			fail_msg("crash point 0: state %d, expected %d", now, first);
		if (now != prev && prev != first)
			fail_msg("crash point %u: back to state %d", k, now);
		if (k == ncrash - 1) {
			if (now != last)
				fail_msg("after the call returned: state %d, expected %d", now,
					 last);
			assert_int_equal(st.base_complete, base);
		}
		prev = now;
		unlink(ci);
		unlink(cj);
		rmdir(cd);
	}
}

static uint8_t before[SIZE], after[SIZE];

/* A crash at every point of a commit, then of its rollback: the epoch is
 * recovered whole or not at all, and once replica_commit returned it is
 * recovered, once replica_rollback returned never again. Three shapes:
 * the first commit of a full copy (the rollback also clears the
 * complete-copy mark in the header), a later commit (the rollback only
 * cuts the COMMIT off), and a later commit with an entry behind its
 * COMMIT (the rollback rewrites the journal). */
static void rollback_crash_points(int shape)
{
	struct replica *r = open_ok();

	config(r, true, shape == 0 ? 4096 : 0, 0);
	if (shape == 0) {
		wr(r, 0, 0, 4096, 0x51, CKPT_DISK_SYNC);
		memset(want, 0x51, 4096);
	} else {
		wr(r, 0, 0, 2000, 0x52, 0);
		barrier(r, 0, 1);
		assert_int_equal(replica_commit(r, 0), 0);
		assert_int_equal(replica_apply(r), 0);
		memset(want, 0x52, 2000);
	}
	uint64_t n = shape == 0 ? 0 : 1;

	memcpy(before, want, SIZE);
	wr(r, n, 1000, 3000, 0x53, 0);
	wr(r, n, 8000, 0, 0, CKPT_DISK_ZERO);
	wr(r, n, 1500, 100, 0x54, 0);
	barrier(r, n, 3);
	memcpy(after, want, SIZE);
	memset(after + 1000, 0x53, 3000);
	memset(after + 1500, 0x54, 100);

	crash_arm();
	assert_int_equal(replica_commit(r, n), 0);
	crash_disarm();
	crash_check(before, after, 0, 1, true);

	if (shape == 2)
		wr(r, n + 1, 20000, 100, 0x55, 0); /* an entry behind COMMIT(n) */
	crash_arm();
	assert_int_equal(replica_rollback(r, n), 0);
	crash_disarm();
	crash_check(before, after, 1, 0, shape != 0);
	replica_close(r);

	r = open_ok();
	expect_image(); /* the replica itself too */
	replica_close(r);
}

static void test_rollback_crash_points_first_commit(void **state)
{
	(void)state;
	rollback_crash_points(0);
}

static void test_rollback_crash_points(void **state)
{
	(void)state;
	rollback_crash_points(1);
}

static void test_rollback_crash_points_entry_after(void **state)
{
	(void)state;
	rollback_crash_points(2);
}

/* The rollback refuses an epoch already written to the image, and ignores
 * one that is not committed; the session goes on after a rollback. */
static void test_rollback_rules(void **state)
{
	struct replica *r = open_ok();
	struct replica_stats st;

	(void)state;
	assert_int_equal(replica_rollback(r, UINT64_MAX), 0); /* nothing committed */
	config(r, true, 0, 0);
	wr(r, 0, 0, 100, 0x61, 0);
	barrier(r, 0, 1);
	assert_int_equal(replica_rollback(r, 0), 0); /* not committed: nothing */
	assert_int_equal(replica_commit(r, 0), 0);
	assert_int_equal(replica_commit(r, 0), -EPROTO); /* epochs go forward */
	assert_int_equal(replica_apply(r), 0);
	memset(want, 0x61, 100);
	assert_int_equal(replica_rollback(r, 0), -EBUSY);
	assert_non_null(strstr(replica_error(r), "already written"));

	wr(r, 1, 200, 100, 0x62, 0);
	barrier(r, 1, 1);
	assert_int_equal(replica_commit(r, 1), 0);
	assert_int_equal(replica_rollback(r, 1), 0);
	replica_get_stats(r, &st);
	assert_int_equal(st.committed, 0);
	assert_int_equal(st.commits, 1);
	assert_int_equal(st.committed_writes, 1);
	assert_int_equal(replica_apply(r), 0);
	expect_image(); /* epoch 1 stays out */
	assert_int_equal(replica_commit(r, 1), 0); /* committed after all */
	assert_int_equal(replica_apply(r), 0);
	memset(want + 200, 0x62, 100);
	expect_image();

	/* Only the last commit, once: the one before stays. */
	wr(r, 2, 300, 100, 0x63, 0);
	barrier(r, 2, 1);
	assert_int_equal(replica_commit(r, 2), 0);
	assert_int_equal(replica_rollback(r, 2), 0);
	assert_int_equal(replica_rollback(r, 2), 0); /* no longer committed */
	assert_int_equal(replica_rollback(r, 1), -EBUSY); /* in the image */
	replica_close(r);

	r = open_ok();
	expect_image();
	config(r, true, 0, 0);
	wr(r, 0, 0, 100, 0x64, 0);
	barrier(r, 0, 1);
	assert_int_equal(replica_commit(r, 0), 0);
	barrier(r, 1, 0);
	assert_int_equal(replica_commit(r, 1), 0);
	assert_int_equal(replica_rollback(r, 1), 0);
	assert_int_equal(replica_rollback(r, 0), -EINVAL);
	replica_close(r);
	r = open_ok(); /* epoch 0 stays committed */
	memset(want, 0x64, 100);
	expect_image();
	replica_close(r);
}

/* Sets up the first commit of a full copy as rollback_crash_points' shape
 * 0 does, fresh files each time; before: the image without epoch 0. */
static struct replica *first_epoch(void)
{
	struct replica *r;

	unlink(img);
	unlink(jrn);
	memset(want, 0, SIZE);
	r = open_ok();
	config(r, true, 4096, 0);
	wr(r, 0, 0, 4096, 0x71, CKPT_DISK_SYNC);
	memset(want, 0x71, 4096);
	wr(r, 0, 1000, 3000, 0x72, 0);
	barrier(r, 0, 1);
	return r;
}

/* An I/O error at any step of a commit leaves the epoch uncommitted, in
 * memory and after a restart: the disk part of its ACK was never sent.
 * Retried, the commit then succeeds and the journal stays readable. */
static void test_commit_error_is_all_or_nothing(void **state)
{
	unsigned k;

	(void)state;
	for (k = 1;; k++) {
		for (int retry = 0; retry < 2; retry++) {
			struct replica *r = first_epoch();
			struct replica_stats st;
			int rc;

			ncalls = 0;
			fail_at = k;
			rc = replica_commit(r, 0);
			fail_at = 0;
			if (ncalls < k) { /* every step passed: done */
				assert_int_equal(rc, 0);
				replica_close(r);
				goto done;
			}
			assert_int_equal(rc, -EIO);
			replica_get_stats(r, &st);
			assert_int_equal(st.committed, -1);
			assert_int_equal(st.commits, 0);
			if (retry) {
				assert_int_equal(replica_commit(r, 0), 0);
				wr(r, 1, 30000, 10, 0x73, 0);
				barrier(r, 1, 1);
				assert_int_equal(replica_commit(r, 1), 0);
				memset(want + 1000, 0x72, 3000);
				memset(want + 30000, 0x73, 10);
			}
			replica_close(r);
			r = open_ok();
			expect_image(); /* epoch 0 only if it was retried */
			replica_get_stats(r, &st);
			assert_int_equal(st.base_complete, retry);
			replica_close(r);
		}
	}
done:
	assert_true(k > 4); /* image sync, COMMIT, its sync, header */
}

/* An I/O error while taking a commit back is reported with what to do; the
 * epoch is uncommitted in memory, and the failover then leaves the
 * replica without it, after a restart too. */
static void test_rollback_error_then_failover(void **state)
{
	unsigned k;

	(void)state;
	for (k = 1;; k++) {
		struct replica *r = first_epoch();
		struct replica_stats st;
		int rc;

		assert_int_equal(replica_commit(r, 0), 0);
		ncalls = 0;
		fail_at = k;
		rc = replica_rollback(r, 0);
		fail_at = 0;
		if (ncalls < k) {
			assert_int_equal(rc, 0);
			replica_close(r);
			break;
		}
		assert_int_equal(rc, -EIO);
		assert_non_null(strstr(replica_error(r), "could not be taken back"));
		replica_get_stats(r, &st);
		assert_int_equal(st.committed, -1);
		assert_int_equal(replica_failover(r), 0);
		expect_image();
		replica_close(r);
		r = open_ok();
		expect_image();
		replica_close(r);
	}
	assert_true(k > 3); /* header, its sync, truncate, its sync */
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
		cmocka_unit_test_setup_teardown(test_failback_adoption, setup, teardown),
		cmocka_unit_test_setup_teardown(test_protocol_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction_keeps_uncommitted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_write_recovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback_survives_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback_of_first_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback_crash_points_first_commit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rollback_crash_points, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback_crash_points_entry_after, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rollback_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_error_is_all_or_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rollback_error_then_failover, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
