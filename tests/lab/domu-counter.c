/* domu-counter: the Xen lab domU's counter service (docs/lab.md).
 *
 *   domu-counter [PORT]      (default 7000, UDP)
 *
 * Runs inside the lab's PVH domU (a static binary in its initramfs, started
 * by /init when `lab.net` is on the kernel command line). Each request
 * "INC C ID" increments a counter held in this process's memory, so in the
 * domain's memory: a checkpoint carries it and a copy resumed from one
 * continues from it. The reply "OK ID VALUE" carries the new value; a retry
 * of the same ID is answered from memory, not counted twice. It is the KVM
 * test guests' counter protocol (vmm/guest/svc.c, docs/guests.md), so
 * `ha-client counter` drives both.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/guest/svc.h"

static struct svc_counter counter;

int main(int argc, char **argv)
{
	int port = argc > 1 ? atoi(argv[1]) : SVC_COUNTER_PORT;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "domu-counter: udp port %d: %s\n", port, strerror(errno));
		return 1;
	}
	svc_counter_init(&counter);
	printf("domu-counter: serving udp port %d\n", port);
	fflush(stdout);
	for (;;) {
		char req[512], rep[SVC_REPLY_MAX];
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, req, sizeof(req), 0, (struct sockaddr *)&from, &fl);
		size_t r;

		if (n <= 0)
			continue;
		r = svc_counter_handle(&counter, req, (size_t)n, rep, sizeof(rep));
		if (r)
			sendto(fd, rep, r, 0, (struct sockaddr *)&from, fl);
	}
}
