#include "checkpoint/codec.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define WAYS 4
#define NO_TAG UINT64_MAX

struct ckpt_encoder {
	struct ckpt_codec_config cfg;
	ZSTD_CCtx *cctx;

	/* Set-associative cache of last-sent pages: set = pfn % nsets. */
	size_t nsets;
	uint64_t *tags; /* pfn, or NO_TAG */
	uint64_t *stamp;
	uint8_t *data;
	uint64_t tick;

	/* Output of one batch. */
	struct ckpt_page_data_hdr hdr;
	struct ckpt_page_z_desc *descs;
	uint8_t *arena;
	struct iovec *iov;
	uint8_t *delta;

	struct ckpt_codec_stats stats;
};

int ckpt_encoder_new(const struct ckpt_codec_config *cfg, struct ckpt_encoder **out)
{
	struct ckpt_encoder *e = calloc(1, sizeof(*e));
	size_t lines;

	if (!e)
		return -ENOMEM;
	e->cfg = *cfg;
	lines = cfg->cache_pages / WAYS * WAYS;
	e->nsets = lines / WAYS;
	e->cctx = ZSTD_createCCtx();
	e->descs = calloc(CKPT_CODEC_BATCH_MAX, sizeof(*e->descs));
	e->arena = malloc((size_t)CKPT_CODEC_BATCH_MAX * CKPT_PAGE_SIZE);
	e->iov = calloc(2 + CKPT_CODEC_BATCH_MAX, sizeof(*e->iov));
	e->delta = aligned_alloc(64, CKPT_PAGE_SIZE);
	if (lines) {
		e->tags = malloc(lines * sizeof(*e->tags));
		e->stamp = calloc(lines, sizeof(*e->stamp));
		e->data = aligned_alloc(64, lines * CKPT_PAGE_SIZE);
	}
	if (!e->cctx || !e->descs || !e->arena || !e->iov || !e->delta ||
	    (lines && (!e->tags || !e->stamp || !e->data)))
		goto nomem;
	if (ZSTD_isError(ZSTD_CCtx_setParameter(e->cctx, ZSTD_c_compressionLevel, cfg->level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(e->cctx, ZSTD_c_contentSizeFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(e->cctx, ZSTD_c_checksumFlag, 0))) {
		ckpt_encoder_free(e);
		return -EINVAL;
	}
	ckpt_encoder_reset(e);
	*out = e;
	return 0;
nomem:
	ckpt_encoder_free(e);
	return -ENOMEM;
}

void ckpt_encoder_free(struct ckpt_encoder *e)
{
	if (!e)
		return;
	ZSTD_freeCCtx(e->cctx);
	free(e->descs);
	free(e->arena);
	free(e->iov);
	free(e->delta);
	free(e->tags);
	free(e->stamp);
	free(e->data);
	free(e);
}

void ckpt_encoder_reset(struct ckpt_encoder *e)
{
	for (size_t i = 0; i < e->nsets * WAYS; i++)
		e->tags[i] = NO_TAG;
}

const struct ckpt_codec_stats *ckpt_encoder_stats(const struct ckpt_encoder *e)
{
	return &e->stats;
}

static bool page_is_zero(const void *page)
{
	const uint64_t *w = page;

	for (size_t i = 0; i < CKPT_PAGE_SIZE / 8; i += 8) {
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] |
		    w[i + 7])
			return false;
	}
	return true;
}

/* Returns the cache line holding pfn, or -1. */
static long cache_find(struct ckpt_encoder *e, uint64_t pfn)
{
	size_t base;

	if (!e->nsets)
		return -1;
	base = (size_t)(pfn % e->nsets) * WAYS;
	for (size_t w = 0; w < WAYS; w++)
		if (e->tags[base + w] == pfn)
			return (long)(base + w);
	return -1;
}

/* Takes the least recently used line of pfn's set for pfn. */
static long cache_claim(struct ckpt_encoder *e, uint64_t pfn)
{
	size_t base, victim;

	if (!e->nsets)
		return -1;
	base = (size_t)(pfn % e->nsets) * WAYS;
	victim = base;
	for (size_t w = 0; w < WAYS; w++) {
		if (e->tags[base + w] == NO_TAG) {
			victim = base + w;
			break;
		}
		if (e->stamp[base + w] < e->stamp[victim])
			victim = base + w;
	}
	e->tags[victim] = pfn;
	return (long)victim;
}

/* delta = page ^ line; line = page. One pass over both. */
static void xor_and_update(uint8_t *delta, uint8_t *line, const uint8_t *page)
{
	uint64_t *d = (uint64_t *)delta, *l = (uint64_t *)line;
	const uint64_t *p = (const uint64_t *)page;

	for (size_t i = 0; i < CKPT_PAGE_SIZE / 8; i++) {
		uint64_t v;

		memcpy(&v, &p[i], 8);
		d[i] = v ^ l[i];
		l[i] = v;
	}
}

