/* The secondary's checkpoint buffer: a checkpoint applies all or nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/codec.h"
#include "secondary/ckbuf.h"

#define NPAGES 32

static uint8_t image[NPAGES][CKPT_PAGE_SIZE];
static uint8_t sender[NPAGES][CKPT_PAGE_SIZE];

static uint8_t *page_of(void *ctx, uint64_t pfn)
{
	return pfn < NPAGES ? image[pfn] : NULL;
}

/* Encodes pfns of the sender into a HA_PAGE_DATA_Z record held in *mem. */
static struct ckpt_record zrecord(struct ckpt_encoder *e, const uint64_t *pfns, uint32_t n,
				  uint8_t **mem)
{
	const void *pp[NPAGES];
	struct ckpt_zbatch zb;
	struct ckpt_record rec = {.type = CKPT_REC_HA_PAGE_DATA_Z};
	uint8_t *p;

	for (uint32_t i = 0; i < n; i++)
		pp[i] = sender[pfns[i] % NPAGES];
	assert_int_equal(ckpt_encoder_encode(e, pfns, pp, n, &zb), 0);
	p = *mem = malloc(zb.bytes);
	for (int i = 0; i < zb.iovcnt; i++) {
		memcpy(p, zb.iov[i].iov_base, zb.iov[i].iov_len);
		p += zb.iov[i].iov_len;
	}
	rec.length = (uint32_t)zb.bytes;
	rec.body = *mem;
	rec.pages = n;
	return rec;
}

struct fixture {
	struct ckpt_encoder *enc;
	struct ckpt_decoder *dec;
	struct ckbuf *b;
	struct hv_state st;
};

static int setup(void **state)
{
	static struct fixture f;
	struct ckpt_codec_config cfg = {.cache_pages = NPAGES, .level = 1};

	memset(&f, 0, sizeof(f));
	memset(image, 0, sizeof(image));
	for (int i = 0; i < NPAGES; i++)
		for (unsigned j = 0; j < CKPT_PAGE_SIZE; j += 16)
			sender[i][j] = (uint8_t)(i * 7 + j);
	assert_int_equal(ckpt_encoder_new(&cfg, &f.enc), 0);
	assert_int_equal(ckpt_decoder_new(&f.dec), 0);
	assert_int_equal(ckbuf_new(64 << 20, &f.b), 0);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ckpt_encoder_free(f->enc);
	ckpt_decoder_free(f->dec);
	ckbuf_free(f->b);
	hv_state_free(&f->st);
	return 0;
}

static void commit_ok(struct fixture *f)
{
	char err[128];

	assert_int_equal(ckbuf_commit(f->b, f->dec, page_of, NULL, &f->st, err, sizeof(err)), 0);
}

static void test_commit_applies_pages_and_state(void **state)
{
	struct fixture *f = *state;
	uint64_t pfns[NPAGES];
	uint8_t *mem;
	struct ckpt_record rec;
	struct ckpt_record st = {.type = CKPT_REC_HA_VMM_STATE, .length = 12,
				 .body = (const uint8_t *)"\1\0\0\0\0\0\0\0abcd"};

	for (int i = 0; i < NPAGES; i++)
		pfns[i] = (uint64_t)i;
	rec = zrecord(f->enc, pfns, NPAGES, &mem);
	assert_int_equal(ckbuf_add(f->b, &rec), 0);
	assert_int_equal(ckbuf_add(f->b, &st), 0);
	assert_int_equal(ckbuf_pages(f->b), NPAGES);
	/* Nothing is applied before commit. */
	assert_int_equal(image[5][16], 0);
	commit_ok(f);
	free(mem);
	assert_memory_equal(image, sender, sizeof(image));
	assert_int_equal(f->st.nrecs, 1);
	assert_int_equal(f->st.recs[0].type, CKPT_REC_HA_VMM_STATE);
	assert_memory_equal(f->st.buf + f->st.recs[0].off + 8, "abcd", 4);
	assert_int_equal(ckbuf_pages(f->b), 0);

	/* The next checkpoint: deltas against the committed copies. */
	sender[3][100] ^= 0xFF;
	sender[9][7] ^= 0x01;
	uint64_t two[2] = {3, 9};
	rec = zrecord(f->enc, two, 2, &mem);
	assert_int_equal(le32toh(((const struct ckpt_page_z_desc *)(rec.body + 8))[0].encoding),
			 CKPT_ENC_XOR_ZSTD);
	assert_int_equal(ckbuf_add(f->b, &rec), 0);
	commit_ok(f);
	free(mem);
	assert_memory_equal(image, sender, sizeof(image));
	/* No state records in this checkpoint: the previous state stays. */
	assert_int_equal(f->st.nrecs, 1);
}

