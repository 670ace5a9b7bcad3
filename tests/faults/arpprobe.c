/* fault-arp: counts the hosts that answer for an IPv4 address.
 *
 *   fault-arp IFACE IP [--wait MS]
 *
 * Broadcasts one ARP request for IP on IFACE and prints the number of ARP
 * replies that arrive within --wait ms (default 1000), then one line per
 * reply. Two copies of a guest share its MAC, so replies are counted, not
 * addresses: with exactly one serving copy the answer is 1. A copy whose
 * output is held (a primary waiting for an acknowledgement) answers late,
 * which the wait covers for epoch intervals well below it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/if_ether.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"

int main(int argc, char **argv)
{
	struct ether_arp req = {0}, rep;
	struct sockaddr_ll to = {0}, from;
	struct ifreq ifr = {0};
	struct in_addr target, self = {0};
	int wait_ms = 1000, fd, replies = 0;
	uint64_t deadline;

	if (argc == 5 && !strcmp(argv[3], "--wait"))
		wait_ms = atoi(argv[4]);
	else if (argc != 3) {
		fprintf(stderr, "usage: fault-arp IFACE IP [--wait MS]\n");
		return 2;
	}
	if (inet_pton(AF_INET, argv[2], &target) != 1 || strlen(argv[1]) >= IFNAMSIZ) {
		fprintf(stderr, "fault-arp: bad interface or address\n");
		return 2;
	}
	fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
	if (fd < 0) {
		perror("fault-arp: packet socket (needs CAP_NET_RAW)");
		return 2;
	}
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", argv[1]);
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
		fprintf(stderr, "fault-arp: no interface %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	to.sll_ifindex = ifr.ifr_ifindex;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		perror("fault-arp: SIOCGIFHWADDR");
		return 2;
	}
	memcpy(req.arp_sha, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	ifr.ifr_addr.sa_family = AF_INET;
	if (ioctl(fd, SIOCGIFADDR, &ifr) == 0)
		self = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr;
	to.sll_family = AF_PACKET;
	to.sll_protocol = htons(ETH_P_ARP);
	to.sll_halen = ETH_ALEN;
	memset(to.sll_addr, 0xff, ETH_ALEN);
	if (bind(fd, (struct sockaddr *)&to, sizeof(to)) < 0) {
		perror("fault-arp: bind");
		return 2;
	}
	req.arp_hrd = htons(ARPHRD_ETHER);
	req.arp_pro = htons(ETH_P_IP);
	req.arp_hln = ETH_ALEN;
	req.arp_pln = 4;
	req.arp_op = htons(ARPOP_REQUEST);
	memcpy(req.arp_spa, &self, 4);
	memcpy(req.arp_tpa, &target, 4);
	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&to, sizeof(to)) < 0) {
		perror("fault-arp: sendto");
		return 2;
	}
	uint64_t start = clk_now_ns();

	deadline = start + (uint64_t)wait_ms * NSEC_PER_MSEC;
	char lines[16][64];
	for (;;) {
		uint64_t now = clk_now_ns();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		socklen_t fl = sizeof(from);
		ssize_t n;

		if (now >= deadline)
			break;
		if (poll(&p, 1, (int)((deadline - now) / NSEC_PER_MSEC) + 1) <= 0)
			continue;
		n = recvfrom(fd, &rep, sizeof(rep), 0, (struct sockaddr *)&from, &fl);
		if (n < (ssize_t)sizeof(rep) || ntohs(rep.arp_op) != ARPOP_REPLY ||
		    memcmp(rep.arp_spa, &target, 4) || from.sll_pkttype == PACKET_OUTGOING)
			continue;
		if (replies < 16)
			snprintf(lines[replies], sizeof(lines[0]),
				 "reply from %02x:%02x:%02x:%02x:%02x:%02x after %llu ms",
				 rep.arp_sha[0], rep.arp_sha[1], rep.arp_sha[2], rep.arp_sha[3],
				 rep.arp_sha[4], rep.arp_sha[5],
				 (unsigned long long)((clk_now_ns() - start) / NSEC_PER_MSEC));
		replies++;
	}
	printf("%d\n", replies);
	for (int i = 0; i < replies && i < 16; i++)
		printf("%s\n", lines[i]);
	close(fd);
	return 0;
}
