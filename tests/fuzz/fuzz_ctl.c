/* libFuzzer harness: the local control protocols.
 *
 * The first octet picks the side fuzzed (bit 0, else bit 1):
 *
 *   0  the daemons' control server (common/ctl.c, ctl_serve_fd): the rest
 *      of the input is what a client sends. The handler echoes what it
 *      was given; the harness checks that the request line was split into
 *      cmd and arg as ctl.h describes (the first line, at most 255
 *      octets, cut at the first space) and that the reply reaches the
 *      client whole, including "error: ..." for a failing handler. The
 *      commands "fail" and "big" make the handler fail without a word, or
 *      answer 64 KiB.
 *
 *   1  the client of ha-vm's control socket (vmm/vmm_ctl.c), as ha-protect
 *      and ha-receive use it: octets 1-4 choose four calls, octet 5 where
 *      a memory descriptor comes along (in 8-octet units, 0: none), and
 *      the rest is what "ha-vm" answers. Checked: results are 0 or -errno,
 *      no descriptor or memory leaks, a successful INFO carries terminated
 *      strings, a state blob comes back on success within the size limit.
 *
 *   2  ha-diskrepl's attachment (diskrepl/source.c, diskrepl/proto.h): the
 *      harness plays ha-protect and the guest. Octets 1-2: the ATTACH
 *      (flags: bit 0 FULL, bit 7 without its confirmation pipe; disk
 *      index); then 4-octet steps: guest writes and zeroings
 *      through the NBD backend, and BARRIER, COMMIT, DETACH or unknown
 *      commands. Checked: the records are framed and in order (CONFIG,
 *      SYNC writes of the image's contents, SYNCED, each guest write with
 *      its epoch, BARRIER(N) counting its writes and confirmed on the
 *      pipe first); an ATTACH without a pipe or with a disk index out of
 *      range is refused; an invalid command ends
 *      the attachment; and a second, incremental ATTACH resynchronises
 *      every chunk the guest changed outside a committed epoch (a full one
 *      if nothing was ever committed).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <poll.h>
#include <pthread.h>

#include "checkpoint/stream_format.h"
#include "common/ctl.h"
#include "common/io.h"
#include "common/log.h"
#include "common/sock.h"
#include "diskrepl/proto.h"
#include "diskrepl/source.h"
#include "vmm/vmm_ctl.h"

#define MAX_INPUT 65536u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], vm_sock[128], img_path[128];
static int vm_listen = -1, memfd = -1;

_Noreturn static void bug(const char *what)
{
	fprintf(stderr, "fuzz_ctl: %s\n", what);
	abort();
}

static void cleanup(void)
{
	char p[128];

	unlink(vm_sock);
	unlink(img_path);
	snprintf(p, sizeof(p), "%s/ha-vm", dir);
	rmdir(p);
	rmdir(dir);
}

static void setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	log_set_level(LOG_LVL_ERROR);
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "%s/fuzz_ctl.XXXXXX", base);
	if (!mkdtemp(dir))
		bug("cannot make a scratch directory");
	setenv("HA_RUN_DIR", dir, 1);
	vmm_ctl_path(vm_sock, sizeof(vm_sock), "fuzz");
	snprintf(img_path, sizeof(img_path), "%s/disk.img", dir);
	sock_mkdir_parents(vm_sock);
	vm_listen = sock_unix_listen(vm_sock, 4);
	memfd = memfd_create("fuzz_ctl", MFD_CLOEXEC);
	if (vm_listen < 0 || memfd < 0 || ftruncate(memfd, 65536) < 0)
		bug("cannot set up the scratch sockets");
	atexit(cleanup);
}

/* Open descriptors among the first 256: a leak in the code under test
 * changes the count. */
static int open_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 256; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

/* ---- the daemons' control server ---------------------------------- */