static void test_same_page_twice_in_a_checkpoint(void **state)
{
	struct fixture *f = *state;
	uint64_t pfn = 4;
	uint8_t *m1, *m2;
	struct ckpt_record r1, r2;

	r1 = zrecord(f->enc, &pfn, 1, &m1);
	sender[4][0] = 0x42;
	r2 = zrecord(f->enc, &pfn, 1, &m2); /* a delta against r1's version */
	assert_int_equal(ckbuf_add(f->b, &r1), 0);
	assert_int_equal(ckbuf_add(f->b, &r2), 0);
	commit_ok(f);
	assert_memory_equal(image[4], sender[4], CKPT_PAGE_SIZE);
	free(m1);
	free(m2);
}

static void test_corrupt_page_applies_nothing(void **state)
{
	struct fixture *f = *state;
	static uint8_t before[NPAGES][CKPT_PAGE_SIZE];
	uint64_t pfns[3] = {1, 2, 3};
	uint8_t *mem;
	struct ckpt_record rec, st = {.type = CKPT_REC_HA_VMM_STATE, .length = 8,
				      .body = (const uint8_t *)"\2\0\0\0\0\0\0\0"};
	char err[128];

	memset(image, 0x11, sizeof(image));
	memcpy(before, image, sizeof(image));
	rec = zrecord(f->enc, pfns, 3, &mem);
	/* Damage the last page's zstd frame (magic number of its payload). */
	const struct ckpt_page_z_desc *d = (const void *)(rec.body + 8);
	size_t off = 8 + 3 * 16 + le32toh(d[0].length) + le32toh(d[1].length);
	mem[off] ^= 0xFF;
	assert_int_equal(ckbuf_add(f->b, &rec), 0);
	assert_int_equal(ckbuf_add(f->b, &st), 0);
	assert_int_equal(ckbuf_commit(f->b, f->dec, page_of, NULL, &f->st, err, sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, "page 0x3: corrupt compressed data"));
	assert_memory_equal(image, before, sizeof(image));
	assert_int_equal(f->st.nrecs, 0);
	assert_int_equal(ckbuf_pages(f->b), 0);
	free(mem);
}

static void test_out_of_range_pfn_applies_nothing(void **state)
{
	struct fixture *f = *state;
	static uint8_t before[NPAGES][CKPT_PAGE_SIZE];
	uint64_t pfns[2] = {0, NPAGES + 5};
	uint8_t *mem;
	struct ckpt_record rec;
	char err[128];

	memcpy(before, image, sizeof(image));
	rec = zrecord(f->enc, pfns, 2, &mem);
	assert_int_equal(ckbuf_add(f->b, &rec), 0);
	assert_int_equal(ckbuf_commit(f->b, f->dec, page_of, NULL, &f->st, err, sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, "beyond the guest's memory"));
	assert_memory_equal(image, before, sizeof(image));
	free(mem);
}

static void test_size_bound(void **state)
{
	struct fixture *f = *state;
	struct ckbuf *small;
	uint64_t pfns[NPAGES];
	uint8_t *mem;
	struct ckpt_record rec;

	for (int i = 0; i < NPAGES; i++) {
		pfns[i] = (uint64_t)i;
		for (unsigned j = 0; j < CKPT_PAGE_SIZE; j++)
			sender[i][j] = (uint8_t)rand();
	}
	assert_int_equal(ckbuf_new(64 * 1024, &small), 0);
	rec = zrecord(f->enc, pfns, NPAGES, &mem);
	assert_int_equal(ckbuf_add(small, &rec), -E2BIG);
	ckbuf_free(small);
	free(mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commit_applies_pages_and_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_page_twice_in_a_checkpoint, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_page_applies_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_range_pfn_applies_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_size_bound, setup, teardown),
	};
	return cmocka_run_group_tests_name("ckbuf", tests, NULL, NULL);
}
