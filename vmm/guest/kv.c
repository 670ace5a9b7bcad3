/* kv: the UDP key-value store of svc.h on port 7001, its table in the heap
 * (--arg 0=SLOTS, default 16384). Its writes dirty pages in proportion to
 * load: the benchmark workload. */
#include "vmm/guest/gnet.h"
#include "vmm/guest/rt.h"
#include "vmm/guest/svc.h"

static struct gnet net;
static struct svc_kv kv;
static char reply[SVC_REPLY_MAX];

static void tx(void *ctx, const void *frame, size_t len)
{
	memcpy((void *)(uintptr_t)HAVM_GPA_NIC_TX, frame, len);
	outl(HAVM_PORT_NIC_TX, (uint32_t)len);
}

static void on_request(void *ctx, struct gnet *n, uint32_t src_ip, uint16_t src_port,
		       uint16_t dst_port, const void *data, size_t len)
{
	size_t r = svc_kv_handle(&kv, data, len, reply, sizeof(reply));

	if (r)
		gnet_udp_send(n, src_ip, dst_port, src_port, reply, r);
}

int guest_main(void)
{
	const volatile struct havm_bootinfo *bi = BOOTINFO;
	uint64_t slots = bi->arg[0] ? bi->arg[0] : 16384;
	uint8_t mac[6];

	if (svc_kv_table_bytes(slots) > bi->mem_bytes - bi->heap_start) {
		rt_printf("kv: %llu slots do not fit in memory\n", (unsigned long long)slots);
		return 1;
	}
	for (int i = 0; i < 6; i++)
		mac[i] = bi->mac[i];
	svc_kv_init(&kv, (void *)(uintptr_t)bi->heap_start, slots);
	gnet_init(&net, mac, bi->ip, bi->netmask, bi->gateway, tx, NULL);
	gnet_udp_bind(&net, SVC_KV_PORT, on_request, NULL);
	rt_printf("kv: %llu slots, up on port %u\n", (unsigned long long)slots, SVC_KV_PORT);
	gnet_announce(&net);
	for (;;) {
		uint32_t len;

		if (inl(HAVM_PORT_EVENTS) & HAVM_EV_MOVED)
			gnet_announce(&net);
		len = inl(HAVM_PORT_NIC_RX);
		if (len) {
			gnet_input(&net, (const void *)(uintptr_t)HAVM_GPA_NIC_RX, len);
			continue;
		}
		rt_idle_us(200000);
	}
}
