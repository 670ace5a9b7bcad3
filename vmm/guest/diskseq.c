/* Sequence-numbered blocks on the guest's disk: diskseq.h. */
#include "vmm/guest/diskseq.h"

#include "vmm/guest/rt.h"

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

static void check(volatile struct diskseq *d)
{
	uint64_t s = d->seq, n = d->nblocks, here = 0, next = 0;
	bool ok = true;

	if (s && (blk_io(HAVM_BLK_READ, (s % n) * 4096, 0) != 0 || blk.magic != MAGIC ||
		  blk.seq != s))
		ok = false; /* the disk is behind memory */
	here = blk.magic == MAGIC ? blk.seq : 0;
	if (n > 1 && blk_io(HAVM_BLK_READ, ((s + 1) % n) * 4096, 0) == 0 && blk.magic == MAGIC) {
		next = blk.seq;
		/* The disk is ahead of memory, unless by the one write that was
		 * issued but failed: like any disk, a failed write may land. */
		if (next > s && !(next == s + 1 && d->failed == s + 1))
			ok = false;
	}
	d->checks++;
	if (!ok)
		d->mismatch++;
	rt_printf("disk: %s at sequence %llu (its block holds %llu, the next %llu)\n",
		  ok ? "disk and memory agree" : "MISMATCH", (unsigned long long)s,
		  (unsigned long long)here, (unsigned long long)next);
}

bool diskseq_init(volatile struct diskseq *d, bool need)
{
	req.op = HAVM_BLK_INFO;
	outl(HAVM_PORT_BLK, (uint32_t)(uintptr_t)&req);
	if (req.status != 0 || req.size < 4096) {
		if (need)
			rt_printf("disk: no usable disk (status %d)\n", req.status);
		return false;
	}
	d->nblocks = req.size / 4096 < 1024 ? req.size / 4096 : 1024;
	d->magic = MAGIC;
	rt_printf("disk: writing over %llu blocks\n", (unsigned long long)d->nblocks);
	return true;
}

void diskseq_step(volatile struct diskseq *d, bool moved)
{
	uint64_t next = d->seq + 1;

	if (moved)
		check(d);
	blk.magic = MAGIC;
	blk.seq = next;
	for (int i = 0; i < 8; i++)
		blk.fill[i] = (uint8_t)(next >> (8 * i));
	if (blk_io(HAVM_BLK_WRITE, (next % d->nblocks) * 4096, HAVM_BLK_FUA) == 0) {
		d->seq = next;
	} else {
		d->errors++;
		d->failed = next;
	}
}
