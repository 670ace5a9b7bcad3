#include "diskrepl/replica.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/bitmap.h"
#include "common/io.h"
#include "common/log.h"
#include "diskrepl/dirtylog.h"
#include "diskrepl/journal_format.h"

/* The journal file: diskrepl/journal_format.h. */

struct ient {
	uint64_t epoch, offset, jpos; /* jpos: where the data is in the journal */
	uint32_t length;
	uint16_t type, flags;
};

struct replica {
	char image_path[PATH_MAX], journal_path[PATH_MAX];
	int img, jfd;
	uint64_t jsize, compact_bytes, img_size;
	struct jhdr hdr;
	struct ient *idx; /* journalled, not yet applied, in stream order */
	size_t n, cap;

	bool configured, sync_durable;
	struct ckpt_ha_disk_config cfg;
	int64_t committed, last_barrier;
	int64_t applied; /* last epoch written to the image this session, -1 none */
	uint64_t epoch_writes, sync_rx;
	uint64_t jgen; /* counts journal rewrites: positions change with them */

	/* The last commit, so that replica_rollback can take it back: where its
	 * COMMIT entry lies, what it changed. */
	struct {
		bool valid;              /* it can still be taken back */
		uint64_t epoch;
		int64_t prev;            /* committed before it */
		uint64_t at, end, jgen;  /* the entry is [at, end) of journal jgen */
		uint64_t writes;         /* its committed_writes */
		bool set_base;           /* it set JH_BASE_COMPLETE */
	} last;

	/* replica_adopt: the image was a source of lineage (its bitmap file
	 * said so), and may differ from that lineage's base in the chunks of
	 * bits (chunk octets each) until an incremental copy that resends
	 * them commits. */
	struct {
		bool on;
		uint8_t lineage[16];
		uint32_t chunk;
		uint64_t size; /* the image's, octets */
		struct bitmap bits;
	} adopt;

	struct replica_stats st;
	char err[512];
};

__attribute__((format(printf, 3, 4))) static int fail(struct replica *r, int rc, const char *fmt,
						     ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	return rc;
}

const char *replica_error(const struct replica *r)
{
	return r->err;
}

const char *replica_path(const struct replica *r)
{
	return r->image_path;
}

static uint32_t ent_csum(const struct jent *e)
{
	struct jent c = *e;

	c.hcsum = 0;
	return (uint32_t)XXH3_64bits(&c, sizeof(c));
}

/* A write's data checksum; an empty write has none (0), in every path that
 * writes or checks one (append, compaction, recovery). */
static uint64_t data_csum(const void *data, uint32_t len)
{
	return len ? XXH3_64bits(data, len) : 0;
}

static uint64_t hdr_csum(const struct jhdr *h)
{
	struct jhdr c = *h;

	c.csum = 0;
	return XXH3_64bits(&c, sizeof(c));
}

static int write_header(struct replica *r, int fd)
{
	r->hdr.magic = JRN_MAGIC;
	r->hdr.version = JRN_VERSION;
	r->hdr.csum = hdr_csum(&r->hdr);
	const struct jhdr h = r->hdr;

	if (pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return fail(r, errno ? -errno : -EIO, "journal %s: cannot write its header: %s",
			    r->journal_path, strerror(errno ? errno : EIO));
	if (fdatasync(fd) < 0)
		return fail(r, -errno, "journal %s: fdatasync: %s", r->journal_path,
			    strerror(errno));
	return 0;
}

static int idx_push(struct replica *r, const struct ient *e)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 256;
		struct ient *p = realloc(r->idx, cap * sizeof(*p));

		if (!p)
			return fail(r, -ENOMEM, "out of memory for the journal index");
		r->idx = p;
		r->cap = cap;
	}
	r->idx[r->n++] = *e;
	return 0;
}

/* Makes [off, off+len) of the image read as zeros. */
static int zero_range(struct replica *r, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[65536];

	if (fallocate(r->img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)len) == 0)
		return 0;
	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);

		if (io_pwrite_all(r->img, zeros, n, off) < 0)
			return fail(r, -errno, "replica %s: write: %s", r->image_path,
				    strerror(errno));
		off += n;
		len -= n;
	}
	return 0;
}