int ckpt_encoder_encode(struct ckpt_encoder *e, const uint64_t *pfns, const void *const *pages,
			uint32_t count, struct ckpt_zbatch *out)
{
	size_t used = 0;
	int n = 0;

	if (count == 0 || count > CKPT_CODEC_BATCH_MAX)
		return -EINVAL;
	e->hdr.count = count;
	e->hdr.reserved = 0;
	e->iov[n++] = (struct iovec){&e->hdr, sizeof(e->hdr)};
	e->iov[n++] = (struct iovec){e->descs, sizeof(*e->descs) * count};

	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *page = pages[i];
		uint8_t *dst = e->arena + used;
		const void *src;
		uint8_t *stable;
		uint32_t enc, len = 0;
		long line;

		if (pfns[i] > CKPT_PFN_MASK)
			return -EINVAL;
		e->tick++;
		line = cache_find(e, pfns[i]);
		if (page_is_zero(page)) {
			/* The receiver will hold zeros: a delta against them is plain zstd. */
			if (line >= 0)
				e->tags[line] = NO_TAG;
			enc = CKPT_ENC_ZERO;
		} else {
			/* The page may be live (pre-copy reads a running guest): read it
			 * once into the cache line and encode only from stable copies,
			 * so the cache always equals what the receiver decodes. */
			if (line >= 0) {
				stable = e->data + (size_t)line * CKPT_PAGE_SIZE;
				xor_and_update(e->delta, stable, page);
				src = e->delta;
				enc = CKPT_ENC_XOR_ZSTD;
				e->stats.cache_hits++;
			} else {
				line = cache_claim(e, pfns[i]);
				if (line >= 0) {
					stable = e->data + (size_t)line * CKPT_PAGE_SIZE;
					memcpy(stable, page, CKPT_PAGE_SIZE);
				} else {
					stable = e->delta;
					memcpy(stable, page, CKPT_PAGE_SIZE);
				}
				src = stable;
				enc = CKPT_ENC_ZSTD;
			}
			if (line >= 0)
				e->stamp[line] = e->tick;
			/* Capacity one short of a page: output that does not shrink fails. */
			size_t z = ZSTD_compress2(e->cctx, dst, CKPT_PAGE_SIZE - 1, src,
						  CKPT_PAGE_SIZE);
			if (ZSTD_isError(z)) {
				enc = CKPT_ENC_RAW;
				memcpy(dst, stable, CKPT_PAGE_SIZE);
				len = CKPT_PAGE_SIZE;
			} else {
				len = (uint32_t)z;
			}
		}

		e->descs[i].pfn = pfns[i];
		e->descs[i].encoding = enc;
		e->descs[i].length = len;
		e->stats.by_encoding[enc]++;

		if (len) {
			/* Grow the previous arena iovec if it ends right here. */
			struct iovec *prev = &e->iov[n - 1];

			if (n > 2 && (uint8_t *)prev->iov_base + prev->iov_len == dst)
				prev->iov_len += len;
			else
				e->iov[n++] = (struct iovec){dst, len};
			used += len;
		}
	}

	out->iov = e->iov;
	out->iovcnt = n;
	out->pages = count;
	out->bytes = 0;
	for (int i = 0; i < n; i++)
		out->bytes += e->iov[i].iov_len;
	e->stats.pages += count;
	e->stats.raw_bytes += (uint64_t)count * CKPT_PAGE_SIZE;
	e->stats.wire_bytes += out->bytes;
	return 0;
}

struct ckpt_decoder {
	ZSTD_DCtx *dctx;
	uint8_t *tmp;
};

int ckpt_decoder_new(struct ckpt_decoder **out)
{
	struct ckpt_decoder *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->dctx = ZSTD_createDCtx();
	d->tmp = aligned_alloc(64, CKPT_PAGE_SIZE);
	if (!d->dctx || !d->tmp) {
		ckpt_decoder_free(d);
		return -ENOMEM;
	}
	/* A page needs a window of 4 KiB; refuse frames asking for more. */
	ZSTD_DCtx_setParameter(d->dctx, ZSTD_d_windowLogMax, 13);
	*out = d;
	return 0;
}

void ckpt_decoder_free(struct ckpt_decoder *d)
{
	if (!d)
		return;
	ZSTD_freeDCtx(d->dctx);
	free(d->tmp);
	free(d);
}

static int unzstd(struct ckpt_decoder *d, const void *payload, uint32_t len, void *out)
{
	size_t n;

	if (ZSTD_getFrameContentSize(payload, len) != CKPT_PAGE_SIZE)
		return -EBADMSG;
	n = ZSTD_decompressDCtx(d->dctx, out, CKPT_PAGE_SIZE, payload, len);
	if (ZSTD_isError(n) || n != CKPT_PAGE_SIZE)
		return -EBADMSG;
	return 0;
}

int ckpt_decode_page(struct ckpt_decoder *d, uint32_t encoding, const void *payload, uint32_t len,
		     const void *base, void *out)
{
	int rc;

	switch (encoding) {
	case CKPT_ENC_RAW:
		if (len != CKPT_PAGE_SIZE)
			return -EBADMSG;
		memmove(out, payload, CKPT_PAGE_SIZE);
		return 0;
	case CKPT_ENC_ZERO:
		if (len != 0)
			return -EBADMSG;
		memset(out, 0, CKPT_PAGE_SIZE);
		return 0;
	case CKPT_ENC_ZSTD:
		return unzstd(d, payload, len, out);
	case CKPT_ENC_XOR_ZSTD: {
		const uint64_t *b = base;
		uint64_t *o = out, *t = (uint64_t *)d->tmp;

		if (!base)
			return -EINVAL;
		rc = unzstd(d, payload, len, d->tmp);
		if (rc < 0)
			return rc;
		for (size_t i = 0; i < CKPT_PAGE_SIZE / 8; i++)
			o[i] = b[i] ^ t[i];
		return 0;
	}
	default:
		return -EBADMSG;
	}
}
