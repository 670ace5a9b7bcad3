/* fault-relay: a TCP relay that corrupts the stream on demand.
 *
 *   fault-relay LISTEN TARGET [--seed N] [--flips N]
 *
 * Accepts connections on LISTEN (host:port) and forwards each, both ways, to
 * a new connection to TARGET. SIGUSR1 arms a corruption: the next chunk
 * forwarded from a client to TARGET gets --flips bits flipped (default 1) at
 * positions drawn from a PRNG seeded with --seed, so a schedule replays. Each
 * flip is logged with the connection's stream offset. A half-close or reset
 * on one side is passed on to the other, so a dying peer looks the same
 * through the relay as without it.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sock.h"

#define RELAY_MAX_PAIRS 8
#define RELAY_CHUNK 65536

struct pair {
	int fd[2];         /* 0: the accepted client, 1: the connection to TARGET */
	bool eof[2];       /* no more input from fd[i] */
	uint64_t fwd_bytes; /* octets forwarded client -> TARGET */
};

static volatile sig_atomic_t armed, stop_flag;

static void on_usr1(int sig)
{
	armed++;
}

static void on_stop(int sig)
{
	stop_flag = 1;
}

/* xorshift64*: small, seeded, reproducible. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

static void pair_close(struct pair *p)
{
	for (int i = 0; i < 2; i++)
		if (p->fd[i] >= 0)
			close(p->fd[i]);
	p->fd[0] = p->fd[1] = -1;
}

static void corrupt(struct pair *p, uint8_t *buf, size_t len, unsigned flips, uint64_t *rng)
{
	for (unsigned i = 0; i < flips; i++) {
		uint64_t r = rng_next(rng);
		size_t off = (size_t)(r % len);
		unsigned bit = (unsigned)((r >> 32) & 7);

		buf[off] ^= (uint8_t)(1u << bit);
		log_warn("flipped bit %u of octet %llu of the forwarded stream", bit,
			 (unsigned long long)(p->fwd_bytes + off));
	}
}

/* Moves one chunk from fd[from] to fd[1 - from]. Returns -1 when the pair
 * is finished. */
static int pump(struct pair *p, int from, unsigned flips, uint64_t *rng)
{
	static uint8_t buf[RELAY_CHUNK];
	ssize_t n = read(p->fd[from], buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n < 0) {
		/* A reset on one side is a reset on the other: SO_LINGER 0. */
		struct linger lg = {.l_onoff = 1, .l_linger = 0};

		setsockopt(p->fd[1 - from], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		log_info("connection %s: %s; resetting the other side",
			 from ? "to the target" : "from the client", strerror(errno));
		return -1;
	}
	if (n == 0) {
		p->eof[from] = true;
		shutdown(p->fd[1 - from], SHUT_WR);
		return p->eof[1 - from] ? -1 : 0;
	}
	if (from == 0 && armed) {
		armed--;
		corrupt(p, buf, (size_t)n, flips, rng);
	}
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(p->fd[1 - from], buf + off, (size_t)(n - off));

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			log_info("write %s: %s", from ? "to the client" : "to the target",
				 strerror(errno));
			return -1;
		}
		off += w;
	}
	if (from == 0)
		p->fwd_bytes += (uint64_t)n;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: fault-relay LISTEN TARGET [--seed N] [--flips N]\n"
		   "Forwards TCP connections from LISTEN (host:port) to TARGET; SIGUSR1\n"
		   "flips --flips random bits (default 1) in the next chunk sent to TARGET.\n");
}

int main(int argc, char **argv)
{
	struct pair pairs[RELAY_MAX_PAIRS];
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	unsigned flips = 1;
	const char *listen_at = NULL, *target = NULL;
	struct sigaction sa = {0};
	int lfd;

	log_init("fault-relay");
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			rng ^= strtoull(argv[++i], NULL, 0) * 0x2545f4914f6cdd1dull;
			if (!rng)
				rng = 1;
		} else if (!strcmp(argv[i], "--flips") && i + 1 < argc) {
			flips = (unsigned)strtoul(argv[++i], NULL, 10);
			if (!flips || flips > 64) {
				fprintf(stderr, "fault-relay: --flips wants 1..64\n");
				return 2;
			}
		} else if (!listen_at) {
			listen_at = argv[i];
		} else if (!target) {
			target = argv[i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!listen_at || !target) {
		usage(stderr);
		return 2;
	}
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	lfd = sock_tcp_listen(listen_at, 4);
	if (lfd < 0)
		die("cannot listen on %s: %s", listen_at, strerror(-lfd));
	log_info("relaying %s -> %s", listen_at, target);
	for (int i = 0; i < RELAY_MAX_PAIRS; i++)
		pairs[i] = (struct pair){.fd = {-1, -1}};

	while (!stop_flag) {
		struct pollfd pfd[1 + 2 * RELAY_MAX_PAIRS];
		int n = 0;

		pfd[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
		for (int i = 0; i < RELAY_MAX_PAIRS; i++)
			for (int s = 0; s < 2; s++)
				pfd[n++] = (struct pollfd){
					.fd = pairs[i].fd[s] >= 0 && !pairs[i].eof[s] ? pairs[i].fd[s]
										   : -1,
					.events = POLLIN};
		if (poll(pfd, (nfds_t)n, 200) <= 0)
			continue;
		if (pfd[0].revents & POLLIN) {
			int cfd = sock_tcp_accept(lfd), tfd, slot = -1;

			for (int i = 0; i < RELAY_MAX_PAIRS && cfd >= 0; i++)
				if (pairs[i].fd[0] < 0) {
					slot = i;
					break;
				}
			if (cfd >= 0 && slot < 0) {
				log_warn("too many connections; refusing one");
				close(cfd);
			} else if (cfd >= 0) {
				tfd = sock_tcp_connect(target, 2000);
				if (tfd < 0) {
					log_warn("cannot reach %s: %s; dropping the client",
						 target, strerror(-tfd));
					close(cfd);
				} else {
					sock_tcp_tune(cfd);
					sock_tcp_tune(tfd);
					pairs[slot] = (struct pair){.fd = {cfd, tfd}};
					log_info("connection %d relayed", slot);
				}
			}
		}
		for (int i = 0; i < RELAY_MAX_PAIRS; i++)
			for (int s = 0; s < 2; s++) {
				short ev = pfd[1 + 2 * i + s].revents;

				if (pairs[i].fd[s] < 0 || !(ev & (POLLIN | POLLHUP | POLLERR)))
					continue;
				if (pump(&pairs[i], s, flips, &rng) < 0) {
					log_info("connection %d closed after %llu octets forwarded", i,
						 (unsigned long long)pairs[i].fwd_bytes);
					pair_close(&pairs[i]);
				}
			}
	}
	for (int i = 0; i < RELAY_MAX_PAIRS; i++)
		pair_close(&pairs[i]);
	close(lfd);
	return 0;
}