static int apply_entry(struct replica *r, const struct ient *e, uint8_t **buf, size_t *bufsz)
{
	if (e->type == JE_ZERO)
		return zero_range(r, e->offset, e->length);
	if (*bufsz < e->length) {
		uint8_t *p = realloc(*buf, e->length);

		if (!p)
			return fail(r, -ENOMEM, "out of memory applying a write of %u octets",
				    e->length);
		*buf = p;
		*bufsz = e->length;
	}
	if (io_pread_all(r->jfd, *buf, e->length, e->jpos) < 0)
		return fail(r, -EIO, "journal %s: read at %llu: %s", r->journal_path,
			    (unsigned long long)e->jpos, strerror(errno ? errno : EIO));
	if (io_pwrite_all(r->img, *buf, e->length, e->offset) < 0)
		return fail(r, -errno, "replica %s: write at %llu: %s", r->image_path,
			    (unsigned long long)e->offset, strerror(errno));
	return 0;
}

/* Applies the index entries of epochs <= upto and removes them. */
static int apply_upto(struct replica *r, int64_t upto)
{
	uint8_t *buf = NULL;
	size_t bufsz = 0, i;
	int rc = 0;

	for (i = 0; i < r->n && (int64_t)r->idx[i].epoch <= upto; i++) {
		rc = apply_entry(r, &r->idx[i], &buf, &bufsz);
		if (rc < 0)
			break;
	}
	free(buf);
	if (i) {
		memmove(r->idx, r->idx + i, (r->n - i) * sizeof(*r->idx));
		r->n -= i;
	}
	return rc;
}

/* Rewrites the journal as its header plus the entries still in the index
 * (uncommitted ones), after syncing the image: what was applied no longer
 * needs the journal. */
static int compact(struct replica *r)
{
	char tmp[PATH_MAX + 8];
	uint8_t *buf = NULL;
	size_t bufsz = 0;
	uint64_t pos = sizeof(struct jhdr);
	int fd, rc = 0;

	if (fdatasync(r->img) < 0)
		return fail(r, -errno, "replica %s: fdatasync: %s", r->image_path, strerror(errno));
	if (r->n == 0) {
		/* Nothing to keep: cut the journal in place, which needs no free
		 * space (a full disk must not stop a failover). A crash half way
		 * replays applied writes again, which is harmless. */
		rc = write_header(r, r->jfd);
		if (rc == 0 && ftruncate(r->jfd, sizeof(struct jhdr)) < 0)
			rc = fail(r, -errno, "journal %s: truncate: %s", r->journal_path,
				  strerror(errno));
		if (rc == 0 && fdatasync(r->jfd) < 0)
			rc = fail(r, -errno, "journal %s: fdatasync: %s", r->journal_path,
				  strerror(errno));
		if (rc == 0) {
			r->jsize = sizeof(struct jhdr);
			r->st.compactions++;
		}
		r->jgen++;
		return rc;
	}
	snprintf(tmp, sizeof(tmp), "%s.new", r->journal_path);
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(r, -errno, "cannot create %s: %s", tmp, strerror(errno));
	rc = write_header(r, fd);
	for (size_t i = 0; rc == 0 && i < r->n; i++) {
		struct ient *e = &r->idx[i];
		struct jent je = {.magic = JENT_MAGIC, .type = e->type, .flags = e->flags,
				  .epoch = e->epoch, .offset = e->offset, .length = e->length};

		if (e->type == JE_WRITE) {
			if (bufsz < e->length) {
				free(buf);
				bufsz = e->length;
				buf = malloc(bufsz);
				if (!buf) {
					rc = fail(r, -ENOMEM, "out of memory compacting the journal");
					break;
				}
			}
			if (io_pread_all(r->jfd, buf, e->length, e->jpos) < 0) {
				rc = fail(r, -EIO, "journal %s: read: %s", r->journal_path,
					  strerror(errno ? errno : EIO));
				break;
			}
			je.dcsum = data_csum(buf, e->length);
		}
		je.hcsum = ent_csum(&je);
		if (io_pwrite_all(fd, &je, sizeof(je), pos) < 0 ||
		    (e->type == JE_WRITE && io_pwrite_all(fd, buf, e->length, pos + sizeof(je)) < 0)) {
			rc = fail(r, -errno, "cannot write %s: %s", tmp, strerror(errno));
			break;
		}
		pos += sizeof(je);
		if (e->type == JE_WRITE) {
			e->jpos = pos;
			pos += e->length;
		}
	}
	free(buf);
	if (rc == 0 && fdatasync(fd) < 0)
		rc = fail(r, -errno, "cannot sync %s: %s", tmp, strerror(errno));
	if (rc == 0 && rename(tmp, r->journal_path) < 0)
		rc = fail(r, -errno, "cannot replace %s: %s", r->journal_path, strerror(errno));
	if (rc < 0) {
		close(fd);
		unlink(tmp);
		return rc;
	}
	io_fsync_parent(r->journal_path);
	close(r->jfd);
	r->jfd = fd;
	r->jsize = pos;
	r->jgen++;
	r->st.compactions++;
	return 0;
}

