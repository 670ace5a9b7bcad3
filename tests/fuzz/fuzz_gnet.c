/* libFuzzer harness: the guests' network stack and services on arbitrary
 * frames (the first octet picks a service for UDP payloads). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vmm/guest/gnet.h"
#include "vmm/guest/svc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct svc_counter counter;
static struct svc_kv kv;
static uint8_t kv_mem[64 * 400];

static void tx(void *ctx, const void *f, size_t len)
{
	(void)ctx;
	(void)f;
	(void)len;
}

static void on_udp(void *ctx, struct gnet *n, uint32_t src, uint16_t sport, uint16_t dport,
		   const void *d, size_t len)
{
	char r[SVC_REPLY_MAX];
	size_t out = dport == 7000 ? svc_counter_handle(&counter, d, len, r, sizeof(r))
				   : svc_kv_handle(&kv, d, len, r, sizeof(r));

	if (out)
		gnet_udp_send(n, src, dport, sport, r, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct gnet net;
	static const uint8_t mac[6] = {0x52, 0x54, 0, 0, 0, 1};

	if (!kv.nslots) {
		svc_counter_init(&counter);
		svc_kv_init(&kv, kv_mem, 64);
	}
	gnet_init(&net, mac, 0x0a000001u, 0xffffff00u, 0x0a0000feu, tx, NULL);
	gnet_udp_bind(&net, 7000, on_udp, NULL);
	gnet_udp_bind(&net, 7001, on_udp, NULL);
	gnet_input(&net, data, size);
	/* Also straight into the services. */
	char r[SVC_REPLY_MAX];
	svc_counter_handle(&counter, data, size, r, sizeof(r));
	svc_kv_handle(&kv, data, size, r, sizeof(r));
	return 0;
}
