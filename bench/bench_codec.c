/* Codec benchmark: encode/decode throughput and wire ratio on page mixes,
 * each beside memcpy and plain per-page zstd of the same pages, measured in
 * the same run. Figures are ratios; absolute numbers depend on the machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "checkpoint/codec.h"
#include "common/clock.h"

#define NPAGES 8192 /* 32 MiB working set */
#define ROUNDS 5

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

enum mix { MIX_FEW, MIX_MANY, MIX_TEXT, MIX_ZERO, MIX_RANDOM, MIX_SMALL_UPDATES, MIX_COUNT };
static const char *const mix_names[] = {
	"xor delta, 2 words changed", "xor delta, 128 words changed", "text-like, uncached",
	"zero pages",		      "random pages, uncached",       "mix of small updates",
};

static const char *const words[] = {"the ",  "quick ", "brown ", "fox ",  "jumps ", "over ",
				    "lazy ", "dog ",   "index ", "page ", "cache ", "epoch "};

static void text_page(uint8_t *p)
{
	size_t i = 0;

	while (i < CKPT_PAGE_SIZE) {
		const char *w = words[next_rand() % 12];
		size_t n = strlen(w);

		if (i + n > CKPT_PAGE_SIZE)
			n = CKPT_PAGE_SIZE - i;
		memcpy(p + i, w, n);
		i += n;
	}
}

static void change_words(uint8_t *p, int n)
{
	for (int k = 0; k < n; k++)
		((uint64_t *)p)[next_rand() % 512] = next_rand();
}

/* Prepares the pages for one measured round of a mix. */
static void mutate(enum mix m, uint8_t *pages)
{
	for (size_t i = 0; i < NPAGES; i++) {
		uint8_t *p = pages + i * CKPT_PAGE_SIZE;

		switch (m) {
		case MIX_FEW:
			change_words(p, 2);
			break;
		case MIX_MANY:
			change_words(p, 128);
			break;
		case MIX_TEXT:
			text_page(p);
			break;
		case MIX_ZERO:
			memset(p, 0, CKPT_PAGE_SIZE);
			break;
		case MIX_RANDOM:
			for (size_t j = 0; j < CKPT_PAGE_SIZE / 8; j++)
				((uint64_t *)p)[j] = next_rand();
			break;
		case MIX_SMALL_UPDATES: {
			/* In-place updates of a running guest: counters, list links,
			 * a few records rewritten, some pages cleared. */
			unsigned r = (unsigned)(next_rand() % 100);
			if (r < 50)
				change_words(p, 1 + (int)(next_rand() % 4));
			else if (r < 80)
				change_words(p, 16);
			else if (r < 90)
				memcpy(p + (next_rand() % 3) * 1024, p + 3072, 512);
			else
				memset(p, 0, CKPT_PAGE_SIZE);
			break;
		}
		default:
			break;
		}
	}
}

static void initial(enum mix m, uint8_t *pages)
{
	for (size_t i = 0; i < NPAGES; i++) {
		uint8_t *p = pages + i * CKPT_PAGE_SIZE;

		if (m == MIX_ZERO || m == MIX_RANDOM)
			continue;
		text_page(p);
		/* Some binary structure too. */
		for (size_t j = 0; j < 64; j++)
			((uint64_t *)p)[j * 8] = next_rand() & 0xFFFFFF;
	}
}

static double gbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (double)ns : 0;
}

