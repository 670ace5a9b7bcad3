#include "diskrepl/dirtylog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/io.h"

#define DL_MAGIC UINT64_C(0x314d424c52444148) /* "HADRLBM1" */
#define DL_VERSION 1u
#define DL_BASE_KNOWN 0x1u
#define DL_BITS_AT 4096

struct dlhdr {
	uint64_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t chunk;
	uint32_t reserved0;
	uint64_t size;
	uint64_t img_dev, img_ino; /* st_dev/st_ino of a file, st_rdev/0 of a device */
	uint8_t lineage[16];
	uint64_t csum; /* XXH3-64 of the header with csum = 0 */
	uint8_t reserved[56];
};
_Static_assert(sizeof(struct dlhdr) == 128, "bitmap file header size");

struct dirtylog {
	char path[PATH_MAX];
	int fd;
	struct dlhdr hdr;
	struct bitmap disk; /* what the file holds */
};

static uint64_t hdr_csum(const struct dlhdr *h)
{
	struct dlhdr c = *h;

	c.csum = 0;
	return XXH3_64bits(&c, sizeof(c));
}

static size_t bits_len(const struct dirtylog *d)
{
	return BITMAP_WORDS(d->disk.nbits) * sizeof(uint64_t);
}

static int write_hdr(struct dirtylog *d)
{
	int rc;

	d->hdr.csum = hdr_csum(&d->hdr);
	rc = io_pwrite_all(d->fd, &d->hdr, sizeof(d->hdr), 0);
	if (rc == 0 && fdatasync(d->fd) < 0)
		rc = -errno;
	return rc;
}

/* A new file, or one that no longer describes this image: no base, no
 * bits, every octet allocated now. */
static int init_file(struct dirtylog *d, uint64_t size, uint32_t chunk, const struct stat *img)
{
	static const uint8_t zeros[DL_BITS_AT];
	size_t len = bits_len(d), off = 0;
	int rc;

	memset(&d->hdr, 0, sizeof(d->hdr));
	d->hdr.magic = DL_MAGIC;
	d->hdr.version = DL_VERSION;
	d->hdr.chunk = chunk;
	d->hdr.size = size;
	d->hdr.img_dev = S_ISBLK(img->st_mode) ? img->st_rdev : img->st_dev;
	d->hdr.img_ino = S_ISBLK(img->st_mode) ? 0 : img->st_ino;
	bitmap_zero(&d->disk);
	/* Bits first, then the header that makes them count. */
	if (ftruncate(d->fd, 0) < 0)
		return -errno;
	rc = io_pwrite_all(d->fd, zeros, DL_BITS_AT, 0);
	while (rc == 0 && off < len) {
		size_t n = len - off < sizeof(zeros) ? len - off : sizeof(zeros);

		rc = io_pwrite_all(d->fd, zeros, n, DL_BITS_AT + off);
		off += n;
	}
	if (rc == 0 && fdatasync(d->fd) < 0)
		rc = -errno;
	if (rc == 0)
		rc = write_hdr(d);
	if (rc == 0)
		rc = io_fsync_parent(d->path);
	return rc;
}

/* Whether the header read describes this image; why not in why. */
static bool hdr_matches(const struct dirtylog *d, uint64_t size, uint32_t chunk,
			const struct stat *img, char *why, size_t len)
{
	const struct dlhdr *h = &d->hdr;
	uint64_t dev = S_ISBLK(img->st_mode) ? img->st_rdev : img->st_dev;
	uint64_t ino = S_ISBLK(img->st_mode) ? 0 : img->st_ino;

	if (h->magic != DL_MAGIC || h->csum != hdr_csum(h)) {
		snprintf(why, len, "its header is damaged or it is not a bitmap file");
		return false;
	}
	if (h->version != DL_VERSION) {
		snprintf(why, len, "it has version %u, not %u", h->version, DL_VERSION);
		return false;
	}
	if (h->size != size || h->chunk != chunk) {
		snprintf(why, len,
			 "it was written for %llu octets in chunks of %u, the image has %llu in "
			 "chunks of %u",
			 (unsigned long long)h->size, h->chunk, (unsigned long long)size, chunk);
		return false;
	}
	if (h->img_dev != dev || h->img_ino != ino) {
		snprintf(why, len, "it was written for another image file or device");
		return false;
	}
	return true;
}