/* Looks for a valid entry header anywhere after from. */
static bool valid_entry_after(struct replica *r, uint64_t from)
{
	uint8_t buf[65536 + sizeof(struct jent)];

	for (uint64_t pos = from; pos + sizeof(struct jent) <= r->jsize;
	     pos += sizeof(buf) - sizeof(struct jent)) {
		ssize_t got = pread(r->jfd, buf, sizeof(buf), (off_t)pos);

		if (got < (ssize_t)sizeof(struct jent))
			return false;
		for (size_t i = 0; i + sizeof(struct jent) <= (size_t)got; i++) {
			struct jent e;

			memcpy(&e, buf + i, sizeof(e));
			if (e.magic == JENT_MAGIC && ent_csum(&e) == e.hcsum)
				return true;
		}
	}
	return false;
}

/* Reads the journal into the index; on return the index holds every valid
 * entry and *committed the last committed epoch (-1 none). */
static int scan(struct replica *r, int64_t *committed)
{
	uint64_t pos = sizeof(struct jhdr);
	uint8_t *buf = NULL;
	size_t bufsz = 0;
	int rc = 0;

	*committed = -1;
	while (pos < r->jsize) {
		struct jent e;
		const char *why = NULL;

		if (pos + sizeof(e) > r->jsize) {
			why = "a torn entry header";
		} else if (io_pread_all(r->jfd, &e, sizeof(e), pos) < 0) {
			rc = fail(r, -EIO, "journal %s: read: %s", r->journal_path,
				  strerror(errno ? errno : EIO));
			break;
		} else if (e.magic != JENT_MAGIC || ent_csum(&e) != e.hcsum ||
			   (e.type != JE_WRITE && e.type != JE_ZERO && e.type != JE_COMMIT)) {
			if (valid_entry_after(r, pos + 1)) {
				rc = fail(r, -EBADMSG,
					  "journal %s is corrupt: the entry at offset %llu is damaged "
					  "and valid entries follow it; the replica was not changed. "
					  "It cannot be trusted: move the replica and its journal "
					  "aside and re-protect (a full resynchronisation)",
					  r->journal_path, (unsigned long long)pos);
				break;
			}
			why = "a damaged last entry";
		} else if (e.type == JE_WRITE && pos + sizeof(e) + e.length > r->jsize) {
			why = "a torn write";
		} else if (e.type == JE_WRITE) {
			if (bufsz < e.length) {
				free(buf);
				bufsz = e.length;
				buf = malloc(bufsz);
				if (!buf) {
					rc = fail(r, -ENOMEM, "out of memory reading the journal");
					break;
				}
			}
			if (io_pread_all(r->jfd, buf, e.length, pos + sizeof(e)) < 0) {
				rc = fail(r, -EIO, "journal %s: read: %s", r->journal_path,
					  strerror(errno ? errno : EIO));
				break;
			}
			if (data_csum(buf, e.length) != e.dcsum) {
				if (pos + sizeof(e) + e.length < r->jsize) {
					rc = fail(r, -EBADMSG,
						  "journal %s is corrupt: the data of the write at "
						  "offset %llu (epoch %llu) fails its checksum and more "
						  "entries follow; the replica was not changed. Move the "
						  "replica and its journal aside and re-protect (a full "
						  "resynchronisation)",
						  r->journal_path, (unsigned long long)pos,
						  (unsigned long long)e.epoch);
					break;
				}
				why = "a torn last write";
			}
		}
		if (why) {
			log_warn("journal %s: %s at offset %llu (a crash while appending): "
				 "dropping %llu octets of uncommitted data",
				 r->journal_path, why, (unsigned long long)pos,
				 (unsigned long long)(r->jsize - pos));
			break;
		}
		if (e.type == JE_COMMIT) {
			if ((int64_t)e.epoch > *committed)
				*committed = (int64_t)e.epoch;
		} else {
			struct ient ie = {.epoch = e.epoch, .offset = e.offset,
					  .jpos = pos + sizeof(e), .length = e.length,
					  .type = e.type, .flags = e.flags};

			/* Recovery applies a prefix of the index (the epochs up to
			 * the last commit): a write older than the one before it
			 * cannot come from this code. */
			if (r->n && e.epoch < r->idx[r->n - 1].epoch) {
				rc = fail(r, -EBADMSG,
					  "journal %s is corrupt: the entry at offset %llu belongs to "
					  "epoch %llu, after one of epoch %llu; the replica was not "
					  "changed. Move the replica and its journal aside and "
					  "re-protect (a full resynchronisation)",
					  r->journal_path, (unsigned long long)pos,
					  (unsigned long long)e.epoch,
					  (unsigned long long)r->idx[r->n - 1].epoch);
				break;
			}
			/* Writes are journalled only after a configuration has set
			 * the size: a header without one describes an empty disk. */
			if (e.offset > r->hdr.size || e.length > r->hdr.size - e.offset) {
				rc = fail(r, -EBADMSG,
					  "journal %s is corrupt: a write at offset %llu lies beyond "
					  "the disk's %llu octets; the replica was not changed",
					  r->journal_path, (unsigned long long)e.offset,
					  (unsigned long long)r->hdr.size);
				break;
			}
			rc = idx_push(r, &ie);
			if (rc < 0)
				break;
		}
		pos += sizeof(e) + (e.type == JE_WRITE ? e.length : 0);
	}
	free(buf);
	return rc;
}