int main(void)
{
	uint8_t *pages = aligned_alloc(4096, (size_t)NPAGES * CKPT_PAGE_SIZE);
	uint8_t *dst = aligned_alloc(4096, (size_t)NPAGES * CKPT_PAGE_SIZE);
	uint8_t *recv = aligned_alloc(4096, (size_t)NPAGES * CKPT_PAGE_SIZE);
	uint8_t *wire = malloc((size_t)CKPT_CODEC_BATCH_MAX * (CKPT_PAGE_SIZE + 64));
	uint8_t zbuf[ZSTD_COMPRESSBOUND(CKPT_PAGE_SIZE)];
	uint64_t *pfns = malloc(NPAGES * sizeof(*pfns));
	const void **pp = malloc(NPAGES * sizeof(*pp));
	ZSTD_CCtx *zc = ZSTD_createCCtx();
	struct ckpt_decoder *dec;
	int fails = 0;

	if (!pages || !dst || !recv || !wire || !pfns || !pp || !zc || ckpt_decoder_new(&dec))
		return 2;
	for (size_t i = 0; i < NPAGES; i++) {
		pfns[i] = i;
		pp[i] = pages + i * CKPT_PAGE_SIZE;
	}
	printf("codec benchmark: %d pages (%d MiB) per round, best of %d rounds, zstd level 1,\n"
	       "sender cache = working set. GB/s = 10^9 octets of page per second.\n\n",
	       NPAGES, NPAGES * 4 / 1024, ROUNDS);
	printf("%-30s %9s %9s %9s %9s %9s %10s %10s\n", "mix", "memcpy", "zstd", "encode",
	       "decode", "wire", "enc/memcpy", "enc/zstd");

	for (int m = 0; m < MIX_COUNT; m++) {
		struct ckpt_encoder *enc;
		struct ckpt_codec_config cfg = {.cache_pages = NPAGES, .level = 1};
		uint64_t best_memcpy = UINT64_MAX, best_zstd = UINT64_MAX, best_enc = UINT64_MAX;
		uint64_t best_dec = UINT64_MAX, wire_bytes = 0, zstd_bytes = 0;

		if (ckpt_encoder_new(&cfg, &enc))
			return 2;
		initial((enum mix)m, pages);
		/* Prime the cache and the receiver: the first full send. */
		for (size_t b = 0; b < NPAGES; b += CKPT_CODEC_BATCH_MAX) {
			struct ckpt_zbatch zb;
			ckpt_encoder_encode(enc, pfns + b, pp + b, CKPT_CODEC_BATCH_MAX, &zb);
		}
		memcpy(recv, pages, (size_t)NPAGES * CKPT_PAGE_SIZE);

		for (int round = 0; round < ROUNDS; round++) {
			uint64_t t0, t, enc_ns = 0, dec_ns = 0, wb = 0, zb_total = 0;

			mutate((enum mix)m, pages);

			t0 = clk_now_ns();
			memcpy(dst, pages, (size_t)NPAGES * CKPT_PAGE_SIZE);
			t = clk_now_ns() - t0;
			best_memcpy = t < best_memcpy ? t : best_memcpy;

			t0 = clk_now_ns();
			for (size_t i = 0; i < NPAGES; i++)
				zb_total += ZSTD_compressCCtx(zc, zbuf, sizeof(zbuf), pp[i],
							      CKPT_PAGE_SIZE, 1);
			t = clk_now_ns() - t0;
			best_zstd = t < best_zstd ? t : best_zstd;

			for (size_t b = 0; b < NPAGES; b += CKPT_CODEC_BATCH_MAX) {
				struct ckpt_zbatch zb;
				uint8_t *w = wire;
				const struct ckpt_page_z_desc *d;
				const uint8_t *payload;

				t0 = clk_now_ns();
				ckpt_encoder_encode(enc, pfns + b, pp + b, CKPT_CODEC_BATCH_MAX, &zb);
				enc_ns += clk_now_ns() - t0;
				wb += zb.bytes;
				for (int i = 0; i < zb.iovcnt; i++) {
					memcpy(w, zb.iov[i].iov_base, zb.iov[i].iov_len);
					w += zb.iov[i].iov_len;
				}
				d = (const void *)(wire + 8);
				payload = wire + 8 + 16 * CKPT_CODEC_BATCH_MAX;
				t0 = clk_now_ns();
				for (size_t i = 0; i < CKPT_CODEC_BATCH_MAX; i++) {
					uint8_t *pg = recv + d[i].pfn * CKPT_PAGE_SIZE;
					if (ckpt_decode_page(dec, d[i].encoding, payload, d[i].length,
							     pg, pg))
						fails++;
					payload += d[i].length;
				}
				dec_ns += clk_now_ns() - t0;
			}
			if (memcmp(recv, pages, (size_t)NPAGES * CKPT_PAGE_SIZE)) {
				fprintf(stderr, "bench_codec: %s: receiver differs from sender\n",
					mix_names[m]);
				fails++;
			}
			best_enc = enc_ns < best_enc ? enc_ns : best_enc;
			best_dec = dec_ns < best_dec ? dec_ns : best_dec;
			wire_bytes = wb;
			zstd_bytes = zb_total;
		}
		uint64_t bytes = (uint64_t)NPAGES * CKPT_PAGE_SIZE;
		printf("%-30s %9.2f %9.2f %9.2f %9.2f %9.3f %10.3f %10.2f\n", mix_names[m],
		       gbps(bytes, best_memcpy), gbps(bytes, best_zstd), gbps(bytes, best_enc),
		       gbps(bytes, best_dec), (double)wire_bytes / (double)bytes,
		       (double)best_memcpy / (double)best_enc, (double)best_zstd / (double)best_enc);
		(void)zstd_bytes;
		ckpt_encoder_free(enc);
	}
	printf("\nwire = encoded octets / raw octets (incl. 16-octet descriptors).\n"
	       "enc/memcpy = encode speed as a fraction of memcpy; enc/zstd = encode speed\n"
	       "relative to plain per-page zstd of the same pages (>1: faster).\n");
	ckpt_decoder_free(dec);
	ZSTD_freeCCtx(zc);
	free(pages);
	free(dst);
	free(recv);
	free(wire);
	free(pfns);
	free(pp);
	return fails ? 1 : 0;
}
