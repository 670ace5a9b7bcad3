/* dirty: dirties arg0 pages per millisecond over a working set of arg1
 * pages (from the heap), writing the pass number into each page it touches.
 * A mailbox at the start of the heap holds the pass number and the page
 * count, so tests can check the dirty-log invariant from outside.
 *
 * It checks its own memory as it goes: a page about to get pass P must
 * hold P - 1 (the pass before wrote it; 0 in the first), so a page that a
 * migration or a failover lost, zeroed or left stale is counted (bad) and
 * reported, wherever the guest runs on. */
#include "vmm/guest/rt.h"

struct mailbox {
	uint64_t magic;
	uint64_t pass;
	uint64_t writes;
	uint64_t working_set;
	uint64_t bad;
};

#define MAILBOX_MAGIC UINT64_C(0x5954524944) /* "DIRTY" */

int guest_main(void)
{
	const volatile struct havm_bootinfo *bi = BOOTINFO;
	volatile struct mailbox *mb = (volatile struct mailbox *)(uintptr_t)bi->heap_start;
	uint8_t *ws = (uint8_t *)(uintptr_t)(bi->heap_start + 4096);
	uint64_t per_ms = bi->arg[0] ? bi->arg[0] : 100;
	uint64_t pages = (bi->mem_bytes - bi->heap_start - 4096) / 4096;
	uint64_t next = 0, t0 = rt_now_us(), last_report = t0;

	if (bi->arg[1] && bi->arg[1] < pages)
		pages = bi->arg[1];
	mb->working_set = pages;
	mb->pass = 1;
	mb->magic = MAILBOX_MAGIC;
	rt_printf("dirty: %llu pages per ms over %llu pages\n", (unsigned long long)per_ms,
		  (unsigned long long)pages);
	for (;;) {
		uint64_t start = rt_now_us();

		for (uint64_t i = 0; i < per_ms; i++) {
			volatile uint64_t *w = (volatile uint64_t *)(ws + next * 4096);
			uint64_t was = *w;

			if (was != mb->pass - 1 && mb->bad++ < 4)
				rt_printf("dirty: BAD page %llu holds pass %llu, not %llu\n",
					  (unsigned long long)next, (unsigned long long)was,
					  (unsigned long long)(mb->pass - 1));
			*w = mb->pass;
			mb->writes++;
			if (++next == pages) {
				next = 0;
				mb->pass++;
			}
		}
		if (start - last_report >= 5000000) {
			rt_printf("dirty: pass %llu, %llu writes, %llu bad\n",
				  (unsigned long long)mb->pass, (unsigned long long)mb->writes,
				  (unsigned long long)mb->bad);
			last_report = start;
		}
		/* Sleep out the rest of the millisecond in the VMM, not on a core. */
		uint64_t spent = rt_now_us() - start;
		if (spent < 1000)
			rt_idle_us((uint32_t)(1000 - spent));
	}
}
