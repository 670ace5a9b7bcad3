/* Page codec: deltas decode to the sender's pages on a receiver that holds
 * its own copy; every corrupt or hostile payload is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "checkpoint/codec.h"

#define NPAGES 64

struct world {
	uint8_t sender[NPAGES][CKPT_PAGE_SIZE];
	uint8_t receiver[NPAGES][CKPT_PAGE_SIZE];
	struct ckpt_encoder *enc;
	struct ckpt_decoder *dec;
};

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static struct world *world_new(size_t cache_pages)
{
	struct world *w = calloc(1, sizeof(*w));
	struct ckpt_codec_config cfg = {.cache_pages = cache_pages, .level = 1};

	assert_non_null(w);
	assert_int_equal(ckpt_encoder_new(&cfg, &w->enc), 0);
	assert_int_equal(ckpt_decoder_new(&w->dec), 0);
	return w;
}

static void world_free(struct world *w)
{
	ckpt_encoder_free(w->enc);
	ckpt_decoder_free(w->dec);
	free(w);
}

/* Flattens a batch the way the writer would put it on the wire. */
static uint8_t *flatten(const struct ckpt_zbatch *b)
{
	uint8_t *out = malloc(b->bytes), *p = out;

	for (int i = 0; i < b->iovcnt; i++) {
		memcpy(p, b->iov[i].iov_base, b->iov[i].iov_len);
		p += b->iov[i].iov_len;
	}
	return out;
}

/* Sends the given pfns and applies them on the receiver; returns wire bytes. */
static size_t sync_pages(struct world *w, const uint64_t *pfns, uint32_t n, uint64_t *by_enc)
{
	const void *pages[NPAGES];
	struct ckpt_zbatch b;
	uint8_t *wire;
	const struct ckpt_page_z_desc *d;
	const uint8_t *payload;

	for (uint32_t i = 0; i < n; i++)
		pages[i] = w->sender[pfns[i]];
	assert_int_equal(ckpt_encoder_encode(w->enc, pfns, pages, n, &b), 0);
	assert_int_equal(b.pages, n);
	wire = flatten(&b);
	assert_int_equal(le32toh(((struct ckpt_page_data_hdr *)wire)->count), n);
	d = (const void *)(wire + 8);
	payload = wire + 8 + 16 * n;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *page = w->receiver[le64toh(d[i].pfn)];
		uint32_t enc = le32toh(d[i].encoding), len = le32toh(d[i].length);

		assert_int_equal(ckpt_decode_page(w->dec, enc, payload, len, page, page), 0);
		if (by_enc)
			by_enc[enc]++;
		payload += len;
	}
	assert_ptr_equal(payload, wire + b.bytes);
	free(wire);
	return b.bytes;
}

static void test_kinds_of_pages(void **state)
{
	struct world *w = world_new(64);
	uint64_t pfns[4] = {0, 1, 2, 3}, by_enc[4] = {0};

	/* 0 zero, 1 random, 2 text-like, 3 mostly zero with a header. */
	for (size_t i = 0; i < CKPT_PAGE_SIZE; i++) {
		w->sender[1][i] = (uint8_t)next_rand();
		w->sender[2][i] = "the quick brown fox "[i % 20];
	}
	memcpy(w->sender[3], "header", 6);
	memset(w->receiver, 0xAA, sizeof(w->receiver));
	sync_pages(w, pfns, 4, by_enc);
	assert_int_equal(by_enc[CKPT_ENC_ZERO], 1);
	assert_int_equal(by_enc[CKPT_ENC_RAW], 1);
	assert_int_equal(by_enc[CKPT_ENC_ZSTD], 2);
	assert_memory_equal(w->sender, w->receiver, 4 * CKPT_PAGE_SIZE);
	world_free(w);
}

static void test_deltas_over_epochs(void **state)
{
	struct world *w = world_new(NPAGES);
	uint64_t pfns[NPAGES];
	size_t first, later = 0;

	for (uint32_t i = 0; i < NPAGES; i++) {
		pfns[i] = i;
		for (size_t j = 0; j < CKPT_PAGE_SIZE; j += 8)
			w->sender[i][j] = (uint8_t)next_rand();
	}
	first = sync_pages(w, pfns, NPAGES, NULL);
	for (int epoch = 0; epoch < 20; epoch++) {
		uint64_t by_enc[4] = {0};

		/* A few words change in every page. */
		for (uint32_t i = 0; i < NPAGES; i++)
			for (int k = 0; k < 4; k++)
				((uint64_t *)w->sender[i])[next_rand() % 512] = next_rand();
		later = sync_pages(w, pfns, NPAGES, by_enc);
		assert_int_equal(by_enc[CKPT_ENC_XOR_ZSTD], NPAGES);
		assert_memory_equal(w->sender, w->receiver, sizeof(w->sender));
	}
	/* A delta of 4 words is much smaller than the page itself. */
	assert_true(later * 5 < first);
	assert_true(ckpt_encoder_stats(w->enc)->cache_hits == 20 * NPAGES);
	world_free(w);
}

static void test_small_cache_evicts_correctly(void **state)
{
	struct world *w = world_new(4); /* one set of 4 ways for 64 pages */

	for (int round = 0; round < 200; round++) {
		uint64_t pfn = next_rand() % NPAGES;

		for (int k = 0; k < 8; k++)
			((uint64_t *)w->sender[pfn])[next_rand() % 512] = next_rand();
		sync_pages(w, &pfn, 1, NULL);
		assert_memory_equal(w->sender[pfn], w->receiver[pfn], CKPT_PAGE_SIZE);
	}
	assert_memory_equal(w->sender, w->receiver, sizeof(w->sender));
	world_free(w);
}