static int recover(struct replica *r)
{
	int64_t committed;
	size_t before;
	int rc;

	if (r->jsize == 0) {
		memset(&r->hdr, 0, sizeof(r->hdr));
		rc = write_header(r, r->jfd);
		r->jsize = sizeof(r->hdr);
		return rc;
	}
	if (r->jsize < sizeof(r->hdr) ||
	    io_pread_all(r->jfd, &r->hdr, sizeof(r->hdr), 0) < 0 || r->hdr.magic != JRN_MAGIC ||
	    r->hdr.csum != hdr_csum(&r->hdr))
		return fail(r, -EBADMSG,
			    "%s is not a replica journal or its header is damaged; the replica "
			    "was not changed. Move it aside to start a new replica (a full "
			    "resynchronisation)",
			    r->journal_path);
	if (r->hdr.version != JRN_VERSION)
		return fail(r, -EPROTONOSUPPORT, "journal %s has version %u, this build reads %u",
			    r->journal_path, r->hdr.version, JRN_VERSION);
	rc = scan(r, &committed);
	if (rc < 0)
		return rc;
	before = r->n;
	rc = apply_upto(r, committed);
	if (rc < 0)
		return rc;
	r->st.recovered_writes = before - r->n;
	r->st.dropped_writes = r->n;
	r->n = 0; /* uncommitted: the primary sends them again */
	if (before)
		log_info("journal %s: recovered %zu committed writes (through epoch %lld), "
			 "dropped %llu uncommitted",
			 r->journal_path, before - (size_t)r->st.dropped_writes, (long long)committed,
			 (unsigned long long)r->st.dropped_writes);
	return compact(r);
}

int replica_open(const char *image, const char *journal, uint64_t compact_bytes,
		 struct replica **out, char *err, size_t errlen)
{
	struct replica *r = calloc(1, sizeof(*r));
	struct stat sb;
	int rc;

	*out = NULL;
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r->img = r->jfd = -1;
	r->committed = r->last_barrier = r->applied = -1;
	r->compact_bytes = compact_bytes ? compact_bytes : UINT64_C(64) << 20;
	snprintf(r->image_path, sizeof(r->image_path), "%s", image);
	if (journal)
		snprintf(r->journal_path, sizeof(r->journal_path), "%s", journal);
	else
		snprintf(r->journal_path, sizeof(r->journal_path), "%s.journal", image);

