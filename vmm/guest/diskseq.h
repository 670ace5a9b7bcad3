/* Sequence-numbered 4 KiB blocks written round-robin through the block
 * device (FUA), the last sequence recorded in memory only after its write
 * completed. Whenever the guest finds itself resumed on another host it
 * checks that disk and memory agree: the block of the last recorded
 * sequence holds it, and the next block does not hold a newer one. The
 * disk guest runs only this; the counter guest runs it beside its service
 * when it has a disk. */
#ifndef HA_VMM_GUEST_DISKSEQ_H
#define HA_VMM_GUEST_DISKSEQ_H

#include <stdbool.h>
#include <stdint.h>

/* The state, in guest memory (the disk guest publishes it at the start of
 * its heap for tests). */
struct diskseq {
	uint64_t magic;
	uint64_t seq;      /* last write known durable */
	uint64_t checks;   /* consistency checks done */
	uint64_t mismatch; /* checks that failed */
	uint64_t errors;   /* block requests that failed */
	uint64_t failed;   /* the last write that failed */
	uint64_t nblocks;  /* blocks written round-robin */
};

/* false when the guest has no usable disk (said on the console if NEED). */
bool diskseq_init(volatile struct diskseq *d, bool need);
/* One write of the next sequence; first a check if MOVED (the guest runs
 * on another host since the last step). */
void diskseq_step(volatile struct diskseq *d, bool moved);

#endif
