/* The log-linear histogram: see hist.h. */
#include "common/hist.h"

#include <stdio.h>

static unsigned bucket(uint64_t v)
{
	unsigned msb;

	if (v < 16)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v); /* >= 4 */
	if (msb >= 40)
		return HIST_BUCKETS - 1;
	return 16 + (msb - 4) * 8 + (unsigned)((v >> (msb - 3)) & 7);
}

static uint64_t lower(unsigned b)
{
	unsigned msb;

	if (b < 16)
		return b;
	msb = 4 + (b - 16) / 8;
	return ((uint64_t)8 + (b - 16) % 8) << (msb - 3);
}

static uint64_t mid(unsigned b)
{
	if (b < 16)
		return b;
	return lower(b) + (((uint64_t)1 << (4 + (b - 16) / 8 - 3)) >> 1);
}

void hist_add(struct hist *h, uint64_t v)
{
	if (!h->count || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->n[bucket(v)]++;
	h->count++;
}

static uint64_t clamp(const struct hist *h, uint64_t v)
{
	return v < h->min ? h->min : v > h->max ? h->max : v;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t need, seen = 0;

	if (!h->count)
		return 0;
	need = (uint64_t)(q * (double)h->count);
	if (need >= h->count)
		need = h->count - 1;
	for (unsigned b = 0; b < HIST_BUCKETS; b++) {
		seen += h->n[b];
		if (seen > need)
			return clamp(h, mid(b));
	}
	return clamp(h, mid(HIST_BUCKETS - 1));
}

uint64_t hist_count_le(const struct hist *h, uint64_t le)
{
	uint64_t n = 0;

	for (unsigned b = 0; b + 1 < HIST_BUCKETS && lower(b + 1) - 1 <= le; b++)
		n += h->n[b];
	return n;
}

int hist_format(const struct hist *h, char *buf, size_t len)
{
	int w = 0;

	if (len)
		buf[0] = '\0';
	for (unsigned b = 0; b < HIST_BUCKETS; b++) {
		if (!h->n[b])
			continue;
		int r = snprintf(buf + (w < (int)len ? w : (int)len),
				 (size_t)w < len ? len - (size_t)w : 0, "%s%llu:%llu", w ? " " : "",
				 (unsigned long long)mid(b), (unsigned long long)h->n[b]);
		if (r < 0)
			return r;
		w += r;
	}
	return w;
}