	r->img = open(image, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (r->img < 0) {
		rc = fail(r, -errno, "cannot open the replica %s: %s", image, strerror(errno));
		goto fail;
	}
	r->jfd = open(r->journal_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (r->jfd < 0 || fstat(r->jfd, &sb) < 0) {
		rc = fail(r, -errno, "cannot open the journal %s: %s", r->journal_path,
			  strerror(errno));
		goto fail;
	}
	r->jsize = (uint64_t)sb.st_size;
	rc = recover(r);
	if (rc < 0)
		goto fail;
	*out = r;
	return 0;
fail:
	snprintf(err, errlen, "%s", r->err);
	replica_close(r);
	return rc;
}

static int image_size(struct replica *r, uint64_t *size)
{
	struct stat sb;

	if (fstat(r->img, &sb) < 0)
		return -errno;
	if (S_ISBLK(sb.st_mode))
		return ioctl(r->img, BLKGETSIZE64, size) < 0 ? -errno : 0;
	*size = (uint64_t)sb.st_size;
	return 0;
}

void replica_close(struct replica *r)
{
	if (!r)
		return;
	if (r->img >= 0)
		close(r->img);
	if (r->jfd >= 0)
		close(r->jfd);
	bitmap_destroy(&r->adopt.bits);
	free(r->idx);
	free(r);
}

static void adopt_drop(struct replica *r)
{
	r->adopt.on = false;
	bitmap_destroy(&r->adopt.bits);
}

int replica_adopt(struct replica *r, const char *bitmap_path)
{
	struct dirtylog_base base;
	uint64_t size;
	struct stat sb;
	uint32_t chunk;
	size_t n = 0;
	int rc;

	if (r->hdr.flags & JH_BASE_COMPLETE)
		return fail(r, 0, "its journal says it is a complete replica already: the bitmap "
				  "file %s is not read",
			    bitmap_path);
	if (fstat(r->img, &sb) < 0)
		return fail(r, -errno, "replica %s: %s", r->image_path, strerror(errno));
	rc = image_size(r, &size);
	if (rc < 0)
		return fail(r, rc, "replica %s: %s", r->image_path, strerror(-rc));
	adopt_drop(r);
	rc = dirtylog_read(bitmap_path, size, &sb, &chunk, &r->adopt.bits, &base, r->err,
			   sizeof(r->err));
	if (rc == -ESTALE || (rc == -ENOENT))
		return 0;
	if (rc < 0)
		return rc;
	if (!base.known) {
		bitmap_destroy(&r->adopt.bits);
		return fail(r, 0, "the bitmap file %s holds no complete base (the first copy "
				  "from this image never committed)",
			    bitmap_path);
	}
	for (size_t c = bitmap_next_set(&r->adopt.bits, 0); c < r->adopt.bits.nbits;
	     c = bitmap_next_set(&r->adopt.bits, c + 1))
		n++;
	memcpy(r->adopt.lineage, base.lineage, sizeof(r->adopt.lineage));
	r->adopt.chunk = chunk;
	r->adopt.size = size;
	r->adopt.on = true;
	snprintf(r->err, sizeof(r->err), "%zu chunks of %u KiB may differ from it", n, chunk >> 10);
	return 1;
}

bool replica_lineage(const struct replica *r, uint8_t out[16])
{
	if ((r->hdr.flags & (JH_SOURCE_SET | JH_BASE_COMPLETE)) !=
	    (JH_SOURCE_SET | JH_BASE_COMPLETE))
		return false;
	memcpy(out, r->hdr.source_id, 16);
	return true;
}

int replica_need(const struct replica *r, uint32_t disk, void **body, uint32_t *len)
{
	struct ckpt_ha_disk_need_hdr h = {.disk = disk, .chunk = r->adopt.chunk,
					  .size = r->adopt.size,
					  .nchunks = r->adopt.bits.nbits};
	size_t words = BITMAP_WORDS(r->adopt.bits.nbits);
	uint8_t *b;

	if (!r->adopt.on)
		return -ENOENT;
	b = malloc(sizeof(h) + words * 8);
	if (!b)
		return -ENOMEM;
	memcpy(h.source_id, r->adopt.lineage, sizeof(h.source_id));
	memcpy(b, &h, sizeof(h));
	memcpy(b + sizeof(h), r->adopt.bits.words, words * 8);
	*body = b;
	*len = (uint32_t)(sizeof(h) + words * 8);
	return 0;
}


int replica_config(struct replica *r, const struct ckpt_ha_disk_config *c)
{
	bool full = c->flags & CKPT_DISKCFG_FULL;
	uint64_t have;
	struct stat sb;
	int rc;

	/* A new session: whatever the last one left uncommitted is void. */
	r->n = 0;
	rc = compact(r);
	if (rc < 0)
		return rc;
	bool adopted = false;

	if (full) {
		adopt_drop(r); /* everything comes again */
	} else if (r->adopt.on && !memcmp(r->adopt.lineage, c->source_id, sizeof(c->source_id))) {
		/* The old primary's image: the chunks its bitmap file names
		 * must come again; then it is a complete copy of that lineage,
		 * which the first commit records (it sets the base). */
		if (!(c->flags & CKPT_DISKCFG_NEED_MET))
			return fail(r, -EAGAIN,
				    "the replica %s is this disk's old primary image: chunks it "
				    "may hold that the new primary never had are asked for "
				    "(HA_DISK_NEED)",
				    r->image_path);
		memcpy(r->hdr.source_id, c->source_id, sizeof(c->source_id));
		r->hdr.flags = JH_SOURCE_SET;
		r->hdr.size = c->size;
		adopted = true;
	}
	if (!full && !adopted && (!(r->hdr.flags & JH_SOURCE_SET) ||
		      memcmp(r->hdr.source_id, c->source_id, sizeof(c->source_id)) ||
		      !(r->hdr.flags & JH_BASE_COMPLETE) || r->hdr.size != c->size))
		return fail(r, -ESTALE,
			    "the replica %s is not a complete copy of this primary disk: "
			    "a full resynchronisation is needed",
			    r->image_path);
	rc = image_size(r, &have);
	if (rc < 0)
		return fail(r, rc, "replica %s: %s", r->image_path, strerror(-rc));
	if (fstat(r->img, &sb) == 0 && S_ISREG(sb.st_mode) && have != c->size) {
		if (ftruncate(r->img, (off_t)c->size) < 0)
			return fail(r, -errno, "replica %s: cannot size it to %llu octets: %s",
				    r->image_path, (unsigned long long)c->size, strerror(errno));
	} else if (have < c->size) {
		return fail(r, -ENOSPC, "replica %s holds %llu octets, the disk has %llu",
			    r->image_path, (unsigned long long)have, (unsigned long long)c->size);
	}
	if (full) {
		memcpy(r->hdr.source_id, c->source_id, sizeof(c->source_id));
		r->hdr.flags = JH_SOURCE_SET;
		r->hdr.size = c->size;
		rc = write_header(r, r->jfd);
		if (rc < 0)
			return rc;
	}
	r->cfg = *c;
	r->img_size = c->size;
	r->configured = true;
	r->sync_durable = c->sync_bytes == 0;
	r->committed = r->last_barrier = r->applied = -1;
	r->last.valid = false;
	r->epoch_writes = r->sync_rx = 0;
	r->st.size = c->size;
	return 0;
}

/* Appends one entry; on failure the journal is cut back to where it was. */
static int append(struct replica *r, struct jent *e, const void *data, uint32_t dlen)
{
	uint64_t at = r->jsize;

	e->magic = JENT_MAGIC;
	e->dcsum = data_csum(data, dlen);
	e->hcsum = ent_csum(e);
	if (io_pwrite_all(r->jfd, e, sizeof(*e), at) < 0 ||
	    (dlen && io_pwrite_all(r->jfd, data, dlen, at + sizeof(*e)) < 0)) {
		int err = errno ? errno : EIO;

		if (ftruncate(r->jfd, (off_t)at) < 0)
			log_warn("journal %s: cannot cut back a failed append: %s",
				 r->journal_path, strerror(errno));
		return fail(r, -err, "journal %s: cannot append %u octets: %s%s", r->journal_path,
			    dlen, strerror(err),
			    err == ENOSPC ? " (the secondary's disk is full)" : "");
	}
	r->jsize = at + sizeof(*e) + dlen;
	return 0;
}

int replica_write(struct replica *r, const struct ckpt_ha_disk_write_hdr *h, const void *data)
{
	bool zero = h->flags & CKPT_DISK_ZERO;

	if (!r->configured)
		return fail(r, -EPROTO, "a disk write before the disk's configuration");
	if (h->offset > r->img_size || h->length > r->img_size - h->offset)
		return fail(r, -EPROTO, "a write at %llu+%u lies beyond the disk's %llu octets",
			    (unsigned long long)h->offset, h->length,
			    (unsigned long long)r->img_size);
	if (h->flags & CKPT_DISK_SYNC) {
		int rc;

		if (r->last_barrier >= 0)
			return fail(r, -EPROTO, "resynchronisation data after the first barrier");
		rc = zero ? zero_range(r, h->offset, h->length)
			  : (io_pwrite_all(r->img, data, h->length, h->offset) < 0
				     ? fail(r, -errno, "replica %s: write: %s%s", r->image_path,
					    strerror(errno),
					    errno == ENOSPC ? " (the secondary's disk is full)" : "")
				     : 0);
		if (rc < 0)
			return rc;
		r->sync_rx += h->length;
		r->st.sync_bytes += h->length;
		return 0;
	}
	if ((int64_t)h->epoch != r->last_barrier + 1)
		return fail(r, -EPROTO, "a write of epoch %llu while epoch %lld is open",
			    (unsigned long long)h->epoch, (long long)r->last_barrier + 1);

	struct jent e = {.type = zero ? JE_ZERO : JE_WRITE, .flags = h->flags, .epoch = h->epoch,
			 .offset = h->offset, .length = h->length};
	int rc = append(r, &e, data, zero ? 0 : h->length);

	if (rc < 0)
		return rc;
	struct ient ie = {.epoch = h->epoch, .offset = h->offset,
			  .jpos = r->jsize - (zero ? 0 : h->length), .length = h->length,
			  .type = e.type, .flags = h->flags};

	rc = idx_push(r, &ie);
	if (rc < 0)
		return rc;
	r->epoch_writes++;
	r->st.writes++;
	r->st.write_bytes += h->length;
	return 0;
}

int replica_barrier(struct replica *r, const struct ckpt_ha_disk_barrier *b)
{
	if (!r->configured)
		return fail(r, -EPROTO, "a disk barrier before the disk's configuration");
	if ((int64_t)b->epoch != r->last_barrier + 1)
		return fail(r, -EPROTO, "barrier of epoch %llu after that of epoch %lld",
			    (unsigned long long)b->epoch, (long long)r->last_barrier);
	if (b->writes != r->epoch_writes)
		return fail(r, -EPROTO, "barrier of epoch %llu counts %llu writes, %llu arrived",
			    (unsigned long long)b->epoch, (unsigned long long)b->writes,
			    (unsigned long long)r->epoch_writes);
	if (r->last_barrier < 0 && r->sync_rx != r->cfg.sync_bytes)
		return fail(r, -EPROTO,
			    "first barrier after %llu octets of resynchronisation, %llu announced",
			    (unsigned long long)r->sync_rx, (unsigned long long)r->cfg.sync_bytes);
	r->last_barrier = (int64_t)b->epoch;
	r->epoch_writes = 0;
	return 0;
}

int replica_take(struct replica *r, uint32_t type, const uint8_t *body)
{
	switch (type) {
	case CKPT_REC_HA_DISK_CONFIG:
		return replica_config(r, (const void *)body);
	case CKPT_REC_HA_DISK_WRITE:
		return replica_write(r, (const void *)body,
				     body + sizeof(struct ckpt_ha_disk_write_hdr));
	case CKPT_REC_HA_DISK_BARRIER:
		return replica_barrier(r, (const void *)body);
	default:
		return fail(r, -EPROTO, "record 0x%08x is no disk record", type);
	}
}

bool replica_ready(const struct replica *r)
{
	return r->configured && r->last_barrier >= 0;
}

/* Takes the last commit out of the journal, durably: when this returns 0,
 * no reopen recovers its epoch as committed. Its writes stay in the index
 * (uncommitted). Crash points, in order:
 *
 *   (header: JH_BASE_COMPLETE cleared, fdatasync; only if the commit set it)
 *   COMMIT(N) cut off the journal's end, fdatasync
 *
 * A crash before the cut recovers epoch N (with the flag cleared the next
 * copy is a full one, as the primary wants: it never saw N acknowledged);
 * after it, epoch N is gone. The cut needs no free space. Entries appended
 * after COMMIT(N) (not in ha-receive's order, but allowed by this API) are
 * kept by rewriting the journal without the COMMIT instead: committed
 * epochs go to the image first, since the rewrite keeps no COMMIT. */
static int uncommit(struct replica *r)
{
	int hrc = 0, rc;

	if (r->last.set_base) {
		r->hdr.flags &= ~JH_BASE_COMPLETE;
		/* Even if this fails the COMMIT goes: a stale flag is harmless
		 * (the primary asks for an incremental copy only of a lineage it
		 * saw acknowledged), a stale COMMIT is not. */
		hrc = write_header(r, r->jfd);
		if (hrc == 0)
			r->last.set_base = false;
	}
	if (r->last.jgen == r->jgen && r->last.end == r->jsize) {
		if (ftruncate(r->jfd, (off_t)r->last.at) < 0)
			return fail(r, -errno, "journal %s: truncate: %s", r->journal_path,
				    strerror(errno));
		r->jsize = r->last.at;
		r->last.end = UINT64_MAX; /* nothing left to cut */
		if (fdatasync(r->jfd) < 0)
			return fail(r, -errno, "journal %s: fdatasync: %s", r->journal_path,
				    strerror(errno));
		return hrc;
	}
	if (r->last.prev > r->applied)
		r->applied = r->last.prev;
	rc = apply_upto(r, r->last.prev);
	if (rc == 0)
		rc = compact(r); /* its header is r->hdr, the flag cleared */
	if (rc == 0)
		r->last.set_base = false;
	return rc;
}

/* Forgets the last commit in memory, then in the journal. */
static int take_back(struct replica *r)
{
	r->last.valid = false;
	r->committed = r->last.prev;
	r->st.commits--;
	r->st.committed_writes -= r->last.writes;
	return uncommit(r);
}

int replica_commit(struct replica *r, uint64_t epoch)
{
	struct jent e = {.type = JE_COMMIT, .epoch = epoch};
	uint64_t at = r->jsize, writes = 0;
	int rc;

	if (!r->configured || r->last_barrier < (int64_t)epoch)
		return fail(r, -EPROTO, "checkpoint %llu arrived before the disk's barrier",
			    (unsigned long long)epoch);
	if ((int64_t)epoch <= r->committed)
		return fail(r, -EPROTO, "checkpoint %llu after that of epoch %lld",
			    (unsigned long long)epoch, (long long)r->committed);
	/* Resync data went straight to the image: it must be durable before a
	 * commit makes the replica a copy the primary stops tracking. */
	if (!r->sync_durable) {
		if (fdatasync(r->img) < 0)
			return fail(r, -errno, "replica %s: fdatasync: %s", r->image_path,
				    strerror(errno));
		r->sync_durable = true;
	}
	rc = append(r, &e, NULL, 0);
	if (rc < 0)
		return rc;
	if (fdatasync(r->jfd) < 0) {
		rc = fail(r, -errno, "journal %s: fdatasync: %s", r->journal_path, strerror(errno));
		/* The entry may reach the disk later: a COMMIT that returned an
		 * error must not be recovered. */
		if (ftruncate(r->jfd, (off_t)at) == 0)
			r->jsize = at; /* the next append goes there */
		if (r->jsize != at || fdatasync(r->jfd) < 0)
			log_warn("journal %s: cannot cut back COMMIT(%llu) after a failed "
				 "fdatasync: %s",
				 r->journal_path, (unsigned long long)epoch, strerror(errno));
		return rc;
	}
	for (size_t i = 0; i < r->n; i++)
		if ((int64_t)r->idx[i].epoch > r->committed && r->idx[i].epoch <= epoch)
			writes++;
	r->last.valid = true;
	r->last.epoch = epoch;
	r->last.prev = r->committed;
	r->last.at = at;
	r->last.end = r->jsize;
	r->last.jgen = r->jgen;
	r->last.writes = writes;
	r->last.set_base = false;
	r->committed = (int64_t)epoch;
	r->st.commits++;
	r->st.committed_writes += writes;
	if (!(r->hdr.flags & JH_BASE_COMPLETE)) {
		r->hdr.flags |= JH_BASE_COMPLETE;
		r->last.set_base = true;
		adopt_drop(r); /* the journal says it from now on */
		rc = write_header(r, r->jfd);
		if (rc < 0) {
			/* All or nothing: an error leaves the epoch uncommitted. */
			char why[sizeof(r->err)];

			snprintf(why, sizeof(why), "%s", r->err);
			if (take_back(r) < 0)
				log_warn("journal %s: cannot take back COMMIT(%llu) after a failed "
					 "header write: %s",
					 r->journal_path, (unsigned long long)epoch, r->err);
			snprintf(r->err, sizeof(r->err), "%s", why);
		}
	}
	return rc;
}

int replica_apply(struct replica *r)
{
	int rc;

	r->applied = r->committed; /* from here the image may hold it */
	rc = apply_upto(r, r->committed);
	if (rc == 0 && r->jsize > r->compact_bytes)
		rc = compact(r);
	return rc;
}

int replica_rollback(struct replica *r, uint64_t epoch)
{
	int rc;

	if (r->committed < 0 || r->committed != (int64_t)epoch)
		return 0; /* not committed: its commit failed, or was taken back */
	if (r->applied >= (int64_t)epoch)
		return fail(r, -EBUSY,
			    "epoch %llu cannot be taken back: it is already written to the "
			    "replica %s",
			    (unsigned long long)epoch, r->image_path);
	if (!r->last.valid || r->last.epoch != epoch)
		return fail(r, -EINVAL,
			    "epoch %llu cannot be taken back: only the last commit can be, once",
			    (unsigned long long)epoch);
	rc = take_back(r);
	if (rc < 0) {
		char why[sizeof(r->err)];

		snprintf(why, sizeof(why), "%s", r->err);
		fail(r, rc,
		     "the commit of epoch %llu could not be taken back from the journal (%s): a "
		     "restart would recover the epoch although the domain's memory never "
		     "committed it. A failover from this process rewrites the journal; if "
		     "none completes, move the replica and its journal aside and re-protect "
		     "(a full resynchronisation)",
		     (unsigned long long)epoch, why);
	}
	return rc;
}

int replica_failover(struct replica *r)
{
	int rc;

	r->applied = r->committed;
	rc = apply_upto(r, r->committed);
	if (rc < 0)
		return rc;
	r->n = 0;
	r->hdr.flags = 0;
	memset(r->hdr.source_id, 0, sizeof(r->hdr.source_id));
	r->configured = false;
	return compact(r);
}

void replica_get_stats(const struct replica *r, struct replica_stats *st)
{
	*st = r->st;
	st->committed = r->committed;
	st->journal_bytes = r->jsize;
	st->base_complete = r->hdr.flags & JH_BASE_COMPLETE;
}
