/* The primary's change bitmap on disk (ha-diskrepl --bitmap FILE): which
 * chunks of the image the secondary's replica may lack, kept across a
 * restart of ha-diskrepl or a reboot of the primary, so that the next
 * protection resynchronises those chunks only, as DRBD's bitmap does.
 *
 * The rule that makes it crash-safe: a chunk's bit is set in the file,
 * durably, before the image is written there (dirtylog_mark), and bits are
 * cleared only by rewriting the whole set with one that still covers every
 * chunk the replica may lack (dirtylog_rewrite). So whenever the process
 * or the host dies, the file's bits are a superset of the truth. A torn
 * rewrite mixes two supersets, still one. The header says whether the
 * replica holds a complete base of the current lineage (source.h); a
 * damaged header, or one written for another image, size or chunk size,
 * means "no base": the next protection copies the whole disk.
 *
 * File: a 4 KiB header (magic "HADRLBM1", version, flags, chunk size,
 * image size, the image's identity, lineage, XXH3-64 checksum of the
 * header), then one bit per chunk in 64-bit words, host byte order (the
 * file never leaves its host). It is written in place and fully allocated
 * when created, so marking a chunk never needs space.
 *
 * Not thread-safe: the source calls it under its mutex.
 */
#ifndef HA_DISKREPL_DIRTYLOG_H
#define HA_DISKREPL_DIRTYLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/bitmap.h"

struct dirtylog;

/* What the file said at open. */
struct dirtylog_base {
	bool known;		/* the replica holds a base of this lineage */
	uint8_t lineage[16];
	char why_not[160];	/* !known: why ("" for a new file) */
};

/* Opens or creates path for an image of size octets in chunks of chunk
 * octets; img identifies the image (fstat). The chunks marked in the file
 * are ORed into dirty (nbits = the number of chunks). Returns 0, or -errno
 * with err when the file cannot be used at all (not readable, not
 * writable, no space to create it). */
int dirtylog_open(const char *path, uint64_t size, uint32_t chunk, const struct stat *img,
		  struct bitmap *dirty, struct dirtylog_base *base, struct dirtylog **out,
		  char *err, size_t errlen);
void dirtylog_close(struct dirtylog *d);
/* Reads path without changing it (a failback: the old primary's file, its
 * ha-diskrepl stopped), for an image of size octets identified by img:
 * *chunk and *bits (initialised here: free with bitmap_destroy) as the
 * file has them, base as above. 0 when the file describes this image (its
 * base may still be unknown), -ESTALE with err when it does not, another
 * -errno when it cannot be read or is in use. */
int dirtylog_read(const char *path, uint64_t size, const struct stat *img, uint32_t *chunk,
		  struct bitmap *bits, struct dirtylog_base *base, char *err, size_t errlen);
const char *dirtylog_path(const struct dirtylog *d);

/* Sets chunks first..last in the file, durably, unless they are set
 * already (then it costs nothing). 0 or -errno. */
int dirtylog_mark(struct dirtylog *d, size_t first, size_t last);
/* Replaces the file's bits with cover (a superset of what the replica may
 * lack), durably. 0 or -errno. */
int dirtylog_rewrite(struct dirtylog *d, const struct bitmap *cover);
/* Records the lineage and whether the replica holds its complete base,
 * durably. 0 or -errno. */
int dirtylog_set_base(struct dirtylog *d, const uint8_t lineage[16], bool known);

#endif
