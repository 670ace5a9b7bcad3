/* counter: the UDP counter service of svc.h on port 7000. The failover
 * tests judge by it: every increment a client saw acknowledged must survive. */
#include "vmm/guest/gnet.h"
#include "vmm/guest/rt.h"
#include "vmm/guest/svc.h"

static struct gnet net;
static struct svc_counter counter;
static char reply[SVC_REPLY_MAX];

static void tx(void *ctx, const void *frame, size_t len)
{
	memcpy((void *)(uintptr_t)HAVM_GPA_NIC_TX, frame, len);
	outl(HAVM_PORT_NIC_TX, (uint32_t)len);
}

static void on_request(void *ctx, struct gnet *n, uint32_t src_ip, uint16_t src_port,
		       uint16_t dst_port, const void *data, size_t len)
{
	size_t r = svc_counter_handle(&counter, data, len, reply, sizeof(reply));

	if (r)
		gnet_udp_send(n, src_ip, dst_port, src_port, reply, r);
}

int guest_main(void)
{
	const volatile struct havm_bootinfo *bi = BOOTINFO;
	uint8_t mac[6];
	uint64_t last_report = 0;

	for (int i = 0; i < 6; i++)
		mac[i] = bi->mac[i];
	svc_counter_init(&counter);
	gnet_init(&net, mac, bi->ip, bi->netmask, bi->gateway, tx, NULL);
	gnet_udp_bind(&net, SVC_COUNTER_PORT, on_request, NULL);
	rt_printf("counter: up on %u.%u.%u.%u:%u\n", bi->ip >> 24, (bi->ip >> 16) & 255,
		  (bi->ip >> 8) & 255, bi->ip & 255, SVC_COUNTER_PORT);
	gnet_announce(&net);
	for (;;) {
		uint32_t len;

		if (inl(HAVM_PORT_EVENTS) & HAVM_EV_MOVED) {
			rt_printf("counter: resumed on a new host at value %llu; announcing\n",
				  (unsigned long long)counter.value);
			gnet_announce(&net);
		}
		len = inl(HAVM_PORT_NIC_RX);
		if (len) {
			gnet_input(&net, (const void *)(uintptr_t)HAVM_GPA_NIC_RX, len);
			continue;
		}
		uint64_t now = rt_now_us();
		if (now - last_report > 5000000) {
			rt_printf("counter: value %llu after %llu requests\n",
				  (unsigned long long)counter.value,
				  (unsigned long long)counter.requests);
			last_report = now;
		}
		rt_idle_us(200000);
	}
}
