/* Writes the generated seeds of the fuzz harnesses (make fuzz-seeds):
 * journals written by the real replica code, NBD client sessions and
 * control-socket exchanges, each in the input layout its harness reads
 * (see the top comment of tests/fuzz/fuzz_NAME.c).
 *
 *   fuzz_seeds DIR     writes DIR/fuzz_journal/seed-*, DIR/fuzz_nbdsrv/...
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/stream_format.h"
#include "common/log.h"
#include "diskrepl/nbdsrv.h"
#include "diskrepl/replica.h"
#include "nbd/nbd_proto.h"
#include "vmm/ctl_proto.h"

#define IMG_SIZE 65536u /* the journal harness's disk */

struct buf {
	uint8_t d[65536];
	size_t n;
};

static const char *outdir;

static void add(struct buf *b, const void *p, size_t len)
{
	if (b->n + len > sizeof(b->d))
		die("a seed outgrew its buffer");
	memcpy(b->d + b->n, p, len);
	b->n += len;
}

static void add8(struct buf *b, uint8_t v)
{
	add(b, &v, 1);
}

static void add16be(struct buf *b, uint16_t v)
{
	v = htobe16(v);
	add(b, &v, 2);
}

static void add32be(struct buf *b, uint32_t v)
{
	v = htobe32(v);
	add(b, &v, 4);
}

static void add64be(struct buf *b, uint64_t v)
{
	v = htobe64(v);
	add(b, &v, 8);
}

static void save(const char *fuzzer, const char *name, const struct buf *b)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", outdir, fuzzer);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/seed-%s", outdir, fuzzer, name);
	f = fopen(path, "wb");
	if (!f || fwrite(b->d, 1, b->n, f) != b->n || fclose(f) != 0)
		die("cannot write %s", path);
	printf("%s (%zu octets)\n", path, b->n);
}

/* ---- fuzz_journal -------------------------------------------------- */

static char jdir[] = "/tmp/fuzz_seeds.XXXXXX";
static char img[128], jrn[128];

static struct replica *jopen(void)
{
	struct replica *r;
	char err[512];

	if (replica_open(img, NULL, 0, &r, err, sizeof(err)) < 0)
		die("replica: %s", err);
	return r;
}

static void jconfig(struct replica *r)
{
	struct ckpt_ha_disk_config c = {.flags = CKPT_DISKCFG_FULL, .size = IMG_SIZE};

	memcpy(c.source_id, "seed-source-id-0", 16);
	if (replica_config(r, &c) < 0)
		die("replica: %s", replica_error(r));
}

static void jwrite(struct replica *r, uint64_t epoch, uint64_t off, uint32_t len, int fill,
		   uint16_t flags)
{
	struct ckpt_ha_disk_write_hdr h = {.epoch = epoch, .offset = off, .length = len,
					   .flags = flags};
	uint8_t d[4096];

	memset(d, fill, sizeof(d));
	if (len > sizeof(d) || replica_write(r, &h, d) < 0)
		die("replica: %s", replica_error(r));
}

static void jbarrier(struct replica *r, uint64_t epoch, uint64_t writes)
{
	struct ckpt_ha_disk_barrier b = {.epoch = epoch, .writes = writes};

	if (replica_barrier(r, &b) < 0)
		die("replica: %s", replica_error(r));
}

/* The journal file as a harness input: mode octet, then the file (mode 0)
 * or the file without its header (mode 1), cut short by cut octets. */
static void jsave(const char *name, uint8_t mode, size_t cut)
{
	struct buf b = {.n = 0};
	uint8_t file[60000];
	int fd = open(jrn, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, file, sizeof(file));
	size_t skip = mode == 1 ? 64 : 0;

	if (fd >= 0)
		close(fd);
	if (n < 64 || (size_t)n - skip < cut)
		die("cannot read the journal %s", jrn);
	add8(&b, mode);
	add(&b, file + skip, (size_t)n - skip - cut);
	save("fuzz_journal", name, &b);
}

/* A structured entry of mode 2 (see fuzz_journal.c). */
static void jent(struct buf *b, uint8_t type, uint8_t epoch, uint8_t damage, uint16_t off16,
		 uint32_t len, int fill)
{
	uint8_t d[4096];

	add8(b, (uint8_t)(type - 1));
	add8(b, epoch);
	add8(b, damage);
	add(b, &(uint16_t){htole16(off16)}, 2);
	add8(b, (uint8_t)len);
	add8(b, (uint8_t)(len >> 8));
	add8(b, (uint8_t)(len >> 16));
	if (type == 1) {
		memset(d, fill, len);
		add(b, d, len);
	}
}

