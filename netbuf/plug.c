/* The plug output buffer (see netbuf.h): guest interface --ingress, u32
 * match-all, mirred redirect--> IFB --root qdisc sch_plug. All through
 * libnl-route-3. */
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/tc_act/tc_mirred.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/action.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/plug.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "netbuf/netbuf.h"
#include "netbuf/plug_epochs.h"

#define MTU_BYTES 1514u

struct plug_dev {
	struct ckpt_dev dev;
	struct netbuf_config cfg;
	char ifname[IFNAMSIZ];
	char ifb[IFNAMSIZ];
	struct nl_sock *sk;
	int ifindex, ifb_index;
	bool ifb_made, ingress_made, filter_made, plug_made;
	struct rtnl_qdisc *plug;
	struct netbuf_plug_epochs ep; /* what the qdisc holds (netbuf/plug_epochs.c) */
};

static int nlerr(const char *what, const char *ifname, int err)
{
	log_error("netbuf %s: %s: %s", ifname, what, nl_geterror(err));
	return err == -NLE_PERM ? -EPERM : err == -NLE_EXIST ? -EEXIST : -EIO;
}

static void ifb_name(char *buf, size_t len, int ifindex)
{
	snprintf(buf, len, "hanb%d", ifindex);
}

int netbuf_plug_available(void)
{
	char path[256], rel[128];
	FILE *f;

	if (access("/sys/module/sch_plug", F_OK) == 0)
		return 1;
	f = fopen("/proc/sys/kernel/osrelease", "r");
	if (f && fgets(rel, sizeof(rel), f)) {
		rel[strcspn(rel, "\n")] = '\0';
		snprintf(path, sizeof(path), "/lib/modules/%s/kernel/net/sched/sch_plug.ko", rel);
		if (access(path, F_OK) == 0 ||
		    (strcat(path, ".xz"), access(path, F_OK) == 0)) {
			fclose(f);
			return 1;
		}
	}
	if (f)
		fclose(f);
	f = popen("zcat /proc/config.gz 2>/dev/null | grep -c '^CONFIG_NET_SCH_PLUG=y'", "r");
	if (f) {
		int n = 0;
		if (fscanf(f, "%d", &n) != 1)
			n = 0;
		pclose(f);
		if (n > 0)
			return 1;
	}
	return 0;
}

static void del_tc(struct plug_dev *d)
{
	struct rtnl_qdisc *q;
	struct rtnl_link *l;

	if (d->ingress_made || d->filter_made) {
		/* Deleting the ingress qdisc removes its filters too. */
		q = rtnl_qdisc_alloc();
		rtnl_tc_set_ifindex(TC_CAST(q), d->ifindex);
		rtnl_tc_set_parent(TC_CAST(q), TC_H_INGRESS);
		rtnl_tc_set_kind(TC_CAST(q), "ingress");
		rtnl_qdisc_delete(d->sk, q);
		rtnl_qdisc_put(q);
		d->ingress_made = d->filter_made = false;
	}
	if (d->ifb_made) {
		l = rtnl_link_alloc();
		rtnl_link_set_name(l, d->ifb);
		rtnl_link_delete(d->sk, l);
		rtnl_link_put(l);
		d->ifb_made = false;
	}
}

