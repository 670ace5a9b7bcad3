/* libFuzzer harness: a replica's journal recovery (replica_open) on
 * journals made of fuzzer bytes, next to an image of known content.
 *
 * The first octet picks how the journal is made:
 *   0  the rest of the input is the whole journal file
 *   1  a valid header (disk size = the image's), then the rest as entries
 *   2  a valid header, then entries described by the input and given valid
 *      checksums, optionally damaged (flipped octets, a cut tail), so that
 *      the fuzzer reaches what lies behind the checksums
 *
 * Checked on every input:
 *   - a refused journal (-EBADMSG, -EPROTONOSUPPORT) leaves the image and
 *     the journal exactly as they were;
 *   - an accepted journal leaves an empty journal (its header only) and an
 *     image no larger than the disk the header describes, and opening it
 *     again changes nothing;
 *   - for an undamaged journal of mode 2 of known entry types, the open
 *     succeeds and the image is exactly the original with the committed
 *     writes applied in order; unless an entry lies outside the disk or
 *     goes back to an older epoch than the one before it: then the open
 *     is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/log.h"
#include "diskrepl/journal_format.h"
#include "diskrepl/replica.h"

#define IMG_SIZE 65536u
#define MAX_INPUT 200000u
#define MAX_FILE (MAX_INPUT + 64 * sizeof(struct jent) + sizeof(struct jhdr))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], img_path[128], jrn_path[128];
static uint8_t orig[IMG_SIZE], model[IMG_SIZE], got[IMG_SIZE + 1];
static uint8_t jbuf[MAX_FILE], jback[MAX_FILE];

static void cleanup(void)
{
	char tmp[160];

	snprintf(tmp, sizeof(tmp), "%s.new", jrn_path);
	unlink(tmp);
	unlink(jrn_path);
	unlink(img_path);
	rmdir(dir);
}

static int setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	log_set_level(LOG_LVL_ERROR);
	snprintf(dir, sizeof(dir), "%s/fuzz_journal.XXXXXX", base);
	if (!mkdtemp(dir))
		return -1;
	snprintf(img_path, sizeof(img_path), "%s/img", dir);
	snprintf(jrn_path, sizeof(jrn_path), "%s/img.journal", dir);
	for (size_t i = 0; i < IMG_SIZE; i++)
		orig[i] = (uint8_t)(i * 7 + i / 251);
	atexit(cleanup);
	return 0;
}

_Noreturn static void bug(const char *what)
{
	fprintf(stderr, "fuzz_journal: %s\n", what);
	abort();
}

static void put_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
		bug("cannot write a scratch file");
	close(fd);
}

/* Reads up to cap octets; returns the file's size. */
static size_t get_file(const char *path, void *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	struct stat sb;
	ssize_t n;

	if (fd < 0 || fstat(fd, &sb) < 0)
		bug("cannot read a scratch file");
	n = read(fd, buf, cap);
	close(fd);
	if (n < 0)
		bug("cannot read a scratch file");
	return (size_t)sb.st_size;
}

static void make_header(struct jhdr *h, uint32_t flags, uint64_t disk)
{
	memset(h, 0, sizeof(*h));
	h->magic = JRN_MAGIC;
	h->version = JRN_VERSION;
	h->flags = flags;
	memset(h->source_id, 0x5a, sizeof(h->source_id));
	h->size = disk;
	h->csum = XXH3_64bits(h, sizeof(*h));
}

struct reader {
	const uint8_t *p;
	size_t left;
};

static uint32_t take(struct reader *r, size_t n)
{
	uint32_t v = 0;

	for (size_t i = 0; i < n && r->left; i++, r->left--)
		v |= (uint32_t)*r->p++ << (8 * i);
	return v;
}

enum verdict { ANY, EXACT, REFUSE };

/* Mode 2: each entry is described by 8 octets (type, epoch, damage,
 * offset in 16-octet units, length) followed by its data for a write.
 * Returns the journal's length and what recovery must do with it. */
