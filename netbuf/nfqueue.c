/* The NFQUEUE output buffer (see netbuf.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/service.h"
#include "netbuf/netbuf.h"

#define EPOCHS_MAX 64

struct nfq_dev {
	struct ckpt_dev dev;
	struct netbuf_config cfg;
	char ifname[32];
	char chain[32];

	struct nfq_handle *h;
	struct nfq_q_handle *qh;
	int fd;
	int stop_pipe[2];
	pthread_t reader;
	bool reader_running, rules_installed;

	pthread_mutex_t mu;
	uint32_t last_id;     /* highest packet id taken from the queue */
	bool any;
	uint32_t closed_id;   /* the last id assigned to an epoch */
	bool closed_any;
	uint32_t released_id; /* every id <= this has its verdict */
	bool released_any;
	/* Barriers: the last packet id of each closed, unreleased epoch. */
	struct {
		uint64_t epoch;
		uint32_t id;
		bool empty;
		uint64_t pkts; /* what the epoch holds */
	} barrier[EPOCHS_MAX];
	unsigned nbarriers;
	uint64_t held, released, errors;
	uint64_t open_pkts; /* held, of the open epoch */
	uint64_t cur_pkts;  /* held now, in all */
};

/* Runs iptables/ip6tables; quiet tolerates failures (cleanup). */
static int run_tool(bool quiet, const char *tool, const char *const *args)
{
	const char *argv[24];
	int n = 0, status;
	pid_t pid;

	argv[n++] = tool;
	argv[n++] = "-w";
	for (; *args && n < 22; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		service_child_signals();
		if (quiet)
			dup2(null, 2);
		dup2(null, 1);
		execvp(tool, (char *const *)argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (!quiet) {
		char line[256] = "";
		for (int i = 0; argv[i]; i++) {
			strncat(line, argv[i], sizeof(line) - strlen(line) - 2);
			strcat(line, " ");
		}
		log_error("netbuf: '%s' failed (exit %d)%s", line,
			  WIFEXITED(status) ? WEXITSTATUS(status) : -1,
			  WIFEXITED(status) && WEXITSTATUS(status) == 127
				  ? ": install iptables"
				  : "");
	}
	return -EIO;
}

static void chain_name(char *buf, size_t len, const char *ifname)
{
	snprintf(buf, len, "HANB-%.15s", ifname);
}

/* ALL: every copy a crashed run may have left (cleanup); else the one
 * jump per hook this run installed (teardown: under a loaded dom0 each
 * iptables run costs seconds). */
static void remove_rules(const char *ifname, bool all)
{
	static const char *const tools[] = {"iptables", "ip6tables"};
	static const char *const hooks[] = {"FORWARD", "INPUT"};
	char chain[32];

	chain_name(chain, sizeof(chain), ifname);
	for (int t = 0; t < 2; t++) {
		for (int k = 0; k < 2; k++) {
			const char *del[] = {"-D", hooks[k], "-j", chain, NULL};
			for (int i = 0; i < (all ? 8 : 1) && run_tool(true, tools[t], del) == 0; i++)
				;
		}
		const char *flush[] = {"-F", chain, NULL};
		const char *drop[] = {"-X", chain, NULL};
		run_tool(true, tools[t], flush);
		run_tool(true, tools[t], drop);
	}
}

int netbuf_nfqueue_cleanup(const char *ifname)
{
	remove_rules(ifname, true);
	return 0;
}

static int install_rules(struct nfq_dev *d)
{
	static const char *const tools[] = {"iptables", "ip6tables"};
	static const char *const hooks[] = {"FORWARD", "INPUT"};
	char qnum[16];
	int rc;

	snprintf(qnum, sizeof(qnum), "%u", d->cfg.queue);
	/* Bridged frames reach iptables only with bridge netfilter on. */
	int fd = open("/proc/sys/net/bridge/bridge-nf-call-iptables", O_WRONLY);
	if (fd >= 0) {
		(void)!write(fd, "1", 1);
		close(fd);
	}
	fd = open("/proc/sys/net/bridge/bridge-nf-call-ip6tables", O_WRONLY);
	if (fd >= 0) {
		(void)!write(fd, "1", 1);
		close(fd);
	}
	for (int t = 0; t < 2; t++) {
		const char *mk[] = {"-N", d->chain, NULL};
		const char *bridged[] = {"-A", d->chain, "-m", "physdev", "--physdev-in", d->ifname,
					 "-j", "NFQUEUE", "--queue-num", qnum, NULL};
		const char *routed[] = {"-A", d->chain, "-i", d->ifname, "-j", "NFQUEUE",
					"--queue-num", qnum, NULL};

		rc = run_tool(false, tools[t], mk);
		if (rc == 0)
			rc = run_tool(false, tools[t], bridged);
		if (rc == 0)
			rc = run_tool(false, tools[t], routed);
		for (int k = 0; rc == 0 && k < 2; k++) {
			const char *jump[] = {"-I", hooks[k], "1", "-j", d->chain, NULL};
			rc = run_tool(false, tools[t], jump);
		}
		if (rc < 0)
			return rc;
	}
	d->rules_installed = true;
	return 0;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa,
		     void *data)
{
	struct nfq_dev *d = data;
	struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);

	if (!ph)
		return 0;
	pthread_mutex_lock(&d->mu);
	d->last_id = ntohl(ph->packet_id);
	d->any = true;
	d->held++;
	d->open_pkts++;
	d->cur_pkts++;
	pthread_mutex_unlock(&d->mu);
	return 0;
}

static void *reader_main(void *arg)
{
	struct nfq_dev *d = arg;
	char buf[65536] __attribute__((aligned));
	struct pollfd p[2] = {{.fd = d->fd, .events = POLLIN},
			      {.fd = d->stop_pipe[0], .events = POLLIN}};

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		ssize_t n = recv(d->fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == ENOBUFS) {
				/* Messages lost: the kernel still holds those packets. */
				pthread_mutex_lock(&d->mu);
				d->errors++;
				pthread_mutex_unlock(&d->mu);
				log_warn("netbuf %s: queue messages lost (ENOBUFS)", d->ifname);
				continue;
			}
			if (errno == EINTR || errno == EAGAIN)
				continue;
			break;
		}
		nfq_handle_packet(d->h, buf, (int)n);
	}
	return NULL;
}

