/* Guest network stack: Ethernet II, ARP, IPv4 (no options, no fragments),
 * ICMP echo and UDP, for the freestanding test guests.
 *
 * Freestanding: it uses only <stdint.h>, <stddef.h>, <stdbool.h> and the
 * memcpy/memset/memcmp that the guest runtime provides (libc's on the host,
 * where the unit tests run it). No allocation: all state is in struct gnet,
 * which lives in guest memory and is therefore checkpointed with it.
 * Addresses and ports are in host byte order in this API.
 */
#ifndef HA_VMM_GUEST_GNET_H
#define HA_VMM_GUEST_GNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GNET_FRAME_MAX 1514 /* Ethernet header + 1500 bytes, no FCS */
#define GNET_UDP_MAX (1500 - 20 - 8)
#define GNET_ARP_SLOTS 16
#define GNET_UDP_BINDS 4

/* Errors returned as negative values. */
#define GNET_EINVAL 1  /* bad argument (size, port) */
#define GNET_ENOENT 2  /* no free slot / nothing bound */
#define GNET_EAGAIN 3  /* destination MAC unknown: an ARP request was sent */

struct gnet;

/* Transmit one complete Ethernet frame (no FCS). */
typedef void (*gnet_tx_fn)(void *ctx, const void *frame, size_t len);
/* A UDP datagram arrived for a bound port. */
typedef void (*gnet_udp_fn)(void *ctx, struct gnet *n, uint32_t src_ip, uint16_t src_port,
			    uint16_t dst_port, const void *data, size_t len);

struct gnet_stats {
	uint64_t rx_frames;
	uint64_t rx_dropped; /* malformed, wrong checksum, not for us */
	uint64_t tx_frames;
	uint64_t arp_replies;
	uint64_t icmp_echo;
	uint64_t udp_in;
	uint64_t udp_out;
	uint64_t udp_unbound;
};

struct gnet_arp_entry {
	uint32_t ip;
	uint8_t mac[6];
	bool valid;
	uint64_t used; /* for LRU replacement */
};

struct gnet_udp_bind {
	uint16_t port;
	gnet_udp_fn fn;
	void *ctx;
};

struct gnet {
	uint8_t mac[6];
	uint32_t ip;
	uint32_t netmask;
	uint32_t gateway; /* 0: none; off-link destinations are then unreachable */
	gnet_tx_fn tx;
	void *tx_ctx;
	struct gnet_arp_entry arp[GNET_ARP_SLOTS];
	struct gnet_udp_bind udp[GNET_UDP_BINDS];
	struct gnet_stats stats;
	uint64_t clock; /* bumped per input; orders the ARP cache */
	uint16_t ip_id;
	uint8_t txbuf[GNET_FRAME_MAX];
};

void gnet_init(struct gnet *n, const uint8_t mac[6], uint32_t ip, uint32_t netmask,
	       uint32_t gateway, gnet_tx_fn tx, void *tx_ctx);
/* Processes one received frame: answers ARP and ICMP echo, learns the
 * sender's MAC, delivers UDP to bound ports. Never trusts the frame. */
void gnet_input(struct gnet *n, const void *frame, size_t len);
/* Returns 0 or -GNET_E*. */
int gnet_udp_bind(struct gnet *n, uint16_t port, gnet_udp_fn fn, void *ctx);
/* Returns 0 or -GNET_E* (-GNET_EAGAIN: MAC unknown, ARP request sent). */
int gnet_udp_send(struct gnet *n, uint32_t dst_ip, uint16_t src_port, uint16_t dst_port,
		  const void *data, size_t len);
/* Gratuitous ARP announcing our IP and MAC (after boot and after failover). */
void gnet_announce(struct gnet *n);

#endif