static size_t make_entries(struct reader *in, uint64_t disk, uint8_t *out, enum verdict *v)
{
	struct {
		uint16_t type;
		uint64_t epoch, off;
		uint32_t len;
		const uint8_t *d;
	} ents[64];
	size_t n = 0, pos = sizeof(struct jhdr);
	int64_t committed = -1;
	uint64_t last_epoch = 0;
	bool damaged = false, odd_type = false, refuse = false, big = false;

	memcpy(model, orig, IMG_SIZE);
	while (in->left >= 8 && n < 64) {
		uint8_t t = (uint8_t)take(in, 1), damage;
		struct jent e = {.magic = JENT_MAGIC};
		size_t dlen;

		e.type = (uint16_t)(t & 0x80 ? t : 1 + t % 3);
		e.epoch = take(in, 1) % 8;
		damage = (uint8_t)take(in, 1);
		e.offset = (uint64_t)take(in, 2) * 16;
		e.length = take(in, 3) & 0x1ffff;
		if (e.type == JE_COMMIT)
			e.offset = e.length = 0;
		dlen = e.type == JE_WRITE ? e.length : 0;
		if (dlen > in->left) {
			dlen = in->left;
			e.length = (uint32_t)dlen;
		}
		e.dcsum = dlen ? XXH3_64bits(in->p, dlen) : 0;
		e.hcsum = (uint32_t)XXH3_64bits(&e, sizeof(e));
		memcpy(out + pos, &e, sizeof(e));
		memcpy(out + pos + sizeof(e), in->p, dlen);
		if (e.type != JE_WRITE && e.type != JE_ZERO && e.type != JE_COMMIT)
			odd_type = true;
		else if (e.type != JE_COMMIT && (e.offset > disk || e.length > disk - e.offset))
			refuse = true;
		else if (e.type != JE_COMMIT && e.epoch < last_epoch)
			refuse = true;
		if (e.type == JE_WRITE || e.type == JE_ZERO) {
			last_epoch = e.epoch;
			big |= e.offset + e.length > IMG_SIZE; /* beyond the model */
		}
		ents[n].type = e.type;
		ents[n].epoch = e.epoch;
		ents[n].off = e.offset;
		ents[n].len = e.length;
		ents[n].d = in->p;
		n++;
		if (e.type == JE_COMMIT && (int64_t)e.epoch > committed)
			committed = (int64_t)e.epoch;
		/* Damage: bit 0 an octet of the entry header, bit 1 an octet of
		 * the data, bit 2 cuts the journal inside this entry. */
		if (damage & 0x1) {
			out[pos + damage % sizeof(e)] ^= 0x40;
			damaged = true;
		}
		if ((damage & 0x2) && dlen) {
			out[pos + sizeof(e) + damage % dlen] ^= 0x01;
			damaged = true;
		}
		in->p += dlen;
		in->left -= dlen;
		if (damage & 0x4) {
			pos += damage % (sizeof(e) + dlen);
			damaged = true;
			break;
		}
		pos += sizeof(e) + dlen;
	}
	*v = damaged || odd_type ? ANY : refuse ? REFUSE : big ? ANY : EXACT;
	if (*v == EXACT)
		for (size_t i = 0; i < n; i++)
			if (ents[i].type != JE_COMMIT && (int64_t)ents[i].epoch <= committed) {
				if (ents[i].type == JE_WRITE)
					memcpy(model + ents[i].off, ents[i].d, ents[i].len);
				else
					memset(model + ents[i].off, 0, ents[i].len);
			}
	return pos;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct reader in = {data + 1, size ? size - 1 : 0};
	struct replica *r = NULL;
	struct jhdr h;
	uint64_t disk = IMG_SIZE;
	size_t jlen = 0, n;
	enum verdict v = ANY;
	char err[512];
	int rc;

	if (!ready) {
		if (setup() < 0)
			bug("cannot make a scratch directory");
		ready = true;
	}
	if (size < 1 || size > MAX_INPUT)
		return 0;
	switch (data[0] % 3) {
	case 0:
		jlen = in.left;
		memcpy(jbuf, in.p, jlen);
		disk = 0;
		break;
	case 1:
		make_header(&h, JH_SOURCE_SET | JH_BASE_COMPLETE, IMG_SIZE);
		memcpy(jbuf, &h, sizeof(h));
		memcpy(jbuf + sizeof(h), in.p, in.left);
		jlen = sizeof(h) + in.left;
		break;
	case 2: {
		static const uint64_t disks[4] = {IMG_SIZE, IMG_SIZE / 2, 0, UINT64_C(1) << 40};

		disk = disks[(data[0] / 3) % 4];
		make_header(&h, (data[0] / 12) % 4, disk);
		memcpy(jbuf, &h, sizeof(h));
		jlen = make_entries(&in, disk, jbuf, &v);
		break;
	}
	}
	if (jlen >= sizeof(h)) {
		memcpy(&h, jbuf, sizeof(h));
		if (h.magic == JRN_MAGIC)
			disk = h.size;
	}
	put_file(img_path, orig, IMG_SIZE);
	put_file(jrn_path, jbuf, jlen);

	rc = replica_open(img_path, jrn_path, 0, &r, err, sizeof(err));
	if (rc == -EBADMSG || rc == -EPROTONOSUPPORT) {
		if (get_file(img_path, got, sizeof(got)) != IMG_SIZE || memcmp(got, orig, IMG_SIZE))
			bug("a refused journal changed the image");
		if (get_file(jrn_path, jback, sizeof(jback)) != jlen || memcmp(jback, jbuf, jlen))
			bug("a refused journal was changed");
		if (v == EXACT)
			bug("a valid journal was refused");
		return 0;
	}
	if (rc < 0) {
		if (v == EXACT)
			bug("a valid journal could not be recovered");
		return 0;
	}
	replica_close(r);
	if (v == REFUSE)
		bug("a journal with an entry outside the disk or out of epoch order was accepted");
	n = get_file(img_path, got, sizeof(got));
	if (n > IMG_SIZE && n > disk)
		bug("recovery wrote beyond the disk the journal describes");
	if (v == EXACT && (n != IMG_SIZE || memcmp(got, model, IMG_SIZE)))
		bug("the recovered image is not the committed state");
	if (get_file(jrn_path, jback, sizeof(jback)) != sizeof(struct jhdr))
		bug("a recovered journal was not emptied");

	/* Recovery is idempotent: a second open finds nothing to do. */
	memcpy(model, got, n < IMG_SIZE ? n : IMG_SIZE);
	rc = replica_open(img_path, jrn_path, 0, &r, err, sizeof(err));
	if (rc < 0)
		bug("a recovered journal cannot be opened again");
	replica_close(r);
	if (get_file(img_path, got, sizeof(got)) != n || memcmp(got, model, n < IMG_SIZE ? n : IMG_SIZE))
		bug("a second recovery changed the image");
	return 0;
}
