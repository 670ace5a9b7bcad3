/* disk: writes sequence-numbered 4 KiB blocks round-robin through the block
 * device (one per millisecond, FUA) and records the last sequence number in
 * memory only after the write completed. Whenever it finds itself resumed on
 * another host it checks that disk and memory agree: the block of the last
 * recorded sequence holds it, and the next block does not hold a newer one.
 * The mailbox at the start of the heap publishes the counts for tests. */
#include <stdbool.h>

#include "vmm/guest/rt.h"

struct mailbox {
	uint64_t magic;
	uint64_t seq;      /* last write known durable */
	uint64_t checks;   /* consistency checks done */
	uint64_t mismatch; /* checks that failed */
	uint64_t errors;   /* block requests that failed */
	uint64_t failed;   /* the last write that failed */
};

struct block {
	uint64_t magic;
	uint64_t seq;
	uint8_t fill[4096 - 16];
};

#define MAGIC UINT64_C(0x4b534944) /* "DISK" */

static struct havm_blk_req req;
static struct block blk __attribute__((aligned(4096)));

static int blk_io(uint32_t op, uint64_t off, uint32_t flags)
{
	req.op = op;
	req.offset = off;
	req.buf = (uint64_t)(uintptr_t)&blk;
	req.len = sizeof(blk);
	req.flags = flags;
	req.status = 1;
	outl(HAVM_PORT_BLK, (uint32_t)(uintptr_t)&req);
	return req.status;
}

static void check(volatile struct mailbox *mb, uint64_t nblocks)
{
	uint64_t s = mb->seq, here = 0, next = 0;
	bool ok = true;

	if (s && (blk_io(HAVM_BLK_READ, (s % nblocks) * 4096, 0) != 0 || blk.magic != MAGIC ||
		  blk.seq != s))
		ok = false; /* the disk is behind memory */
	here = blk.magic == MAGIC ? blk.seq : 0;
	if (nblocks > 1 && blk_io(HAVM_BLK_READ, ((s + 1) % nblocks) * 4096, 0) == 0 &&
	    blk.magic == MAGIC) {
		next = blk.seq;
		/* The disk is ahead of memory, unless by the one write that was
		 * issued but failed: like any disk, a failed write may land. */
		if (next > s && !(next == s + 1 && mb->failed == s + 1))
			ok = false;
	}
	mb->checks++;
	if (!ok)
		mb->mismatch++;
	rt_printf("disk: %s at sequence %llu (its block holds %llu, the next %llu)\n",
		  ok ? "disk and memory agree" : "MISMATCH", (unsigned long long)s,
		  (unsigned long long)here, (unsigned long long)next);
}

int guest_main(void)
{
	const volatile struct havm_bootinfo *bi = BOOTINFO;
	volatile struct mailbox *mb = (volatile struct mailbox *)(uintptr_t)bi->heap_start;
	uint64_t nblocks;

	req.op = HAVM_BLK_INFO;
	outl(HAVM_PORT_BLK, (uint32_t)(uintptr_t)&req);
	if (req.status != 0 || req.size < 4096) {
		rt_printf("disk: no usable disk (status %d)\n", req.status);
		return 1;
	}
	nblocks = req.size / 4096 < 1024 ? req.size / 4096 : 1024;
	mb->magic = MAGIC;
	rt_printf("disk: writing over %llu blocks\n", (unsigned long long)nblocks);
	for (;;) {
		uint64_t next = mb->seq + 1, start = rt_now_us();

		if (inl(HAVM_PORT_EVENTS) & HAVM_EV_MOVED)
			check(mb, nblocks);
		blk.magic = MAGIC;
		blk.seq = next;
		for (int i = 0; i < 8; i++)
			blk.fill[i] = (uint8_t)(next >> (8 * i));
		if (blk_io(HAVM_BLK_WRITE, (next % nblocks) * 4096, HAVM_BLK_FUA) == 0) {
			mb->seq = next;
		} else {
			mb->errors++;
			mb->failed = next;
		}
		uint64_t spent = rt_now_us() - start;
		if (spent < 1000)
			rt_idle_us((uint32_t)(1000 - spent));
	}
}