int dirtylog_open(const char *path, uint64_t size, uint32_t chunk, const struct stat *img,
		  struct bitmap *dirty, struct dirtylog_base *base, struct dirtylog **out,
		  char *err, size_t errlen)
{
	struct dirtylog *d = calloc(1, sizeof(*d));
	char *why = base->why_not;
	size_t wlen = sizeof(base->why_not);
	bool usable = false;
	struct stat sb;
	int rc;

	*out = NULL;
	memset(base, 0, sizeof(*base));
	if (!d || bitmap_init(&d->disk, dirty->nbits) < 0) {
		free(d);
		snprintf(err, errlen, "out of memory for the bitmap file");
		return -ENOMEM;
	}
	snprintf(d->path, sizeof(d->path), "%s", path);
	d->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (d->fd < 0 || fstat(d->fd, &sb) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open the bitmap file %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		rc = -EINVAL;
		snprintf(err, errlen, "the bitmap file %s is not a regular file", path);
		goto fail;
	}
	if (flock(d->fd, LOCK_EX | LOCK_NB) < 0) {
		rc = -errno;
		snprintf(err, errlen, "the bitmap file %s is in use (another ha-diskrepl?): %s",
			 path, strerror(errno));
		goto fail;
	}
	if (sb.st_size == 0)
		; /* new: no base, and nothing to say */
	else if (io_pread_all(d->fd, &d->hdr, sizeof(d->hdr), 0) < 0)
		snprintf(why, wlen, "its header cannot be read: %s", strerror(errno));
	else if (!hdr_matches(d, size, chunk, img, why, wlen))
		;
	else if (io_pread_all(d->fd, d->disk.words, bits_len(d), DL_BITS_AT) < 0)
		snprintf(why, wlen, "its bits cannot be read: %s", strerror(errno));
	else
		usable = true;
	if (!usable) {
		rc = init_file(d, size, chunk, img);
		if (rc < 0) {
			snprintf(err, errlen, "cannot write the bitmap file %s: %s", path,
				 strerror(-rc));
			goto fail;
		}
	}
	/* Bits past the last chunk are not chunks. */
	if (d->disk.nbits % 64)
		d->disk.words[d->disk.nbits / 64] &= (UINT64_C(1) << (d->disk.nbits % 64)) - 1;
	bitmap_or(dirty, &d->disk);
	base->known = d->hdr.flags & DL_BASE_KNOWN;
	memcpy(base->lineage, d->hdr.lineage, sizeof(base->lineage));
	*out = d;
	return 0;
fail:
	dirtylog_close(d);
	return rc;
}

int dirtylog_read(const char *path, uint64_t size, const struct stat *img, uint32_t *chunk,
		  struct bitmap *bits, struct dirtylog_base *base, char *err, size_t errlen)
{
	struct dirtylog d = {.fd = open(path, O_RDONLY | O_CLOEXEC)};
	char why[160];
	int rc;

	memset(base, 0, sizeof(*base));
	if (d.fd < 0) {
		snprintf(err, errlen, "cannot open the bitmap file %s: %s", path, strerror(errno));
		return -errno;
	}
	if (flock(d.fd, LOCK_SH | LOCK_NB) < 0) {
		rc = -errno;
		snprintf(err, errlen, "the bitmap file %s is in use (its ha-diskrepl still runs?)",
			 path);
		goto out;
	}
	rc = io_pread_all(d.fd, &d.hdr, sizeof(d.hdr), 0);
	if (rc < 0) {
		snprintf(err, errlen, "the bitmap file %s: its header cannot be read: %s", path,
			 strerror(-rc));
		goto out;
	}
	if (d.hdr.chunk < 4096 || (d.hdr.chunk & (d.hdr.chunk - 1)) ||
	    !hdr_matches(&d, size, d.hdr.chunk, img, why, sizeof(why))) {
		snprintf(err, errlen, "the bitmap file %s does not describe this image: %s", path,
			 d.hdr.chunk < 4096 ? "its chunk size is out of range" : why);
		rc = -ESTALE;
		goto out;
	}
	rc = bitmap_init(bits, (size + d.hdr.chunk - 1) / d.hdr.chunk);
	if (rc < 0) {
		snprintf(err, errlen, "out of memory for the bitmap file");
		goto out;
	}
	d.disk = *bits;
	rc = io_pread_all(d.fd, bits->words, bits_len(&d), DL_BITS_AT);
	if (rc < 0) {
		bitmap_destroy(bits);
		snprintf(err, errlen, "the bitmap file %s: its bits cannot be read: %s", path,
			 strerror(-rc));
		goto out;
	}
	if (bits->nbits % 64)
		bits->words[bits->nbits / 64] &= (UINT64_C(1) << (bits->nbits % 64)) - 1;
	*chunk = d.hdr.chunk;
	base->known = d.hdr.flags & DL_BASE_KNOWN;
	memcpy(base->lineage, d.hdr.lineage, sizeof(base->lineage));
out:
	close(d.fd);
	return rc;
}

void dirtylog_close(struct dirtylog *d)
{
	if (!d)
		return;
	if (d->fd >= 0)
		close(d->fd);
	bitmap_destroy(&d->disk);
	free(d);
}

const char *dirtylog_path(const struct dirtylog *d)
{
	return d->path;
}

int dirtylog_mark(struct dirtylog *d, size_t first, size_t last)
{
	size_t w0 = first / 64, w1 = last / 64;
	bool fresh = false;
	int rc;

	for (size_t c = first; c <= last && c < d->disk.nbits; c++) {
		if (!bitmap_test(&d->disk, c)) {
			bitmap_set(&d->disk, c);
			fresh = true;
		}
	}
	if (!fresh)
		return 0;
	rc = io_pwrite_all(d->fd, d->disk.words + w0, (w1 - w0 + 1) * sizeof(uint64_t),
			   DL_BITS_AT + w0 * sizeof(uint64_t));
	if (rc == 0 && fdatasync(d->fd) < 0)
		rc = -errno;
	return rc;
}

int dirtylog_rewrite(struct dirtylog *d, const struct bitmap *cover)
{
	int rc;

	memcpy(d->disk.words, cover->words, bits_len(d));
	rc = io_pwrite_all(d->fd, d->disk.words, bits_len(d), DL_BITS_AT);
	if (rc == 0 && fdatasync(d->fd) < 0)
		rc = -errno;
	return rc;
}

int dirtylog_set_base(struct dirtylog *d, const uint8_t lineage[16], bool known)
{
	memcpy(d->hdr.lineage, lineage, sizeof(d->hdr.lineage));
	if (known)
		d->hdr.flags |= DL_BASE_KNOWN;
	else
		d->hdr.flags &= ~DL_BASE_KNOWN;
	return write_hdr(d);
}
