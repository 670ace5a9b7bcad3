/* A fixed-size bit set over 64-bit words (dirty page sets, region maps). */
#ifndef HA_COMMON_BITMAP_H
#define HA_COMMON_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bitmap {
	uint64_t *words;
	size_t nbits;
};

#define BITMAP_WORDS(nbits) (((nbits) + 63) / 64)

/* Returns 0 or -ENOMEM; all bits clear. */
int bitmap_init(struct bitmap *bm, size_t nbits);
void bitmap_destroy(struct bitmap *bm);

static inline void bitmap_set(struct bitmap *bm, size_t bit)
{
	bm->words[bit / 64] |= UINT64_C(1) << (bit % 64);
}

static inline void bitmap_clear(struct bitmap *bm, size_t bit)
{
	bm->words[bit / 64] &= ~(UINT64_C(1) << (bit % 64));
}

static inline bool bitmap_test(const struct bitmap *bm, size_t bit)
{
	return (bm->words[bit / 64] >> (bit % 64)) & 1;
}

void bitmap_zero(struct bitmap *bm);
size_t bitmap_count(const struct bitmap *bm);
/* First set bit at or after from, or bm->nbits if none. */
size_t bitmap_next_set(const struct bitmap *bm, size_t from);
/* dst |= src; both the same size. */
void bitmap_or(struct bitmap *dst, const struct bitmap *src);

#endif