static void journal_seeds(void)
{
	struct replica *r;
	struct buf b = {.n = 0};

	if (!mkdtemp(jdir))
		die("mkdtemp: %s", strerror(errno));
	snprintf(img, sizeof(img), "%s/img", jdir);
	snprintf(jrn, sizeof(jrn), "%s/img.journal", jdir);

	/* Epoch 0 committed (not yet applied), epoch 1 half sent: a crash. */
	r = jopen();
	jconfig(r);
	jwrite(r, 0, 100, 200, 0x55, 0);
	jwrite(r, 0, 150, 10, 0x56, CKPT_DISK_FUA);
	jwrite(r, 0, 8192, 4096, 0, CKPT_DISK_ZERO);
	jbarrier(r, 0, 3);
	jwrite(r, 1, 0, 50, 0x66, 0);
	if (replica_commit(r, 0) < 0)
		die("replica: %s", replica_error(r));
	jwrite(r, 1, 60000, 1000, 0x67, 0);
	replica_close(r);
	jsave("crash-after-commit", 0, 0);
	jsave("torn-tail", 0, 300);
	jsave("entries-only", 1, 0);

	/* Only a header, as a fresh replica leaves it. */
	unlink(jrn);
	r = jopen();
	replica_close(r);
	jsave("empty", 0, 0);
	unlink(jrn);
	unlink(img);
	rmdir(jdir);

	/* Mode 2: disk of the image's size, header flags 3. */
	add8(&b, 38);
	jent(&b, 1, 0, 0, 0, 100, 0x11);
	jent(&b, 2, 0, 0, 64, 512, 0);
	jent(&b, 1, 0, 0, 2, 7, 0x12);
	jent(&b, 3, 0, 0, 0, 0, 0);
	jent(&b, 1, 1, 0, 100, 300, 0x13);
	jent(&b, 3, 1, 0, 0, 0, 0);
	jent(&b, 1, 2, 0, 4000, 16, 0x14); /* uncommitted */
	save("fuzz_journal", "structured", &b);
	b.n = 0;
	add8(&b, 38);
	jent(&b, 1, 0, 0, 0, 100, 0x11);
	jent(&b, 3, 0, 0, 0, 0, 0);
	jent(&b, 1, 1, 0x02, 8, 64, 0x12); /* a flipped data octet, then more */
	jent(&b, 3, 1, 0, 0, 0, 0);
	save("fuzz_journal", "structured-damaged", &b);
}

/* ---- fuzz_nbdsrv --------------------------------------------------- */

static void nbd_opt(struct buf *b, uint32_t opt, const void *d, uint32_t len)
{
	add64be(b, NBD_IHAVEOPT);
	add32be(b, opt);
	add32be(b, len);
	add(b, d, len);
}

static void nbd_info_opt(struct buf *b, uint32_t opt, const char *name, int nreq)
{
	struct buf o = {.n = 0};

	add32be(&o, (uint32_t)strlen(name));
	add(&o, name, strlen(name));
	add16be(&o, (uint16_t)nreq);
	for (int i = 0; i < nreq; i++)
		add16be(&o, i ? NBD_INFO_EXPORT : NBD_INFO_BLOCK_SIZE);
	nbd_opt(b, opt, o.d, (uint32_t)o.n);
}

static void nbd_req(struct buf *b, uint16_t flags, uint16_t type, uint64_t off, uint32_t len,
		    int fill)
{
	static uint64_t cookie;
	uint8_t d[4096];

	add32be(b, NBD_REQUEST_MAGIC);
	add16be(b, flags);
	add16be(b, type);
	add64be(b, ++cookie);
	add64be(b, off);
	add32be(b, len);
	if (type == NBD_CMD_WRITE) {
		memset(d, fill, len);
		add(b, d, len);
	}
}

static void nbd_session(struct buf *b)
{
	nbd_req(b, 0, NBD_CMD_WRITE, 4096, 512, 0xab);
	nbd_req(b, 0, NBD_CMD_READ, 4000, 1024, 0);
	nbd_req(b, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 0, 100, 0xcd);
	nbd_req(b, 0, NBD_CMD_FLUSH, 0, 0, 0);
	nbd_req(b, NBD_CMD_FLAG_FUA, NBD_CMD_TRIM, 0, 4096, 0);
	nbd_req(b, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE_ZEROES, 8192, 1024, 0);
	nbd_req(b, 0, NBD_CMD_CACHE, 0, 65536, 0);
	nbd_req(b, 0, NBD_CMD_READ, 65024, 512, 0);
}

