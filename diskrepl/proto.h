/* The local protocol between ha-protect and ha-diskrepl, over the UNIX
 * socket $HA_RUN_DIR/ha-diskrepl/NAME.sock (root or the owner only).
 *
 * ha-protect -> ha-diskrepl: fixed 24-octet commands (struct drl_cmd).
 *   ATTACH(disk, flags FULL)  start mirroring; FULL forces a complete copy.
 *                             It carries (SCM_RIGHTS) the write end of a
 *                             pipe: the barrier confirmations. With MARKS,
 *                             MARK commands follow, then MARK_END, before
 *                             the resynchronisation is planned.
 *   MARK(offset, count)       resynchronise [offset, offset + count * 4096)
 *                             too: chunks the replica asked for
 *                             (HA_DISK_NEED); marked as if written
 *   BARRIER(N)                the guest is paused at the end of epoch N:
 *                             writes so far belong to N. ha-diskrepl closes
 *                             the epoch and writes N (u64) to the pipe
 *                             before anything else can write; ha-protect
 *                             resumes the guest only after reading it, so
 *                             no write of epoch N+1 can land in epoch N.
 *                             (The record stream cannot carry this: it may
 *                             be queued behind writes the network is slow
 *                             to take.)
 *   COMMIT(N)                 the secondary acknowledged epoch N (after
 *                             BARRIER(N): a commit of an open epoch detaches)
 *   DETACH                    stop mirroring (changes are tracked again)
 *
 * ha-diskrepl -> ha-protect: stream records, framed as in the checkpoint
 * stream (u32 type, u32 length, body, zero padding to 8 octets), in the
 * order ha-protect must forward them:
 *   HA_DISK_CONFIG, then SYNC writes and guest writes (HA_DISK_WRITE) and
 *   HA_DISK_BARRIER(N) after each BARRIER command; DRL_REC_SYNCED (local,
 *   not forwarded) once the resynchronisation is complete; HA_ERROR when
 *   an ATTACH is refused.
 *
 * Hanging up is a DETACH. Host byte order (the socket is local).
 */
#ifndef HA_DISKREPL_PROTO_H
#define HA_DISKREPL_PROTO_H

#include <stdint.h>

enum drl_op {
	DRL_ATTACH = 1,
	DRL_BARRIER = 2,
	DRL_COMMIT = 3,
	DRL_DETACH = 4,
	DRL_MARK = 5,
	DRL_MARK_END = 6,
};

#define DRL_ATTACH_FULL 0x1u
#define DRL_ATTACH_MARKS 0x2u

struct drl_cmd {
	uint32_t op;
	uint32_t flags;
	uint64_t epoch; /* MARK: the range's offset, octets */
	uint32_t disk;	/* ATTACH: the index this disk has in the stream */
	uint32_t count; /* MARK: the range's length, in 4 KiB units */
};
_Static_assert(sizeof(struct drl_cmd) == 24, "diskrepl command size");

/* Local record: the resynchronisation is complete (body: u64 octets). */
#define DRL_REC_SYNCED 0x48417001u

struct drl_rec_hdr {
	uint32_t type;
	uint32_t length;
};
_Static_assert(sizeof(struct drl_rec_hdr) == 8, "diskrepl record header size");

#endif
