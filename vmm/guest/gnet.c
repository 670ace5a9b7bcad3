/* Guest network stack (see gnet.h). Every length is checked before it is
 * read: frames come from the outside world. */
#include "vmm/guest/gnet.h"

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define IP_HLEN 20
#define UDP_HLEN 8
#define ICMP_HLEN 8

static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Internet checksum over len octets, starting from sum. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static uint32_t udp_pseudo(uint32_t src, uint32_t dst, uint16_t len)
{
	uint8_t ph[12];

	put32(ph, src);
	put32(ph + 4, dst);
	ph[8] = 0;
	ph[9] = 17;
	put16(ph + 10, len);
	return csum_add(0, ph, sizeof(ph));
}

void gnet_init(struct gnet *n, const uint8_t mac[6], uint32_t ip, uint32_t netmask,
	       uint32_t gateway, gnet_tx_fn tx, void *tx_ctx)
{
	__builtin_memset(n, 0, sizeof(*n));
	__builtin_memcpy(n->mac, mac, 6);
	n->ip = ip;
	n->netmask = netmask;
	n->gateway = gateway;
	n->tx = tx;
	n->tx_ctx = tx_ctx;
}

static void send_frame(struct gnet *n, size_t len)
{
	n->stats.tx_frames++;
	n->tx(n->tx_ctx, n->txbuf, len);
}

static void arp_learn(struct gnet *n, uint32_t ip, const uint8_t mac[6])
{
	struct gnet_arp_entry *victim = &n->arp[0];

	if (ip == 0 || (mac[0] & 1))
		return;
	for (int i = 0; i < GNET_ARP_SLOTS; i++) {
		struct gnet_arp_entry *e = &n->arp[i];

		if (e->valid && e->ip == ip) {
			__builtin_memcpy(e->mac, mac, 6);
			e->used = n->clock;
			return;
		}
		if (!e->valid)
			victim = e;
		else if (victim->valid && e->used < victim->used)
			victim = e;
	}
	victim->valid = true;
	victim->ip = ip;
	__builtin_memcpy(victim->mac, mac, 6);
	victim->used = n->clock;
}

static const uint8_t *arp_lookup(struct gnet *n, uint32_t ip)
{
	for (int i = 0; i < GNET_ARP_SLOTS; i++)
		if (n->arp[i].valid && n->arp[i].ip == ip) {
			n->arp[i].used = n->clock;
			return n->arp[i].mac;
		}
	return NULL;
}

static void eth_header(struct gnet *n, const uint8_t *dst, uint16_t type)
{
	__builtin_memcpy(n->txbuf, dst, 6);
	__builtin_memcpy(n->txbuf + 6, n->mac, 6);
	put16(n->txbuf + 12, type);
}

static void arp_send(struct gnet *n, uint16_t op, const uint8_t *tha, uint32_t tpa,
		     const uint8_t *eth_dst)
{
	uint8_t *a = n->txbuf + ETH_HLEN;

	eth_header(n, eth_dst, ETH_P_ARP);
	put16(a, 1);          /* Ethernet */
	put16(a + 2, ETH_P_IP);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	__builtin_memcpy(a + 8, n->mac, 6);
	put32(a + 14, n->ip);
	__builtin_memcpy(a + 18, tha, 6);
	put32(a + 24, tpa);
	__builtin_memset(n->txbuf + ETH_HLEN + 28, 0, 60 - ETH_HLEN - 28);
	send_frame(n, 60);
}

void gnet_announce(struct gnet *n)
{
	static const uint8_t zero[6];

	if (!n->ip)
		return;
	/* A gratuitous ARP request: sender and target are both us. */
	arp_send(n, 1, zero, n->ip, bcast);
}

static void arp_input(struct gnet *n, const uint8_t *src_mac, const uint8_t *a, size_t len)
{
	uint16_t op;
	uint32_t spa, tpa;

	if (len < 28 || get16(a) != 1 || get16(a + 2) != ETH_P_IP || a[4] != 6 || a[5] != 4) {
		n->stats.rx_dropped++;
		return;
	}
	op = get16(a + 6);
	spa = get32(a + 14);
	tpa = get32(a + 24);
	arp_learn(n, spa, a + 8);
	if (op == 1 && n->ip && tpa == n->ip && spa != n->ip) {
		n->stats.arp_replies++;
		arp_send(n, 2, a + 8, spa, src_mac);
	}
}

/* Fills an IPv4 header for payload octets of protocol proto. */
static void ip_header(struct gnet *n, uint8_t *ip, uint32_t dst, uint8_t proto, size_t payload)
{
	ip[0] = 0x45;
	ip[1] = 0;
	put16(ip + 2, (uint16_t)(IP_HLEN + payload));
	put16(ip + 4, n->ip_id++);
	put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = proto;
	put16(ip + 10, 0);
	put32(ip + 12, n->ip);
	put32(ip + 16, dst);
	put16(ip + 10, csum_fold(csum_add(0, ip, IP_HLEN)));
}

static void icmp_input(struct gnet *n, const uint8_t *src_mac, uint32_t src, const uint8_t *p,
		       size_t len)
{
	uint8_t *ip = n->txbuf + ETH_HLEN, *icmp = ip + IP_HLEN;

	if (len < ICMP_HLEN || csum_fold(csum_add(0, p, len)) != 0) {
		n->stats.rx_dropped++;
		return;
	}
	if (p[0] != 8 || len > GNET_FRAME_MAX - ETH_HLEN - IP_HLEN)
		return; /* not an echo request */
	n->stats.icmp_echo++;
	eth_header(n, src_mac, ETH_P_IP);
	__builtin_memcpy(icmp, p, len);
	icmp[0] = 0; /* echo reply */
	put16(icmp + 2, 0);
	put16(icmp + 2, csum_fold(csum_add(0, icmp, len)));
	ip_header(n, ip, src, 1, len);
	send_frame(n, ETH_HLEN + IP_HLEN + len);
}

