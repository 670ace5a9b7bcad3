/* kv: the UDP key-value store of svc.h on port 7001, its table in the heap
 * (--arg 0=SLOTS, default 16384). Its writes dirty pages in proportion to
 * load: the benchmark workload. */
#include "vmm/guest/netsvc.h"
#include "vmm/guest/rt.h"
#include "vmm/guest/svc.h"

static struct svc_kv kv;

static size_t handle(void *ctx, const void *req, size_t len, char *reply, size_t cap)
{
	return svc_kv_handle(&kv, req, len, reply, cap);
}

static void report(void *ctx)
{
	rt_printf("kv: %llu keys, %llu puts, %llu gets\n", (unsigned long long)kv.used,
		  (unsigned long long)kv.puts, (unsigned long long)kv.gets);
}

int guest_main(void)
{
	const volatile struct havm_bootinfo *bi = BOOTINFO;
	uint64_t slots = bi->arg[0] ? bi->arg[0] : 16384;

	if (svc_kv_table_bytes(slots) > bi->mem_bytes - bi->heap_start) {
		rt_printf("kv: %llu slots do not fit in memory\n", (unsigned long long)slots);
		return 1;
	}
	svc_kv_init(&kv, (void *)(uintptr_t)bi->heap_start, slots);
	netsvc_run(SVC_KV_PORT, handle, NULL, report, NULL);
}