static int nfq_setup(struct ckpt_dev *dev)
{
	struct nfq_dev *d = dev->priv;
	int rc = -EIO;

	if (!if_nametoindex(d->ifname)) {
		log_error("netbuf: no interface %s here", d->ifname);
		return -ENODEV;
	}
	d->h = nfq_open();
	if (!d->h) {
		log_error("netbuf %s: cannot open nfnetlink_queue: %s (needs CAP_NET_ADMIN)",
			  d->ifname, strerror(errno));
		return errno ? -errno : -EPERM;
	}
	d->qh = nfq_create_queue(d->h, d->cfg.queue, on_packet, d);
	if (!d->qh) {
		log_error("netbuf %s: queue %u: %s%s", d->ifname, d->cfg.queue, strerror(errno),
			  errno == EPERM ? " (needs CAP_NET_ADMIN: run as root)"
					 : " (is another process using it?)");
		rc = errno ? -errno : -EBUSY;
		goto err;
	}
	/* Only the id is needed: packets stay in the kernel until released. */
	if (nfq_set_mode(d->qh, NFQNL_COPY_META, 0) < 0 ||
	    nfq_set_queue_maxlen(d->qh, d->cfg.limit) < 0) {
		log_error("netbuf %s: cannot configure queue %u", d->ifname, d->cfg.queue);
		goto err;
	}
	/* The queue is ours now: rules left for this interface by a killed
	 * run can go (a live owner would still hold the queue: EBUSY above). */
	remove_rules(d->ifname, true);
	d->fd = nfq_fd(d->h);
	nfnl_rcvbufsiz(nfq_nfnlh(d->h), 8 << 20);
	if (pipe2(d->stop_pipe, O_CLOEXEC) < 0) {
		rc = -errno;
		goto err;
	}
	rc = -pthread_create(&d->reader, NULL, reader_main, d);
	if (rc < 0)
		goto err;
	d->reader_running = true;
	rc = install_rules(d);
	if (rc < 0)
		goto err;
	log_info("netbuf %s: holding IPv4/IPv6 output in NFQUEUE %u (limit %u packets)",
		 d->ifname, d->cfg.queue, d->cfg.limit);
	return 0;
err:
	dev->ops->teardown(dev);
	return rc;
}

static int nfq_postsuspend(struct ckpt_dev *dev, uint64_t epoch)
{
	struct nfq_dev *d = dev->priv;

	pthread_mutex_lock(&d->mu);
	if (d->nbarriers == EPOCHS_MAX) {
		pthread_mutex_unlock(&d->mu);
		return -ENOSPC;
	}
	/* Everything taken so far and not in an earlier epoch is epoch's. */
	d->barrier[d->nbarriers].epoch = epoch;
	d->barrier[d->nbarriers].id = d->last_id;
	d->barrier[d->nbarriers].pkts = d->open_pkts;
	d->open_pkts = 0;
	d->barrier[d->nbarriers].empty = !d->any || (d->closed_any && d->closed_id == d->last_id);
	d->closed_id = d->last_id;
	d->closed_any = d->any;
	d->nbarriers++;
	pthread_mutex_unlock(&d->mu);
	return 0;
}