static void udp_input(struct gnet *n, uint32_t src, uint32_t dst, const uint8_t *u, size_t len)
{
	uint16_t ulen, sport, dport;

	if (len < UDP_HLEN || (ulen = get16(u + 4)) < UDP_HLEN || ulen > len) {
		n->stats.rx_dropped++;
		return;
	}
	if (get16(u + 6) && csum_fold(csum_add(udp_pseudo(src, dst, ulen), u, ulen)) != 0) {
		n->stats.rx_dropped++;
		return;
	}
	sport = get16(u);
	dport = get16(u + 2);
	for (int i = 0; i < GNET_UDP_BINDS; i++) {
		if (n->udp[i].fn && n->udp[i].port == dport) {
			n->stats.udp_in++;
			n->udp[i].fn(n->udp[i].ctx, n, src, sport, dport, u + UDP_HLEN,
				     ulen - UDP_HLEN);
			return;
		}
	}
	n->stats.udp_unbound++;
}

static void ip_input(struct gnet *n, const uint8_t *src_mac, const uint8_t *ip, size_t len)
{
	uint16_t total;
	uint32_t src, dst;

	if (len < IP_HLEN || ip[0] != 0x45 || (total = get16(ip + 2)) < IP_HLEN || total > len ||
	    csum_fold(csum_add(0, ip, IP_HLEN)) != 0 || (get16(ip + 6) & 0x3fff) != 0) {
		n->stats.rx_dropped++; /* options, bad length/checksum, fragments */
		return;
	}
	src = get32(ip + 12);
	dst = get32(ip + 16);
	if (!n->ip || dst != n->ip) {
		n->stats.rx_dropped++;
		return;
	}
	/* Replies go back to the MAC the request came from. */
	arp_learn(n, src, src_mac);
	if (ip[9] == 1)
		icmp_input(n, src_mac, src, ip + IP_HLEN, total - IP_HLEN);
	else if (ip[9] == 17)
		udp_input(n, src, dst, ip + IP_HLEN, total - IP_HLEN);
	else
		n->stats.rx_dropped++;
}

void gnet_input(struct gnet *n, const void *frame, size_t len)
{
	const uint8_t *f = frame;

	n->clock++;
	n->stats.rx_frames++;
	if (len < ETH_HLEN || len > GNET_FRAME_MAX + 4) {
		n->stats.rx_dropped++;
		return;
	}
	if (__builtin_memcmp(f, n->mac, 6) != 0 && __builtin_memcmp(f, bcast, 6) != 0) {
		n->stats.rx_dropped++;
		return;
	}
	switch (get16(f + 12)) {
	case ETH_P_ARP:
		arp_input(n, f + 6, f + ETH_HLEN, len - ETH_HLEN);
		break;
	case ETH_P_IP:
		ip_input(n, f + 6, f + ETH_HLEN, len - ETH_HLEN);
		break;
	default:
		n->stats.rx_dropped++;
		break;
	}
}

int gnet_udp_bind(struct gnet *n, uint16_t port, gnet_udp_fn fn, void *ctx)
{
	if (!port || !fn)
		return -GNET_EINVAL;
	for (int i = 0; i < GNET_UDP_BINDS; i++) {
		if (!n->udp[i].fn) {
			n->udp[i].port = port;
			n->udp[i].fn = fn;
			n->udp[i].ctx = ctx;
			return 0;
		}
	}
	return -GNET_ENOENT;
}

int gnet_udp_send(struct gnet *n, uint32_t dst_ip, uint16_t src_port, uint16_t dst_port,
		  const void *data, size_t len)
{
	uint8_t *ip = n->txbuf + ETH_HLEN, *u = ip + IP_HLEN;
	uint32_t hop = dst_ip;
	const uint8_t *mac;
	uint16_t sum;

	if (len > GNET_UDP_MAX || !dst_port || !n->ip)
		return -GNET_EINVAL;
	if ((dst_ip & n->netmask) != (n->ip & n->netmask)) {
		if (!n->gateway)
			return -GNET_EINVAL;
		hop = n->gateway;
	}
	mac = arp_lookup(n, hop);
	if (!mac) {
		static const uint8_t zero[6];

		arp_send(n, 1, zero, hop, bcast);
		return -GNET_EAGAIN;
	}
	eth_header(n, mac, ETH_P_IP);
	put16(u, src_port);
	put16(u + 2, dst_port);
	put16(u + 4, (uint16_t)(UDP_HLEN + len));
	put16(u + 6, 0);
	__builtin_memcpy(u + UDP_HLEN, data, len);
	sum = csum_fold(csum_add(udp_pseudo(n->ip, dst_ip, (uint16_t)(UDP_HLEN + len)), u,
				 UDP_HLEN + len));
	put16(u + 6, sum ? sum : 0xffff);
	ip_header(n, ip, dst_ip, 17, UDP_HLEN + len);
	n->stats.udp_out++;
	send_frame(n, ETH_HLEN + IP_HLEN + UDP_HLEN + len);
	return 0;
}