static void test_no_cache_no_deltas(void **state)
{
	struct world *w = world_new(0);
	uint64_t pfn = 7, by_enc[4] = {0};

	memcpy(w->sender[7], "some data", 9);
	sync_pages(w, &pfn, 1, by_enc);
	w->sender[7][100] = 1;
	sync_pages(w, &pfn, 1, by_enc);
	assert_int_equal(by_enc[CKPT_ENC_XOR_ZSTD], 0);
	assert_int_equal(by_enc[CKPT_ENC_ZSTD], 2);
	assert_memory_equal(w->sender[7], w->receiver[7], CKPT_PAGE_SIZE);
	world_free(w);
}

static void test_page_becomes_zero(void **state)
{
	struct world *w = world_new(8);
	uint64_t pfn = 3;

	memset(w->sender[3], 0x5A, CKPT_PAGE_SIZE);
	sync_pages(w, &pfn, 1, NULL);
	memset(w->sender[3], 0, CKPT_PAGE_SIZE);
	sync_pages(w, &pfn, 1, NULL);
	w->sender[3][9] = 9; /* after ZERO the cache entry is gone: plain zstd */
	uint64_t by_enc[4] = {0};
	sync_pages(w, &pfn, 1, by_enc);
	assert_int_equal(by_enc[CKPT_ENC_ZSTD], 1);
	assert_memory_equal(w->sender[3], w->receiver[3], CKPT_PAGE_SIZE);
	world_free(w);
}

static void test_encoder_rejects_bad_batches(void **state)
{
	struct world *w = world_new(8);
	uint64_t pfn = UINT64_C(1) << 60;
	const void *page = w->sender[0];
	struct ckpt_zbatch b;

	assert_int_equal(ckpt_encoder_encode(w->enc, &pfn, &page, 1, &b), -EINVAL);
	assert_int_equal(ckpt_encoder_encode(w->enc, &pfn, &page, 0, &b), -EINVAL);
	assert_int_equal(ckpt_encoder_encode(w->enc, &pfn, &page, CKPT_CODEC_BATCH_MAX + 1, &b),
			 -EINVAL);
	world_free(w);
}

static void test_decoder_refuses_hostile_payloads(void **state)
{
	struct ckpt_decoder *d;
	static uint8_t big[2 * CKPT_PAGE_SIZE], page[CKPT_PAGE_SIZE], out[CKPT_PAGE_SIZE];
	uint8_t z[8192];
	size_t n;

	assert_int_equal(ckpt_decoder_new(&d), 0);
	memcpy(page, "abc", 3);

	/* A bomb: a frame of 8 KiB content for a 4 KiB page. */
	n = ZSTD_compress(z, sizeof(z), big, sizeof(big), 1);
	assert_false(ZSTD_isError(n));
	assert_int_equal(ckpt_decode_page(d, CKPT_ENC_ZSTD, z, (uint32_t)n, NULL, out), -EBADMSG);
	/* Content size 4095. */
	n = ZSTD_compress(z, sizeof(z), page, CKPT_PAGE_SIZE - 1, 1);
	assert_int_equal(ckpt_decode_page(d, CKPT_ENC_ZSTD, z, (uint32_t)n, NULL, out), -EBADMSG);
	/* A good frame, then damaged and truncated versions of it. */
	n = ZSTD_compress(z, sizeof(z), page, CKPT_PAGE_SIZE, 1);
	assert_int_equal(ckpt_decode_page(d, CKPT_ENC_ZSTD, z, (uint32_t)n, NULL, out), 0);
	assert_memory_equal(out, page, CKPT_PAGE_SIZE);
	assert_int_equal(ckpt_decode_page(d, CKPT_ENC_ZSTD, z, (uint32_t)n - 1, NULL, out),
			 -EBADMSG);
	assert_int_equal(ckpt_decode_page(d, CKPT_ENC_ZSTD, z, 4, NULL, out), -EBADMSG);
	for (size_t i = 0; i < n; i++) {
		z[i] ^= 0xFF;
		/* Either refused or decoded to exactly one page: never past it. */
		int rc = ckpt_decode_page(d, CKPT_ENC_ZSTD, z, (uint32_t)n, NULL, out);
		assert_true(rc == 0 || rc == -EBADMSG);
		z[i] ^= 0xFF;
	}
	/* Two frames back to back: more than a page. */
	memcpy(z + n, z, n);
	assert_int_equal(ckpt_decode_page(d, CKPT_ENC_ZSTD, z, (uint32_t)(2 * n), NULL, out),
			 -EBADMSG);
	/* Length rules per encoding, unknown encodings, a delta without base. */
	assert_int_equal(ckpt_decode_page(d, CKPT_ENC_RAW, page, 100, NULL, out), -EBADMSG);
	assert_int_equal(ckpt_decode_page(d, CKPT_ENC_ZERO, page, 1, NULL, out), -EBADMSG);
	assert_int_equal(ckpt_decode_page(d, 7, page, 1, NULL, out), -EBADMSG);
	assert_int_equal(ckpt_decode_page(d, CKPT_ENC_XOR_ZSTD, z, (uint32_t)n, NULL, out),
			 -EINVAL);
	ckpt_decoder_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kinds_of_pages),
		cmocka_unit_test(test_deltas_over_epochs),
		cmocka_unit_test(test_small_cache_evicts_correctly),
		cmocka_unit_test(test_no_cache_no_deltas),
		cmocka_unit_test(test_page_becomes_zero),
		cmocka_unit_test(test_encoder_rejects_bad_batches),
		cmocka_unit_test(test_decoder_refuses_hostile_payloads),
	};
	return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
