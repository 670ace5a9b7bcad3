#include "secondary/ckbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Buffered records: {u32 type, u32 len, body padded to 8} back to back. */
struct ckbuf {
	size_t max;
	uint8_t *data;
	size_t len, cap;
	uint64_t pages;

	/* Scratch for commit: decoded pages and a pfn -> slot hash. */
	uint8_t *scratch;
	uint64_t *scratch_pfn;
	size_t scratch_cap; /* pages */
	uint32_t *hash;     /* slot + 1, 0 empty */
	size_t hash_cap;
};

int ckbuf_new(size_t max_bytes, struct ckbuf **out)
{
	struct ckbuf *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	b->max = max_bytes;
	*out = b;
	return 0;
}

void ckbuf_free(struct ckbuf *b)
{
	if (!b)
		return;
	free(b->data);
	free(b->scratch);
	free(b->scratch_pfn);
	free(b->hash);
	free(b);
}

void ckbuf_reset(struct ckbuf *b)
{
	b->len = 0;
	b->pages = 0;
}

uint64_t ckbuf_pages(const struct ckbuf *b)
{
	return b->pages;
}

size_t ckbuf_bytes(const struct ckbuf *b)
{
	return b->len;
}

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

int ckbuf_add(struct ckbuf *b, const struct ckpt_record *rec)
{
	size_t need = b->len + 8 + align8(rec->length);
	/* Commit needs a scratch page per buffered page too. */
	size_t total = need + (size_t)(b->pages + rec->pages) * (CKPT_PAGE_SIZE + 16);

	if (total > b->max)
		return -E2BIG;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 1 << 20;
		void *p;

		while (cap < need)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return -ENOMEM;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, &rec->type, 4);
	memcpy(b->data + b->len + 4, &rec->length, 4);
	memcpy(b->data + b->len + 8, rec->body, rec->length);
	memset(b->data + b->len + 8 + rec->length, 0, align8(rec->length) - rec->length);
	b->len = need;
	b->pages += rec->pages;
	return 0;
}

static int scratch_reserve(struct ckbuf *b, size_t pages)
{
	size_t hcap = 16;

	if (pages > b->scratch_cap) {
		void *s = realloc(b->scratch, pages * CKPT_PAGE_SIZE);
		void *p;

		if (!s)
			return -ENOMEM;
		b->scratch = s;
		p = realloc(b->scratch_pfn, pages * sizeof(uint64_t));
		if (!p)
			return -ENOMEM;
		b->scratch_pfn = p;
		b->scratch_cap = pages;
	}
	while (hcap < pages * 2)
		hcap *= 2;
	if (hcap > b->hash_cap) {
		free(b->hash);
		b->hash = malloc(hcap * sizeof(uint32_t));
		if (!b->hash) {
			b->hash_cap = 0;
			return -ENOMEM;
		}
		b->hash_cap = hcap;
	}
	memset(b->hash, 0, b->hash_cap * sizeof(uint32_t));
	return 0;
}

/* The scratch slot for pfn, allocating one; *fresh says whether it is new. */
static uint32_t slot_for(struct ckbuf *b, uint64_t pfn, uint32_t *used, int *fresh)
{
	size_t h = (size_t)(pfn * 0x9E3779B97F4A7C15ull) & (b->hash_cap - 1);

	for (;; h = (h + 1) & (b->hash_cap - 1)) {
		if (!b->hash[h]) {
			b->hash[h] = ++*used;
			b->scratch_pfn[*used - 1] = pfn;
			*fresh = 1;
			return *used - 1;
		}
		if (b->scratch_pfn[b->hash[h] - 1] == pfn) {
			*fresh = 0;
			return b->hash[h] - 1;
		}
	}
}

int ckbuf_commit(struct ckbuf *b, struct ckpt_decoder *dec, ckbuf_page_fn page, void *ctx,
		 struct hv_state *state, char *err, size_t errlen)
{
	struct hv_state next = {0};
	uint32_t used = 0;
	size_t off;
	int rc;

	rc = scratch_reserve(b, b->pages ? b->pages : 1);
	if (rc < 0)
		goto out;

	/* Phase 1: decode everything into scratch; the image is only read. */
	for (off = 0; off < b->len;) {
		struct ckpt_record rec = {0};
		struct ckpt_pages_view v;

		memcpy(&rec.type, b->data + off, 4);
		memcpy(&rec.length, b->data + off + 4, 4);
		rec.body = b->data + off + 8;
		off += 8 + align8(rec.length);

		if (ckpt_pages_view(&rec, &v) < 0) {
			rc = hv_state_add(&next, rec.type, rec.body, rec.length);
			if (rc < 0)
				goto out;
			continue;
		}
		struct ckpt_page_iter it;
		struct ckpt_page pg;

		ckpt_page_iter_init(&it, &v);
		while (ckpt_page_iter_next(&it, &pg)) {
			uint8_t *committed = page(ctx, pg.pfn), *dst;
			int fresh;

			if (!committed) {
				snprintf(err, errlen, "page 0x%llx is beyond the guest's memory",
					 (unsigned long long)pg.pfn);
				rc = -EBADMSG;
				goto out;
			}
			dst = b->scratch +
			      (size_t)slot_for(b, pg.pfn, &used, &fresh) * CKPT_PAGE_SIZE;
			rc = ckpt_decode_page(dec, pg.encoding, pg.payload, pg.length,
					      fresh ? committed : dst, dst);
			if (rc < 0) {
				snprintf(err, errlen,
					 "page 0x%llx: corrupt compressed data (encoding %u, %u octets)",
					 (unsigned long long)pg.pfn, pg.encoding, pg.length);
				rc = -EBADMSG;
				goto out;
			}
		}
	}

	/* Phase 2: nothing can fail any more; apply. */
	for (uint32_t s = 0; s < used; s++)
		memcpy(page(ctx, b->scratch_pfn[s]), b->scratch + (size_t)s * CKPT_PAGE_SIZE,
		       CKPT_PAGE_SIZE);
	if (next.nrecs) {
		hv_state_free(state);
		*state = next;
		next = (struct hv_state){0};
	}
	rc = 0;
out:
	hv_state_free(&next);
	ckbuf_reset(b);
	return rc;
}