static int plug_setup(struct ckpt_dev *dev)
{
	struct plug_dev *d = dev->priv;
	struct rtnl_link *l = NULL, *change = NULL;
	struct rtnl_qdisc *q = NULL;
	struct rtnl_cls *c = NULL;
	struct rtnl_act *a = NULL;
	int err;

	d->ifindex = (int)if_nametoindex(d->ifname);
	if (!d->ifindex) {
		log_error("netbuf: no interface %s here", d->ifname);
		return -ENODEV;
	}
	ifb_name(d->ifb, sizeof(d->ifb), d->ifindex);
	netbuf_plug_cleanup(d->ifname); /* leftovers of a killed run */

	l = rtnl_link_alloc();
	rtnl_link_set_type(l, "ifb");
	rtnl_link_set_name(l, d->ifb);
	err = rtnl_link_add(d->sk, l, NLM_F_CREATE | NLM_F_EXCL);
	rtnl_link_put(l);
	l = NULL;
	if (err < 0)
		return nlerr("create IFB device", d->ifname, err);
	d->ifb_made = true;
	err = rtnl_link_get_kernel(d->sk, 0, d->ifb, &l);
	if (err < 0)
		goto nl;
	d->ifb_index = rtnl_link_get_ifindex(l);
	change = rtnl_link_alloc();
	rtnl_link_set_flags(change, IFF_UP);
	err = rtnl_link_change(d->sk, l, change, 0);
	rtnl_link_put(change);
	rtnl_link_put(l);
	if (err < 0)
		goto nl;

	/* The plug first: nothing may pass the IFB unbuffered. */
	q = rtnl_qdisc_alloc();
	rtnl_tc_set_ifindex(TC_CAST(q), d->ifb_index);
	rtnl_tc_set_parent(TC_CAST(q), TC_H_ROOT);
	rtnl_tc_set_handle(TC_CAST(q), TC_HANDLE(1, 0));
	err = rtnl_tc_set_kind(TC_CAST(q), "plug");
	if (err == 0)
		err = rtnl_qdisc_plug_set_limit(q, (int)(d->cfg.limit * MTU_BYTES));
	if (err == 0)
		err = rtnl_qdisc_add(d->sk, q, NLM_F_CREATE);
	if (err < 0) {
		rtnl_qdisc_put(q);
		log_error("netbuf %s: this kernel has no sch_plug (use --netbuf=nfqueue)",
			  d->ifname);
		goto nl;
	}
	d->plug = q;
	d->plug_made = true;

	q = rtnl_qdisc_alloc();
	rtnl_tc_set_ifindex(TC_CAST(q), d->ifindex);
	rtnl_tc_set_parent(TC_CAST(q), TC_H_INGRESS);
	rtnl_tc_set_handle(TC_CAST(q), TC_HANDLE(0xffffU, 0));
	rtnl_tc_set_kind(TC_CAST(q), "ingress");
	err = rtnl_qdisc_add(d->sk, q, NLM_F_CREATE);
	rtnl_qdisc_put(q);
	if (err < 0)
		goto nl;
	d->ingress_made = true;

	/* Every protocol (not only IPv4) goes to the IFB. */
	c = rtnl_cls_alloc();
	rtnl_tc_set_ifindex(TC_CAST(c), d->ifindex);
	rtnl_tc_set_parent(TC_CAST(c), TC_HANDLE(0xffffU, 0));
	rtnl_tc_set_kind(TC_CAST(c), "u32");
	rtnl_cls_set_protocol(c, ETH_P_ALL);
	rtnl_cls_set_prio(c, 1);
	rtnl_u32_add_key_uint32(c, 0, 0, 0, 0);
	/* A terminal node: without it a matching packet only follows a link
	 * and the action never runs (every packet would pass unheld). */
	rtnl_u32_set_cls_terminal(c);
	a = rtnl_act_alloc();
	rtnl_tc_set_kind(TC_CAST(a), "mirred");
	rtnl_mirred_set_action(a, TCA_EGRESS_REDIR);
	rtnl_mirred_set_policy(a, TC_ACT_STOLEN);
	rtnl_mirred_set_ifindex(a, (uint32_t)d->ifb_index);
	rtnl_u32_add_action(c, a);
	err = rtnl_cls_add(d->sk, c, NLM_F_CREATE);
	rtnl_act_put(a);
	rtnl_cls_put(c);
	if (err < 0)
		goto nl;
	d->filter_made = true;
	log_info("netbuf %s: holding all output on %s with sch_plug (limit %u packets)",
		 d->ifname, d->ifb, d->cfg.limit);
	return 0;
nl:
	err = nlerr("set up buffering", d->ifname, err);
	dev->ops->teardown(dev);
	return err;
}

static int plug_action(struct plug_dev *d, int (*op)(struct rtnl_qdisc *))
{
	int err = op(d->plug);

	if (err == 0)
		err = rtnl_qdisc_add(d->sk, d->plug, NLM_F_REQUEST);
	return err < 0 ? nlerr("plug", d->ifname, err) : 0;
}

/* Sends what the epoch logic decides for ev; its state moves on only once
 * the qdisc has taken the command. */
static int plug_event(struct plug_dev *d, enum netbuf_plug_event ev, uint64_t epoch)
{
	struct netbuf_plug_epochs next;
	enum netbuf_plug_cmd cmd;
	int rc;

	rc = netbuf_plug_decide(&d->ep, ev, epoch, &next, &cmd);
	if (rc < 0) {
		log_error("netbuf %s: epoch %llu: %s: %s", d->ifname, (unsigned long long)epoch,
			  ev == NETBUF_PLUG_POSTSUSPEND ? "postsuspend" : "commit", strerror(-rc));
		return rc;
	}
	if (cmd == NETBUF_PLUG_BUFFER)
		rc = plug_action(d, rtnl_qdisc_plug_buffer);
	else if (cmd == NETBUF_PLUG_RELEASE_ONE)
		rc = plug_action(d, rtnl_qdisc_plug_release_one);
	if (rc == 0)
		d->ep = next;
	return rc;
}

static int plug_postsuspend(struct ckpt_dev *dev, uint64_t epoch)
{
	return plug_event(dev->priv, NETBUF_PLUG_POSTSUSPEND, epoch);
}

static int plug_commit(struct ckpt_dev *dev, uint64_t epoch)
{
	return plug_event(dev->priv, NETBUF_PLUG_COMMIT, epoch);
}

/* Ends buffering; release: let out what is still held first, else it
 * goes with the qdisc. */
