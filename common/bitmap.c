#include "common/bitmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int bitmap_init(struct bitmap *bm, size_t nbits)
{
	bm->nbits = nbits;
	bm->words = calloc(BITMAP_WORDS(nbits) ? BITMAP_WORDS(nbits) : 1, sizeof(uint64_t));
	return bm->words ? 0 : -ENOMEM;
}

void bitmap_destroy(struct bitmap *bm)
{
	free(bm->words);
	bm->words = NULL;
	bm->nbits = 0;
}

void bitmap_zero(struct bitmap *bm)
{
	memset(bm->words, 0, BITMAP_WORDS(bm->nbits) * sizeof(uint64_t));
}

size_t bitmap_count(const struct bitmap *bm)
{
	size_t n = 0;

	for (size_t i = 0; i < BITMAP_WORDS(bm->nbits); i++)
		n += (size_t)__builtin_popcountll(bm->words[i]);
	return n;
}

size_t bitmap_next_set(const struct bitmap *bm, size_t from)
{
	if (from >= bm->nbits)
		return bm->nbits;

	size_t w = from / 64;
	uint64_t word = bm->words[w] & (~UINT64_C(0) << (from % 64));

	for (;;) {
		if (word) {
			size_t bit = w * 64 + (size_t)__builtin_ctzll(word);
			return bit < bm->nbits ? bit : bm->nbits;
		}
		if (++w >= BITMAP_WORDS(bm->nbits))
			return bm->nbits;
		word = bm->words[w];
	}
}

void bitmap_or(struct bitmap *dst, const struct bitmap *src)
{
	for (size_t i = 0; i < BITMAP_WORDS(dst->nbits); i++)
		dst->words[i] |= src->words[i];
}