static int echo(void *ctx, const char *cmd, const char *arg, FILE *out)
{
	if (!strcmp(cmd, "fail"))
		return -EINVAL;
	if (!strcmp(cmd, "big")) {
		for (int i = 0; i < 1024; i++)
			fprintf(out, "%063d\n", i);
		return 0;
	}
	fprintf(out, "cmd=%s\narg=%s\n", cmd, arg);
	return 0;
}

static void fuzz_server(const uint8_t *data, size_t size)
{
	char line[256], want[600], *arg;
	static char got[70000];
	size_t n = size < 255 ? size : 255, glen = 0;
	int sv[2], rc;
	ssize_t r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	if (io_write_full(sv[1], data, size) < 0)
		bug("cannot send the request");
	shutdown(sv[1], SHUT_WR);
	rc = ctl_serve_fd(sv[0], echo, NULL);
	close(sv[0]);
	while ((r = read(sv[1], got + glen, sizeof(got) - 1 - glen)) > 0)
		glen += (size_t)r;
	close(sv[1]);
	got[glen] = '\0';
	if (size == 0) {
		if (rc != -ENODATA || glen)
			bug("an empty request was answered");
		return;
	}
	if (rc < 0)
		bug("a request was not answered");

	/* The request as ctl.h describes it, worked out independently. */
	memcpy(line, data, n);
	line[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\r' || line[i] == '\n') {
			line[i] = '\0';
			break;
		}
	arg = strchr(line, ' ');
	if (arg)
		*arg++ = '\0';
	if (!strcmp(line, "fail"))
		snprintf(want, sizeof(want), "error: %s\n", strerror(EINVAL));
	else if (!strcmp(line, "big"))
		snprintf(want, sizeof(want), "%063d\n", 0);
	else
		snprintf(want, sizeof(want), "cmd=%s\narg=%s\n", line, arg ? arg : "");
	if (!strcmp(line, "big") ? glen != 1024 * 64 || memcmp(got, want, 64)
				 : glen != strlen(want) || memcmp(got, want, glen))
		bug("the reply differs from what the request asked");
}

/* ---- the client of ha-vm's control socket ------------------------- */

static void check_rc(int rc)
{
	if (rc > 0 || rc < -4095)
		bug("a call returned neither 0 nor -errno");
}

static void fuzz_vm_client(const uint8_t *data, size_t size)
{
	static const uint8_t state[40] = {1, 2, 3};
	struct vmm_ctl *c = NULL;
	size_t at;
	int fd, before = open_fds();

	if (size < 5)
		return;
	if (vmm_ctl_connect("fuzz", &c) < 0)
		bug("cannot connect to the scratch socket");
	fd = sock_tcp_accept(vm_listen);
	if (fd < 0)
		bug("cannot accept on the scratch socket");
	/* The answers, the descriptor riding on the octets from "at" on. */
	at = (size_t)data[4] * 8;
	if (!data[4] || at >= size - 5) {
		if (io_write_full(fd, data + 5, size - 5) < 0)
			bug("cannot send the answers");
	} else if (io_write_full(fd, data + 5, at) < 0 ||
		   sock_send_fd(fd, memfd, data + 5 + at, size - 5 - at) < 0) {
		bug("cannot send the answers");
	}
	shutdown(fd, SHUT_WR);

	for (int i = 0; i < 4; i++) {
		struct vmm_ctl_info info;
		uint64_t bm[4] = {0}, len = 0;
		uint8_t *mem = NULL;
		void *blob = NULL;
		size_t blen = 0;
		int rc;

		switch (data[i] % 9) {
		case 0:
			rc = vmm_ctl_info(c, &info);
			if (rc == 0 && (!memchr(info.name, 0, sizeof(info.name)) ||
					!memchr(info.tap, 0, sizeof(info.tap)) ||
					!memchr(info.disk, 0, sizeof(info.disk))))
				bug("INFO returned a string without its end");
			break;
		case 1:
			rc = vmm_ctl_map(c, &mem, &len);
			if (rc == 0 && (!mem || !len))
				bug("a mapping without memory");
			break;
		case 2:
			rc = vmm_ctl_pause(c);
			break;
		case 3:
			rc = vmm_ctl_resume(c);
			break;
		case 4:
			rc = vmm_ctl_dirty_reset(c);
			break;
		case 5:
			rc = vmm_ctl_harvest(c, bm, 4);
			break;
		case 6:
			rc = vmm_ctl_get_state(c, &blob, &blen);
			if (rc == 0 && (!blob || blen > VMM_CTL_BODY_MAX))
				bug("GET_STATE succeeded without a blob");
			if (rc == 0)
				free(blob); /* on failure nothing is left (LeakSanitizer) */
			break;
		case 7:
			rc = vmm_ctl_activate(c, state, sizeof(state));
			break;
		default:
			rc = vmm_ctl_stop(c);
			break;
		}
		check_rc(rc);
	}
	vmm_ctl_close(c);
	close(fd);
	if (open_fds() != before)
		bug("a descriptor leaked");
}