static void plug_end(struct ckpt_dev *dev, bool release)
{
	struct plug_dev *d = dev->priv;

	if (d->plug_made) {
		if (release)
			plug_action(d, rtnl_qdisc_plug_release_indefinite);
		d->plug_made = false;
	}
	if (d->plug) {
		rtnl_qdisc_put(d->plug);
		d->plug = NULL;
	}
	memset(&d->ep, 0, sizeof(d->ep));
	del_tc(d);
}

static void plug_teardown(struct ckpt_dev *dev)
{
	plug_end(dev, true);
}

static void plug_discard(struct ckpt_dev *dev)
{
	plug_end(dev, false);
}

static int plug_status(struct ckpt_dev *dev, char *buf, size_t len)
{
	struct plug_dev *d = dev->priv;
	const struct netbuf_plug_epochs *e = &d->ep;
	char closed[64] = "no closed epoch", merged[96] = "";

	if (e->closed)
		snprintf(closed, sizeof(closed), "epoch %llu closed, held until its ACK",
			 (unsigned long long)e->closed_at);
	if (e->merged)
		snprintf(merged, sizeof(merged),
			 "; epochs up to %llu held with the open one (closed at the next postsuspend)",
			 (unsigned long long)e->merged_to);
	snprintf(buf, len, "plug on %s: %s%s", d->ifb, closed, merged);
	return 0;
}

/* What the plug qdisc holds, from the kernel's statistics, on a netlink
 * socket of its own: the epoch path owns d->sk. */
static int plug_held(struct ckpt_dev *dev, uint64_t *packets, uint64_t *bytes)
{
	struct plug_dev *d = dev->priv;
	struct nl_sock *sk = nl_socket_alloc();
	struct nl_cache *cache = NULL;
	struct rtnl_qdisc *q = NULL;
	int err = -NLE_NOMEM;

	if (sk)
		err = nl_connect(sk, NETLINK_ROUTE);
	if (err == 0)
		err = rtnl_qdisc_alloc_cache(sk, &cache);
	if (err == 0) {
		q = rtnl_qdisc_get(cache, d->ifb_index, TC_HANDLE(1, 0));
		if (q) {
			*packets = rtnl_tc_get_stat(TC_CAST(q), RTNL_TC_QLEN);
			*bytes = rtnl_tc_get_stat(TC_CAST(q), RTNL_TC_BACKLOG);
			rtnl_qdisc_put(q);
		} else {
			err = -NLE_OBJ_NOTFOUND;
		}
	}
	if (cache)
		nl_cache_free(cache);
	if (sk)
		nl_socket_free(sk);
	return err == 0 ? 0 : -EIO;
}

static void plug_destroy(struct ckpt_dev *dev)
{
	struct plug_dev *d = dev->priv;

	nl_socket_free(d->sk);
	free(d);
}

static const struct ckpt_dev_ops plug_ops = {
	.destroy = plug_destroy,
	.kind = "netbuf-plug",
	.setup = plug_setup,
	.postsuspend = plug_postsuspend,
	.commit = plug_commit,
	.teardown = plug_teardown,
	.discard = plug_discard,
	.status = plug_status,
	.held = plug_held,
};

int netbuf_plug_create(const struct netbuf_config *cfg, struct ckpt_dev **out)
{
	struct plug_dev *d = calloc(1, sizeof(*d));
	int err;

	if (!d)
		return -ENOMEM;
	d->cfg = *cfg;
	snprintf(d->ifname, sizeof(d->ifname), "%s", cfg->ifname);
	d->cfg.ifname = d->ifname;
	d->sk = nl_socket_alloc();
	if (!d->sk || (err = nl_connect(d->sk, NETLINK_ROUTE)) < 0) {
		if (d->sk)
			nl_socket_free(d->sk);
		free(d);
		return -EIO;
	}
	d->dev.ops = &plug_ops;
	d->dev.priv = d;
	snprintf(d->dev.name, sizeof(d->dev.name), "%s", d->ifname);
	*out = &d->dev;
	return 0;
}

int netbuf_plug_cleanup(const char *ifname)
{
	struct plug_dev d = {0};
	int idx = (int)if_nametoindex(ifname);

	if (!idx)
		return -ENODEV;
	d.sk = nl_socket_alloc();
	if (!d.sk || nl_connect(d.sk, NETLINK_ROUTE) < 0) {
		if (d.sk)
			nl_socket_free(d.sk);
		return -EIO;
	}
	d.ifindex = idx;
	snprintf(d.ifname, sizeof(d.ifname), "%s", ifname);
	ifb_name(d.ifb, sizeof(d.ifb), idx);
	/* Only what is ours: our IFB name, and an ingress qdisc redirecting to it. */
	if (if_nametoindex(d.ifb)) {
		d.ifb_made = true;
		d.ingress_made = true;
	}
	del_tc(&d);
	nl_socket_free(d.sk);
	return 0;
}
