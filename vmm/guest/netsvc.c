/* The network guests' main loop (see netsvc.h). */
#include "vmm/guest/netsvc.h"

#include "vmm/guest/gnet.h"
#include "vmm/guest/rt.h"
#include "vmm/guest/svc.h"

static struct gnet net;
static char reply[SVC_REPLY_MAX];
static netsvc_fn handler;
static void *handler_ctx;

static void tx(void *ctx, const void *frame, size_t len)
{
	memcpy((void *)(uintptr_t)HAVM_GPA_NIC_TX, frame, len);
	outl(HAVM_PORT_NIC_TX, (uint32_t)len);
}

static void on_request(void *ctx, struct gnet *n, uint32_t src_ip, uint16_t src_port,
		       uint16_t dst_port, const void *data, size_t len)
{
	size_t r = handler(handler_ctx, data, len, reply, sizeof(reply));

	if (r)
		gnet_udp_send(n, src_ip, dst_port, src_port, reply, r);
}

void netsvc_run(uint16_t port, netsvc_fn fn, void *ctx, void (*report)(void *ctx),
		void (*tick)(void *ctx, bool moved))
{
	const volatile struct havm_bootinfo *bi = BOOTINFO;
	uint8_t mac[6];
	uint64_t last_report = 0, last_tick = 0;

	for (int i = 0; i < 6; i++)
		mac[i] = bi->mac[i];
	handler = fn;
	handler_ctx = ctx;
	gnet_init(&net, mac, bi->ip, bi->netmask, bi->gateway, tx, NULL);
	gnet_udp_bind(&net, port, on_request, NULL);
	rt_printf("%s: up on %u.%u.%u.%u:%u\n", (const char *)bi->name, bi->ip >> 24,
		  (bi->ip >> 16) & 255, (bi->ip >> 8) & 255, bi->ip & 255, port);
	gnet_announce(&net);
	for (;;) {
		bool moved = inl(HAVM_PORT_EVENTS) & HAVM_EV_MOVED;
		uint64_t now = rt_now_us();
		uint32_t len;

		if (moved) {
			rt_printf("%s: resumed on a new host; announcing\n", (const char *)bi->name);
			gnet_announce(&net);
		}
		if (tick && (moved || now - last_tick >= 1000)) {
			tick(ctx, moved);
			last_tick = now;
		}
		len = inl(HAVM_PORT_NIC_RX);
		if (len) {
			gnet_input(&net, (const void *)(uintptr_t)HAVM_GPA_NIC_RX, len);
			continue;
		}
		if (report && now - last_report > 5000000) {
			report(ctx);
			last_report = now;
		}
		rt_idle_us(tick ? 1000 : 200000);
	}
}
