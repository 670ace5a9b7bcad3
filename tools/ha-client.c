/* ha-client: clients for the test guests and the netbuf tests.
 *
 *   ha-client counter HOST:PORT [--name C] [--count N] [--interval MS]
 *                     [--timeout MS] [--duration S]
 *       sends INC C ID for ID = 1, 2, ...; retries an unanswered ID (the
 *       guest answers a retry from memory); prints "ack ID VALUE US WALL_MS"
 *       per reply: US from the first try of that ID, WALL_MS the wall clock.
 *   ha-client udp-send HOST:PORT --from K --count N [--rate PER_S]
 *       datagrams "seq K SENT_NS" .. "seq K+N-1 SENT_NS" (wall clock)
 *   ha-client udp-recv PORT [--idle MS]
 *       prints "seq K DELAY_US" for each datagram received
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/sock.h"

static int udp_to(const char *hostport, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[128], port[16];
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res;
	int fd;

	if (sock_split_hostport(hostport, host, sizeof(host), port, sizeof(port)) < 0 ||
	    getaddrinfo(host, port, &hints, &res) != 0) {
		fprintf(stderr, "ha-client: bad address %s\n", hostport);
		return -1;
	}
	fd = socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return fd;
}

static const char *opt(int argc, char **argv, const char *name, const char *def)
{
	for (int i = 0; i + 1 < argc; i++)
		if (!strcmp(argv[i], name))
			return argv[i + 1];
	return def;
}

static int counter(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	const char *name = opt(argc, argv, "--name", "c1");
	unsigned long long count = strtoull(opt(argc, argv, "--count", "0"), NULL, 10);
	unsigned interval = (unsigned)atoi(opt(argc, argv, "--interval", "10"));
	int timeout = atoi(opt(argc, argv, "--timeout", "200"));
	double duration = atof(opt(argc, argv, "--duration", "0"));
	uint64_t end = duration > 0 ? clk_now_ns() + (uint64_t)(duration * 1e9) : 0;
	unsigned long long acked = 0, retries = 0;
	int fd = udp_to(argv[1], &ss, &sl);

	if (fd < 0)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (unsigned long long id = 1; !count || id <= count; id++) {
		char req[96], rep[256];
		int n = snprintf(req, sizeof(req), "INC %s %llu", name, id);
		uint64_t first = clk_now_ns();

		for (;;) {
			struct pollfd p = {.fd = fd, .events = POLLIN};

			if (end && clk_now_ns() > end)
				goto done;
			sendto(fd, req, (size_t)n, 0, (struct sockaddr *)&ss, sl);
			while (poll(&p, 1, timeout) > 0) {
				ssize_t r = recv(fd, rep, sizeof(rep) - 1, 0);
				unsigned long long rid, val;

				if (r <= 0)
					continue;
				rep[r] = '\0';
				if (sscanf(rep, "OK %llu %llu", &rid, &val) == 2 && rid == id) {
					/* Latency from the first try: retries included. */
					struct timespec wall;

					clock_gettime(CLOCK_REALTIME, &wall);
					printf("ack %llu %llu %llu %lld\n", id, val,
					       (unsigned long long)((clk_now_ns() - first) / 1000),
					       (long long)wall.tv_sec * 1000 + wall.tv_nsec / 1000000);
					acked++;
					goto next;
				}
				if (!strncmp(rep, "ERR", 3)) {
					fprintf(stderr, "ha-client: %s\n", rep);
					return 1;
				}
			}
			retries++;
		}
next:
		if (interval)
			clk_sleep_until_ns(clk_now_ns() + interval * NSEC_PER_MSEC);
	}
done:
	fprintf(stderr, "ha-client: %llu acknowledged, %llu retries\n", acked, retries);
	return 0;
}

static int udp_send(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	unsigned long long from = strtoull(opt(argc, argv, "--from", "0"), NULL, 10);
	unsigned long long count = strtoull(opt(argc, argv, "--count", "1"), NULL, 10);
	int fd = udp_to(argv[1], &ss, &sl);

	if (fd < 0)
		return 2;
	unsigned rate = (unsigned)atoi(opt(argc, argv, "--rate", "0")); /* per second */
	uint64_t start = clk_now_ns();

	for (unsigned long long k = from; k < from + count; k++) {
		char b[64];
		struct timespec now;
		int n;

		if (rate)
			clk_sleep_until_ns(start + (k - from) * NSEC_PER_SEC / rate);
		clock_gettime(CLOCK_REALTIME, &now);
		n = snprintf(b, sizeof(b), "seq %llu %lld", k,
			     (long long)now.tv_sec * 1000000000 + now.tv_nsec);
		if (sendto(fd, b, (size_t)n, 0, (struct sockaddr *)&ss, sl) < 0)
			perror("sendto");
	}
	return 0;
}

static int udp_recv(int argc, char **argv)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
	int idle = atoi(opt(argc, argv, "--idle", "2000"));
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char b[128];

	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		perror("ha-client: bind");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("listening\n");
	while (poll(&p, 1, idle) > 0) {
		ssize_t r = recv(fd, b, sizeof(b) - 1, 0);

		if (r > 0) {
			unsigned long long k;
			long long sent;
			struct timespec now;

			b[r] = '\0';
			clock_gettime(CLOCK_REALTIME, &now);
			if (sscanf(b, "seq %llu %lld", &k, &sent) == 2)
				printf("seq %llu %lld\n", k,
				       ((long long)now.tv_sec * 1000000000 + now.tv_nsec - sent) / 1000);
			else
				printf("%s\n", b);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "counter"))
		return counter(argc - 1, argv + 1);
	if (argc >= 3 && !strcmp(argv[1], "udp-send"))
		return udp_send(argc - 1, argv + 1);
	if (argc >= 3 && !strcmp(argv[1], "udp-recv"))
		return udp_recv(argc - 1, argv + 1);
	fprintf(argc == 2 && !strcmp(argv[1], "--help") ? stdout : stderr,
		"usage: ha-client counter HOST:PORT [--name C] [--count N] [--interval MS]\n"
		"                 [--timeout MS] [--duration S]\n"
		"       ha-client udp-send HOST:PORT --from K --count N [--rate PER_S]\n"
		"       ha-client udp-recv PORT [--idle MS]\n");
	return argc == 2 && !strcmp(argv[1], "--help") ? 0 : 2;
}