static int nfq_commit(struct ckpt_dev *dev, uint64_t epoch)
{
	struct nfq_dev *d = dev->priv;
	int rc = 0;

	pthread_mutex_lock(&d->mu);
	unsigned n = 0;
	uint32_t upto = 0;
	bool send = false;
	uint64_t pkts = 0;

	while (n < d->nbarriers && d->barrier[n].epoch <= epoch) {
		if (!d->barrier[n].empty) {
			upto = d->barrier[n].id;
			send = true;
		}
		pkts += d->barrier[n].pkts;
		n++;
	}
	memmove(d->barrier, d->barrier + n, (d->nbarriers - n) * sizeof(d->barrier[0]));
	d->nbarriers -= n;
	if (send) {
		/* One verdict releases every queued id <= upto, in queue order. */
		if (nfq_set_verdict_batch(d->qh, upto, NF_ACCEPT) < 0) {
			rc = errno ? -errno : -EIO;
			d->errors++;
		} else {
			d->released_id = upto;
			d->released_any = true;
			d->cur_pkts -= pkts < d->cur_pkts ? pkts : d->cur_pkts;
		}
	}
	pthread_mutex_unlock(&d->mu);
	return rc;
}

/* Ends buffering: what is still held gets verdict (accept: released;
 * drop: discarded). */
static void nfq_end(struct ckpt_dev *dev, int verdict)
{
	struct nfq_dev *d = dev->priv;

	if (d->rules_installed) {
		remove_rules(d->ifname, false);
		d->rules_installed = false;
	}
	if (d->reader_running) {
		(void)!write(d->stop_pipe[1], "x", 1);
		pthread_join(d->reader, NULL);
		d->reader_running = false;
	}
	/* Release (or drop) what is still held: protection is over. The rules
	 * are gone, so nothing new is queued; take the messages the reader has
	 * not read yet (destroying the queue would drop their packets), then
	 * give everything up to the last id its verdict. */
	if (d->h && d->fd >= 0) {
		char buf[65536] __attribute__((aligned));
		ssize_t n;

		while ((n = recv(d->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			nfq_handle_packet(d->h, buf, (int)n);
	}
	pthread_mutex_lock(&d->mu);
	if (d->qh && d->any && (!d->released_any || d->last_id != d->released_id))
		nfq_set_verdict_batch(d->qh, d->last_id, (unsigned)verdict);
	d->nbarriers = 0;
	d->any = d->released_any = d->closed_any = false;
	d->open_pkts = d->cur_pkts = 0;
	pthread_mutex_unlock(&d->mu);
	if (d->qh)
		nfq_destroy_queue(d->qh);
	d->qh = NULL;
	if (d->h)
		nfq_close(d->h);
	d->h = NULL;
	if (d->stop_pipe[0] >= 0) {
		close(d->stop_pipe[0]);
		close(d->stop_pipe[1]);
		d->stop_pipe[0] = d->stop_pipe[1] = -1;
	}
}

static void nfq_teardown(struct ckpt_dev *dev)
{
	nfq_end(dev, NF_ACCEPT);
}

static void nfq_discard(struct ckpt_dev *dev)
{
	nfq_end(dev, NF_DROP);
}

static int nfq_held(struct ckpt_dev *dev, uint64_t *packets, uint64_t *bytes)
{
	struct nfq_dev *d = dev->priv;

	/* Packets are queued with their metadata only (NFQNL_COPY_META):
	 * their sizes are not known here. */
	pthread_mutex_lock(&d->mu);
	*packets = d->cur_pkts;
	*bytes = UINT64_MAX;
	pthread_mutex_unlock(&d->mu);
	return 0;
}

static int nfq_status(struct ckpt_dev *dev, char *buf, size_t len)
{
	struct nfq_dev *d = dev->priv;

	pthread_mutex_lock(&d->mu);
	snprintf(buf, len, "nfqueue %u: %llu packets held in total, %u epochs open, %llu errors",
		 d->cfg.queue, (unsigned long long)d->held, d->nbarriers,
		 (unsigned long long)d->errors);
	pthread_mutex_unlock(&d->mu);
	return 0;
}

static void nfq_destroy(struct ckpt_dev *dev)
{
	struct nfq_dev *d = dev->priv;

	pthread_mutex_destroy(&d->mu);
	free(d);
}

static const struct ckpt_dev_ops nfq_ops = {
	.destroy = nfq_destroy,
	.kind = "netbuf-nfqueue",
	.setup = nfq_setup,
	.postsuspend = nfq_postsuspend,
	.commit = nfq_commit,
	.teardown = nfq_teardown,
	.discard = nfq_discard,
	.status = nfq_status,
	.held = nfq_held,
};

int netbuf_nfqueue_create(const struct netbuf_config *cfg, struct ckpt_dev **out)
{
	struct nfq_dev *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->cfg = *cfg;
	snprintf(d->ifname, sizeof(d->ifname), "%s", cfg->ifname);
	d->cfg.ifname = d->ifname;
	chain_name(d->chain, sizeof(d->chain), d->ifname);
	d->stop_pipe[0] = d->stop_pipe[1] = -1;
	d->fd = -1;
	pthread_mutex_init(&d->mu, NULL);
	d->dev.ops = &nfq_ops;
	d->dev.priv = d;
	snprintf(d->dev.name, sizeof(d->dev.name), "%s", d->ifname);
	*out = &d->dev;
	return 0;
}
