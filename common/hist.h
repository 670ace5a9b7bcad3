/* A log-linear histogram of non-negative integers (latencies in us):
 * exact below 16, then 8 buckets per power of two (at most 12.5% wide),
 * up to 2^40. Fixed size, no allocation; not thread-safe (callers lock). */
#ifndef HA_COMMON_HIST_H
#define HA_COMMON_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_BUCKETS (16 + 36 * 8)

struct hist {
	uint64_t count;
	uint64_t min, max; /* exact, of the samples added */
	uint64_t n[HIST_BUCKETS];
};

void hist_add(struct hist *h, uint64_t v);
/* The value below which a share q (0..1) of the samples lie, as the
 * bucket's midpoint kept within the samples' exact min and max (so a p99
 * never exceeds the max); 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);
/* The samples known to be at most le: those in buckets that end at or
 * below it (a bucket le splits is left out), for Prometheus' cumulative
 * buckets. */
uint64_t hist_count_le(const struct hist *h, uint64_t le);
/* Writes "MID:COUNT MID:COUNT ..." for the non-empty buckets (MID: the
 * bucket's midpoint), for tools that difference two snapshots. Returns the
 * length snprintf would have written. */
int hist_format(const struct hist *h, char *buf, size_t len);

#endif
