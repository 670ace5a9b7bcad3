/* The secondary's copy of one replicated disk: a replica image plus an
 * on-disk journal that makes it change only at checkpoint commits.
 *
 *   HA_DISK_WRITE (epoch N)  appended to the journal (not yet synced)
 *   HA_DISK_WRITE SYNC       resynchronisation data: straight to the image
 *                            (the replica is no failover target until the
 *                            first commit after a resync)
 *   HA_DISK_BARRIER (N)      every write of N has arrived (counted)
 *   replica_commit(N)        COMMIT(N) appended, journal fdatasync'd: the
 *                            disk part of ACK(N) may be sent
 *   replica_rollback(N)      memory could not commit N: COMMIT(N) is cut
 *                            off the journal again, fdatasync'd, before the
 *                            call returns (a crash after it never recovers N)
 *   replica_apply(N)         the journalled writes of epochs <= N are
 *                            written to the image, in stream order
 *   replica_failover()       uncommitted epochs dropped; the image is
 *                            exactly the last committed state, synced
 *
 * Opening a replica recovers its journal: writes of committed epochs are
 * applied again (idempotent, in order), the rest is dropped. A torn entry at
 * the tail (a crash mid-append) is dropped; a damaged entry followed by
 * valid ones is corruption and the open is refused without touching the
 * image. The journal header also records which primary image the replica
 * copies (source id) and whether a full copy ever completed, so that a
 * returning primary can resynchronise only what changed.
 *
 * All calls return 0 or -errno; replica_error() says what went wrong.
 */
#ifndef HA_DISKREPL_REPLICA_H
#define HA_DISKREPL_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint/stream_format.h"

struct replica;

struct replica_stats {
	uint64_t size;           /* octets, 0 before the first config */
	int64_t committed;       /* last committed epoch of this session, -1 none */
	uint64_t writes, write_bytes, sync_bytes, commits, compactions;
	uint64_t committed_writes; /* writes of epochs committed so far */
	uint64_t journal_bytes;  /* current journal size */
	uint64_t recovered_writes, dropped_writes; /* by the last open */
	bool base_complete;
};

/* Opens (creating if missing) the image and its journal (NULL: IMAGE.journal)
 * and recovers the journal. compact_bytes: journal size that triggers a
 * compaction after a commit (0: default 64 MiB). */
int replica_open(const char *image, const char *journal, uint64_t compact_bytes,
		 struct replica **out, char *err, size_t errlen);
void replica_close(struct replica *r);
const char *replica_error(const struct replica *r);
const char *replica_path(const struct replica *r);

/* Failback: the image is a primary's old image, whose ha-diskrepl kept
 * bitmap_path (--bitmap). If the journal holds no complete base, the
 * file's lineage is taken as this replica's, but for the chunks the file
 * marks: the image may hold writes there that the new primary never had
 * (of epochs its replica never committed), and replica_config asks for
 * them (-EAGAIN, replica_need) before it takes an incremental copy. 1 when
 * adopted; 0 when not (replica_error says why: the journal has a base, or
 * the file names another image, or no base); -errno when the file cannot
 * be read or is in use. */
int replica_adopt(struct replica *r, const char *bitmap_path);
/* The HA_DISK_NEED body for disk (malloc'd into *body, *len octets), or
 * -ENOENT when nothing was adopted. */
int replica_need(const struct replica *r, uint32_t disk, void **body, uint32_t *len);
/* The lineage of the replica's last commit, if it is a complete copy of
 * it (before replica_failover, which forgets it): true with out set. */
bool replica_lineage(const struct replica *r, uint8_t out[16]);

/* A session begins (HA_DISK_CONFIG): sizes the image, checks that an
 * incremental resync has a matching base, forgets uncommitted writes of an
 * earlier session. -ESTALE: a full resync is needed. -EAGAIN: an adopted
 * image's chunks must come too (replica_adopt). */
int replica_config(struct replica *r, const struct ckpt_ha_disk_config *c);
int replica_write(struct replica *r, const struct ckpt_ha_disk_write_hdr *h, const void *data);
int replica_barrier(struct replica *r, const struct ckpt_ha_disk_barrier *b);
/* One disk record of the stream (HA_DISK_CONFIG, _WRITE or _BARRIER) by
 * its type: the calls above. -EPROTO for another type. */
int replica_take(struct replica *r, uint32_t type, const uint8_t *body);
/* Makes epoch durable (needs its barrier; epochs only go forward). All or
 * nothing: on error the epoch is not committed, in memory or journal. */
int replica_commit(struct replica *r, uint64_t epoch);
/* Takes back the last commit, whose memory could not be committed, before
 * any replica_apply: the epoch is uncommitted again, and durably so when
 * this returns 0 (its writes stay journalled, uncommitted). The first
 * commit of a full copy also takes back the mark of a complete copy.
 * Returns 0 too when epoch is not committed (its commit failed); -EBUSY
 * when it is already in the image; -EINVAL when it is not the last
 * commit. Another -errno: the journal could not be rewritten and may still
 * say the epoch committed (replica_error says what to do); the epoch is
 * uncommitted in memory, and replica_failover or the next replica_config
 * rewrites the journal. */
int replica_rollback(struct replica *r, uint64_t epoch);
/* Writes committed epochs into the image; may compact the journal. */
int replica_apply(struct replica *r);
/* Drops everything uncommitted and syncs the image: it is now exactly the
 * last committed state, ready for the domain to use. The domain will
 * change it, so it stops being a base for an incremental resync. */
int replica_failover(struct replica *r);
/* True once the stream has sent all resync data and the first barrier. */
bool replica_ready(const struct replica *r);
void replica_get_stats(const struct replica *r, struct replica_stats *st);

#endif
