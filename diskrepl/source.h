/* The primary's replicated disk: a local image served to the guest (through
 * nbdsrv) whose writes are mirrored, epoch by epoch, to whoever is attached
 * (ha-protect, which forwards them into the checkpoint stream).
 *
 * One mutex orders everything that changes the image or the mirror: a
 * guest write is applied locally and emitted before it is acknowledged, so
 * the record order is the order the guest saw. Writes of epoch N are those
 * emitted between BARRIER(N-1) and BARRIER(N).
 *
 * Change tracking: while nothing is attached, written chunks are marked in
 * a bitmap; while attached, the writes of unacknowledged epochs are kept as
 * extents and folded into the bitmap if the attachment ends. A new
 * attachment resynchronises the marked chunks (incremental), or every chunk
 * (full: the first one, or when asked) under a new lineage id that the
 * secondary's replica records, so that an incremental resync is only ever
 * applied on top of the exact base it extends.
 */
#ifndef HA_DISKREPL_SOURCE_H
#define HA_DISKREPL_SOURCE_H

#include <stdint.h>
#include <stdio.h>

#include "diskrepl/nbdsrv.h"

struct source;

/* chunk: resync granularity in octets (power of two, >= 4096).
 * bitmap_path: where the change bitmap is kept across restarts
 * (dirtylog.h); NULL: in memory only, so every start copies the whole
 * disk. lineage: the image is a complete copy of this lineage (16 octets)
 * as it stands, so that a replica that holds it too needs only what
 * changes from now (a replica served after its activation: failback);
 * NULL: what the bitmap file says, or no base. */
int source_open(const char *image, uint32_t chunk, const char *bitmap_path,
		const uint8_t *lineage, struct source **out, char *err, size_t errlen);
void source_close(struct source *s);
uint64_t source_size(const struct source *s);

/* The NBD backend; ctx is the source. */
extern const struct nbdsrv_ops source_nbd_ops;

/* Serves one attachment on fd (ha-protect's connection) until it detaches
 * or hangs up; the caller closes fd. Returns 0 or -errno. */
int source_attach(struct source *s, int fd);

/* At a clean stop: rewrites the bitmap file (if any) to what the replica
 * lacks now, so that the next start resynchronises no more than that. */
void source_save(struct source *s);

/* Status lines (state, sync progress, counters) for ha-ctl. */
void source_status(struct source *s, FILE *out);
/* The same for machines (common/report.h). */
struct report;
void source_report(struct source *s, struct report *r);

#endif
