/* disk: writes sequence-numbered 4 KiB blocks round-robin through the block
 * device, one per millisecond, and checks disk against memory whenever it
 * finds itself resumed on another host (diskseq.h). Its state, at the start
 * of the heap, publishes the counts for tests. */
#include "vmm/guest/diskseq.h"
#include "vmm/guest/rt.h"

int guest_main(void)
{
	const volatile struct havm_bootinfo *bi = BOOTINFO;
	volatile struct diskseq *d = (volatile struct diskseq *)(uintptr_t)bi->heap_start;

	if (!diskseq_init(d, true))
		return 1;
	for (;;) {
		uint64_t start = rt_now_us();

		diskseq_step(d, inl(HAVM_PORT_EVENTS) & HAVM_EV_MOVED);
		uint64_t spent = rt_now_us() - start;
		if (spent < 1000)
			rt_idle_us((uint32_t)(1000 - spent));
	}
}