static void nbdsrv_seeds(void)
{
	struct buf b = {.n = 0};

	/* What a modern client does: list, ask, go, then I/O. */
	add8(&b, 0x40);
	add32be(&b, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	nbd_opt(&b, NBD_OPT_LIST, NULL, 0);
	nbd_opt(&b, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	nbd_info_opt(&b, NBD_OPT_INFO, "disk0", 2);
	nbd_info_opt(&b, NBD_OPT_GO, "", 1);
	nbd_session(&b);
	nbd_req(&b, 0, NBD_CMD_DISC, 0, 0, 0);
	save("fuzz_nbdsrv", "go-session", &b);

	/* The old way in: EXPORT_NAME, with the 124 zeros. */
	b.n = 0;
	add8(&b, 0x00);
	add32be(&b, NBD_FLAG_C_FIXED_NEWSTYLE);
	nbd_opt(&b, NBD_OPT_STARTTLS, NULL, 0);
	nbd_opt(&b, NBD_OPT_EXPORT_NAME, "disk0", 5);
	nbd_req(&b, 0, NBD_CMD_READ, 0, 512, 0);
	nbd_req(&b, 0, NBD_CMD_DISC, 0, 0, 0);
	save("fuzz_nbdsrv", "export-name", &b);

	b.n = 0;
	add8(&b, 0x00);
	add32be(&b, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	nbd_info_opt(&b, NBD_OPT_GO, "other", 0);
	nbd_opt(&b, NBD_OPT_ABORT, NULL, 0);
	save("fuzz_nbdsrv", "unknown-export-abort", &b);

	/* Transmission only (the harness shakes hands), requests that the
	 * server must refuse: out of range, unknown flags, too long. */
	b.n = 0;
	add8(&b, 0x01);
	nbd_session(&b);
	nbd_req(&b, 0, NBD_CMD_READ, 65536, 1, 0);
	nbd_req(&b, 0, NBD_CMD_WRITE, UINT64_MAX - 10, 16, 0x11);
	nbd_req(&b, 0x80, NBD_CMD_FLUSH, 0, 0, 0);
	nbd_req(&b, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_TRIM, 0, 512, 0);
	nbd_req(&b, 0, 99, 0, 0, 0);
	nbd_req(&b, 0, NBD_CMD_READ, 0, NBDSRV_MAX_REQUEST + 1, 0);
	save("fuzz_nbdsrv", "tx-refused", &b);

	/* A failing backend, then a disk of 2^63 - 1 octets. */
	b.n = 0;
	add8(&b, 0x01 | 0x08 | 0x10 | 0x20);
	nbd_session(&b);
	save("fuzz_nbdsrv", "tx-backend-fails", &b);
	b.n = 0;
	add8(&b, 0x01 | 0x06);
	nbd_req(&b, 0, NBD_CMD_WRITE_ZEROES, 0, UINT32_MAX, 0);
	nbd_req(&b, 0, NBD_CMD_READ, INT64_MAX - 4096, 4096, 0);
	nbd_req(&b, 0, NBD_CMD_TRIM, INT64_MAX - 1, 2, 0);
	save("fuzz_nbdsrv", "tx-huge-disk", &b);
}

/* ---- fuzz_ctl ------------------------------------------------------ */

static void vm_reply(struct buf *b, int32_t status, const void *body, uint32_t len)
{
	struct vmm_ctl_rep r = {.status = status, .len = len};

	add(b, &r, sizeof(r));
	add(b, body, len);
}

static void ctl_seeds(void)
{
	static const char *lines[][2] = {
		{"status", "status\n"},        {"interval", "interval 50\n"},
		{"stop", "stop\r\n"},          {"fail", "fail now\n"},
		{"big", "big\n"},              {"unterminated", "interval  7 8"},
	};
	struct vmm_ctl_info info = {.version = VMM_CTL_VERSION, .flags = VMM_INFO_RUNNING,
				    .mem_bytes = 65536, .vcpus = 1};
	uint64_t bm[4] = {1, 0, 0, UINT64_C(1) << 63};
	uint8_t blob[64];
	struct buf b;

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		char name[64];

		b.n = 0;
		add8(&b, 0);
		add(&b, lines[i][1], strlen(lines[i][1]));
		snprintf(name, sizeof(name), "server-%s", lines[i][0]);
		save("fuzz_ctl", name, &b);
	}

	snprintf(info.name, sizeof(info.name), "vm0");
	snprintf(info.tap, sizeof(info.tap), "tap-vm0");
	snprintf(info.disk, sizeof(info.disk), "nbd:/run/ha-diskrepl/vm0.sock");
	memset(blob, 0x42, sizeof(blob));

	/* INFO, map (INFO + MEMFD with the descriptor), PAUSE, GET_STATE. */
	b.n = 0;
	add8(&b, 1);
	add8(&b, 0);
	add8(&b, 1);
	add8(&b, 2);
	add8(&b, 6);
	add8(&b, (uint8_t)(2 * (sizeof(struct vmm_ctl_rep) + sizeof(info)) / 8));
	vm_reply(&b, 0, &info, sizeof(info));
	vm_reply(&b, 0, &info, sizeof(info));
	vm_reply(&b, 0, NULL, 0);
	vm_reply(&b, 0, NULL, 0);
	vm_reply(&b, 0, blob, sizeof(blob));
	save("fuzz_ctl", "vm-info-map-pause-state", &b);

	/* HARVEST, ACTIVATE, RESUME refused, STOP. */
	b.n = 0;
	add8(&b, 1);
	add8(&b, 5);
	add8(&b, 7);
	add8(&b, 3);
	add8(&b, 8);
	add8(&b, 0);
	vm_reply(&b, 0, bm, sizeof(bm));
	vm_reply(&b, 0, NULL, 0);
	vm_reply(&b, -EBUSY, NULL, 0);
	vm_reply(&b, 0, NULL, 0);
	save("fuzz_ctl", "vm-harvest-activate-stop", &b);

	/* ha-diskrepl's attachment: mode 2, ATTACH (flags, disk), steps of
	 * (op, a, b, c): 0-1 write, 2 zero, 3 BARRIER(a), 4 COMMIT(a),
	 * 5 DETACH, 6 ATTACH again, 7 unknown (see fuzz_ctl.c). */
	static const uint8_t session[] = {
		2, 0, 0,
		0, 1, 10, 0x41,  /* write 42 octets at 1 KiB, epoch 0 */
		2, 5, 3, 0,      /* zero 12 octets at 5 KiB */
		3, 0, 0, 0,      /* BARRIER(0) */
		0x80, 20, 200, 7, /* FUA write, epoch 1 */
		4, 0, 0, 0,      /* COMMIT(0) */
		1, 40, 0, 0,     /* an empty write */
		3, 1, 0, 0,      /* BARRIER(1) */
		0, 60, 255, 3,   /* write across two chunks, epoch 2, never committed */
		5, 0, 0, 0,      /* DETACH */
		0, 10, 1, 0x99,  /* a write while detached */
	};
	static const uint8_t refused[][3] = {{2, 0x80, 0}, {2, 1, CKPT_DISK_MAX}};
	static const uint8_t bad_barrier[] = {2, 1, 3, 0, 2, 50, 0, 3, 1, 0, 0, 0, 3, 9, 0, 0};

	b.n = 0;
	add(&b, session, sizeof(session));
	save("fuzz_ctl", "attach-session", &b);
	b.n = 0;
	add(&b, refused[0], 3);
	save("fuzz_ctl", "attach-without-pipe", &b);
	b.n = 0;
	add(&b, refused[1], 3);
	save("fuzz_ctl", "attach-disk-out-of-range", &b);
	b.n = 0;
	add(&b, bad_barrier, sizeof(bad_barrier));
	save("fuzz_ctl", "attach-barrier-out-of-order", &b);

	/* A MEMFD answer that fails but carries the descriptor anyway. */
	b.n = 0;
	add8(&b, 1);
	add8(&b, 1);
	add8(&b, 4);
	add8(&b, 4);
	add8(&b, 4);
	add8(&b, (uint8_t)((sizeof(struct vmm_ctl_rep) + sizeof(info)) / 8));
	vm_reply(&b, 0, &info, sizeof(info));
	vm_reply(&b, -EIO, NULL, 0);
	vm_reply(&b, 0, NULL, 0);
	vm_reply(&b, 0, NULL, 0);
	vm_reply(&b, 0, NULL, 0);
	save("fuzz_ctl", "vm-memfd-error", &b);
}

int main(int argc, char **argv)
{
	log_init(argv[0]);
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR (writes DIR/fuzz_*/seed-*)\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	log_set_level(LOG_LVL_ERROR);
	journal_seeds();
	nbdsrv_seeds();
	ctl_seeds();
	return 0;
}