/* ---- ha-diskrepl's attachment --------------------------------------- */

#define DISK_SIZE 65536u
#define CHUNK 4096u
#define NCHUNKS (DISK_SIZE / CHUNK)
#define MAX_STEPS 64
#define WAIT_MS 20000

/* source_attach runs on one worker thread for the whole run (a thread per
 * input costs more than the input under ASan). */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct source *job_src;
static int job_fd = -1;
static bool job_done = true;

static void *attach_worker(void *arg)
{
	(void)arg;
	for (;;) {
		struct source *src;
		int fd;

		pthread_mutex_lock(&mu);
		while (!job_src)
			pthread_cond_wait(&cv, &mu);
		src = job_src;
		fd = job_fd;
		pthread_mutex_unlock(&mu);
		source_attach(src, fd);
		pthread_mutex_lock(&mu);
		job_src = NULL;
		job_done = true;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

static void attach_start(struct source *src, int fd)
{
	pthread_mutex_lock(&mu);
	job_src = src;
	job_fd = fd;
	job_done = false;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static void attach_wait(void)
{
	pthread_mutex_lock(&mu);
	while (!job_done)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
}

struct gwrite {
	uint64_t off;
	uint32_t len;
	int64_t epoch; /* of its mirror record, -1 if not mirrored */
};

/* One attachment as ha-protect sees it, and what the harness expects. */
struct att {
	int fd, ack;        /* the socket; the barrier confirmations' pipe */
	bool attached;      /* as the commands sent so far say */
	uint64_t barriers;  /* BARRIER records seen: the open epoch */
	uint64_t epoch_writes;
	uint64_t sync_bytes, sync_seen;
	bool synced, config, full;
	bool chunk_synced[NCHUNKS];
	struct gwrite *w;   /* the harness's guest writes */
	size_t nw, nmirrored;
};

struct rec {
	uint32_t type, length;
	uint8_t body[CHUNK + 64];
};

/* Reads one record; 0 at the end of the attachment. */
static int read_rec(struct att *a, struct rec *r)
{
	struct drl_rec_hdr h;
	struct pollfd p = {.fd = a->fd, .events = POLLIN};
	size_t pad;
	ssize_t n;

	/* libFuzzer's timer signal interrupts poll: wait out the whole time. */
	int rc, waited = 0;

	while ((rc = poll(&p, 1, 100)) == 0 || (rc < 0 && errno == EINTR))
		if ((waited += 100) >= WAIT_MS)
			break;
	if (rc != 1) {
		fprintf(stderr, "fuzz_ctl: waiting after %zu guest writes, %llu barriers, %s\n", a->nw,
			(unsigned long long)a->barriers, a->attached ? "attached" : "detached");
		bug("ha-diskrepl went silent (an invalid command did not end the attachment?)");
	}
	n = io_read_full(a->fd, &h, sizeof(h));
	if (n == 0)
		return 0;
	if (n != (ssize_t)sizeof(h))
		bug("a record header cut short");
	if (h.length > sizeof(r->body) - 8)
		bug("a record longer than a chunk and its header");
	pad = (8 - h.length % 8) % 8;
	if (io_read_full(a->fd, r->body, h.length + pad) != (ssize_t)(h.length + pad))
		bug("a record cut short");
	for (size_t i = 0; i < pad; i++)
		if (r->body[h.length + i])
			bug("record padding that is not zero");
	r->type = h.type;
	r->length = h.length;
	return 1;
}

static void image_chunk(uint64_t off, uint8_t *buf, uint32_t len)
{
	int fd = open(img_path, O_RDONLY);

	if (fd < 0 || io_pread_all(fd, buf, len, off) < 0)
		bug("cannot read the scratch image");
	close(fd);
}

/* Checks one record against what the attachment must send next. */
static void take_rec(struct att *a, const struct rec *r)
{
	static uint8_t cur[CHUNK];

	if (r->type == CKPT_REC_HA_DISK_CONFIG) {
		struct ckpt_ha_disk_config c;

		if (a->config || r->length != sizeof(c))
			bug("a second or malformed CONFIG");
		memcpy(&c, r->body, sizeof(c));
		if (c.size != DISK_SIZE || c.sync_bytes > DISK_SIZE || c.disk >= CKPT_DISK_MAX)
			bug("a CONFIG with a wrong size or disk");
		a->config = true;
		a->full = c.flags & CKPT_DISKCFG_FULL;
		a->sync_bytes = c.sync_bytes;
		return;
	}
	if (!a->config)
		bug("a record before CONFIG");
	if (r->type == DRL_REC_SYNCED) {
		uint64_t done;

		if (a->synced || r->length != 8)
			bug("a second or malformed SYNCED");
		memcpy(&done, r->body, 8);
		if (done != a->sync_bytes || a->sync_seen != a->sync_bytes)
			bug("SYNCED after other than the announced resynchronisation");
		a->synced = true;
		return;
	}
	if (r->type == CKPT_REC_HA_DISK_BARRIER) {
		struct ckpt_ha_disk_barrier b;

		if (r->length != sizeof(b) || !a->synced)
			bug("a malformed BARRIER, or one before SYNCED");
		memcpy(&b, r->body, sizeof(b));
		if (b.epoch != a->barriers || b.writes != a->epoch_writes)
			bug("a BARRIER with a wrong epoch or write count");
		a->barriers++;
		a->epoch_writes = 0;
		return;
	}
	if (r->type != CKPT_REC_HA_DISK_WRITE)
		bug("a record of an unknown type");

	struct ckpt_ha_disk_write_hdr h;

	if (r->length < sizeof(h))
		bug("a disk write shorter than its header");
	memcpy(&h, r->body, sizeof(h));
	if ((h.flags & ~CKPT_DISK_KNOWN) ||
	    r->length != sizeof(h) + (h.flags & CKPT_DISK_ZERO ? 0 : h.length) ||
	    h.offset > DISK_SIZE || h.length > DISK_SIZE - h.offset)
		bug("a malformed disk write");
	if (h.flags & CKPT_DISK_SYNC) {
		if (a->synced || h.offset % CHUNK || h.length != CHUNK ||
		    a->chunk_synced[h.offset / CHUNK])
			bug("a SYNC write after SYNCED, or not of one whole chunk, or twice");
		/* The image's current contents (a guest write to a chunk is
		 * mirrored after the chunk's SYNC, never before). */
		image_chunk(h.offset, cur, CHUNK);
		if (h.flags & CKPT_DISK_ZERO ? memcmp(cur, (uint8_t[CHUNK]){0}, CHUNK)
					     : memcmp(cur, r->body + sizeof(h), CHUNK))
			bug("a SYNC write that is not the image's contents");
		a->chunk_synced[h.offset / CHUNK] = true;
		a->sync_seen += CHUNK;
		return;
	}
	if (a->nmirrored == a->nw)
		bug("a mirrored write the guest did not make");
	struct gwrite *g = &a->w[a->nmirrored++];

	if (h.offset != g->off || h.length != g->len || h.epoch != a->barriers)
		bug("a mirrored write differs from the guest's (range or epoch)");
	g->epoch = (int64_t)h.epoch;
	a->epoch_writes++;
}

/* Reads records until one of type want (0: the end) has been taken. */
static bool wait_rec(struct att *a, uint32_t want)
{
	static struct rec r;

	for (;;) {
		if (!read_rec(a, &r)) {
			if (want)
				return false;
			return true;
		}
		take_rec(a, &r);
		if (want && r.type == want)
			return true;
	}
}

static void send_cmd(struct att *a, uint32_t op, uint32_t flags, uint64_t epoch, uint32_t disk)
{
	struct drl_cmd c = {.op = op, .flags = flags, .epoch = epoch, .disk = disk};

	/* After the end of the attachment this may fail: nobody reads. */
	send(a->fd, &c, sizeof(c), MSG_NOSIGNAL);
}

/* Ends the attachment (if the harness's commands have not), waits for
 * source_attach to return, then takes what it sent to the end. */
static void att_end(struct att *a, int srv_fd)
{
	if (a->attached)
		send_cmd(a, DRL_DETACH, 0, 0, 0);
	a->attached = false;
	attach_wait();
	close(srv_fd);
	wait_rec(a, 0);
	close(a->fd);
	if (a->ack >= 0)
		close(a->ack);
}

/* Opens an attachment: ATTACH with the write end of the confirmations'
 * pipe (none if !pipe). Returns the server's end of the socket. */
static int att_begin(struct att *a, struct source *src, struct gwrite *w, uint32_t flags,
		     uint32_t disk, bool pipe_too)
{
	struct drl_cmd c = {.op = DRL_ATTACH, .flags = flags, .disk = disk};
	int sv[2], p[2] = {-1, -1};

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    (pipe_too && pipe2(p, O_CLOEXEC) < 0))
		bug("cannot make a socketpair or a pipe");
	*a = (struct att){.fd = sv[1], .ack = p[0], .attached = true, .w = w};
	attach_start(src, sv[0]);
	if (sock_send_fd(a->fd, p[1], &c, sizeof(c)) < 0)
		bug("cannot send ATTACH");
	if (p[1] >= 0)
		close(p[1]);
	return sv[0];
}

/* A valid barrier is confirmed on the pipe before its record. */
static void read_confirmation(struct att *a, uint64_t epoch)
{
	uint64_t e;

	if (io_read_full(a->ack, &e, sizeof(e)) != (ssize_t)sizeof(e) || e != epoch)
		bug("a BARRIER without its confirmation");
}

static void fuzz_attach(const uint8_t *data, size_t size)
{
	static struct gwrite w[MAX_STEPS];
	static uint8_t buf[DISK_SIZE];
	struct source *src;
	struct att a;
	char err[256];
	int64_t committed = -1;
	bool needed[NCHUNKS] = {false};
	int srv, fd;

	if (size < 2)
		return;
	for (size_t i = 0; i < DISK_SIZE; i++)
		buf[i] = i % 3 ? (uint8_t)(i * 13 + i / 4096) : 0;
	memset(buf + 3 * CHUNK, 0, CHUNK); /* an all-zero chunk */
	fd = open(img_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || io_write_full(fd, buf, DISK_SIZE) < 0)
		bug("cannot write the scratch image");
	close(fd);
	if (source_open(img_path, CHUNK, NULL, NULL, &src, err, sizeof(err)) < 0)
		bug(err);

	/* The first attachment: always a full resynchronisation. */
	srv = att_begin(&a, src, w, data[0] & 1, data[1], !(data[0] & 0x80));
	if (data[1] >= CKPT_DISK_MAX || (data[0] & 0x80)) {
		static struct rec r;

		if (read_rec(&a, &r) != 1 || r.type != CKPT_REC_HA_ERROR)
			bug("an ATTACH of a disk index out of range, or without a pipe, was not "
			    "refused");
		a.attached = false;
		att_end(&a, srv);
		source_close(src);
		return;
	}
	if (!wait_rec(&a, DRL_REC_SYNCED) || !a.full || a.sync_bytes != DISK_SIZE)
		bug("the first ATTACH did not resynchronise the whole disk");

	for (size_t i = 2; i + 4 <= size && a.nw < MAX_STEPS; i += 4) {
		const uint8_t *st = data + i;
		uint64_t off = (uint64_t)(st[1] % 64) * 1024;
		/* At most 1 KiB: all the steps' records fit in the socket's
		 * buffer, so a guest write never waits for the harness. */
		uint32_t len = (uint32_t)(st[2] * 4 + (st[3] & 3));
		bool fua = st[0] & 0x80;

		if (len > DISK_SIZE - off)
			len = (uint32_t)(DISK_SIZE - off);
		switch (st[0] % 8) {
		case 0:
		case 1:
		case 2:
			memset(buf, st[3], len);
			w[a.nw] = (struct gwrite){.off = off, .len = len, .epoch = -1};
			a.nw++;
			if (st[0] % 8 == 2 ? source_nbd_ops.zero(src, len, off, fua)
					   : source_nbd_ops.write(src, buf, len, off, fua))
				bug("a guest write failed");
			break;
		case 3:
			send_cmd(&a, DRL_BARRIER, 0, st[1], 0);
			if (a.attached && st[1] == a.barriers) {
				read_confirmation(&a, st[1]);
				if (!wait_rec(&a, CKPT_REC_HA_DISK_BARRIER))
					bug("a valid BARRIER ended the attachment");
			} else if (a.attached) {
				a.attached = false;
				wait_rec(&a, 0);
			}
			break;
		case 4:
			/* Valid once the epoch is closed by its barrier. */
			send_cmd(&a, DRL_COMMIT, 0, st[1], 0);
			if (a.attached && st[1] < a.barriers) {
				if ((int64_t)st[1] > committed)
					committed = st[1];
			} else if (a.attached) {
				a.attached = false;
				wait_rec(&a, 0);
			}
			break;
		case 5:
			send_cmd(&a, DRL_DETACH, 0, 0, 0);
			a.attached = false;
			wait_rec(&a, 0);
			break;
		default:
			send_cmd(&a, st[0] % 8 == 6 ? DRL_ATTACH : 99u + st[1], 0, 0, 0);
			if (a.attached) {
				a.attached = false;
				wait_rec(&a, 0);
			}
			break;
		}
	}
	att_end(&a, srv);
	if (a.nmirrored > a.nw)
		bug("more mirrored writes than guest writes");

	/* What a returning ha-protect must get: every chunk changed outside a
	 * committed epoch. */
	for (size_t i = 0; i < a.nw; i++) {
		if (w[i].epoch >= 0 && w[i].epoch <= committed)
			continue;
		for (uint64_t c = w[i].off / CHUNK; w[i].len && c <= (w[i].off + w[i].len - 1) / CHUNK;
		     c++)
			needed[c] = true;
	}
	srv = att_begin(&a, src, w, 0, 0, true);
	if (!wait_rec(&a, DRL_REC_SYNCED))
		bug("the second ATTACH did not resynchronise");
	if (a.full != (committed < 0))
		bug(a.full ? "a full resynchronisation after a commit"
			   : "an incremental resynchronisation with no commit ever");
	for (size_t c = 0; c < NCHUNKS; c++)
		if ((a.full || needed[c]) && !a.chunk_synced[c])
			bug("a chunk changed outside a committed epoch was not resynchronised");
	att_end(&a, srv);
	source_close(src);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;

	if (!ready) {
		pthread_t th;

		setup();
		if (pthread_create(&th, NULL, attach_worker, NULL))
			bug("cannot start a thread");
		ready = true;
	}
	if (size < 1 || size > MAX_INPUT)
		return 0;
	if (data[0] & 1)
		fuzz_vm_client(data + 1, size - 1);
	else if (data[0] & 2)
		fuzz_attach(data + 1, size - 1);
	else
		fuzz_server(data + 1, size - 1);
	return 0;
}
