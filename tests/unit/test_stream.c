/* Stream writer/reader: round trip of every record type, and every class of
 * malformed input giving a clear error (and, under SAN=1, no memory error). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <signal.h>

#include "checkpoint/codec.h"
#include "checkpoint/stream.h"
#include "common/log.h"
#include "common/version.h"

struct buf {
	uint8_t *data;
	size_t len;
};

static int mem_fd(void)
{
	int fd = memfd_create("stream", MFD_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

static struct buf slurp(int fd)
{
	struct buf b;
	off_t len = lseek(fd, 0, SEEK_END);

	b.len = (size_t)len;
	b.data = malloc(b.len ? b.len : 1);
	assert_int_equal(pread(fd, b.data, b.len, 0), (ssize_t)b.len);
	close(fd);
	return b;
}

static void fill_page(uint8_t *p, unsigned seed)
{
	for (unsigned i = 0; i < CKPT_PAGE_SIZE; i++)
		p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

static void write_config(struct ckpt_writer *w, uint32_t flags)
{
	struct ckpt_ha_domain_config c = {.nr_pages = 64, .vcpus = 1, .flags = flags};
	struct iovec iov = {&c, sizeof(c)};

	snprintf(c.name, sizeof(c.name), "web");
	memcpy(c.mac, "\x52\x54\x00\x12\x34\x56", 6);
	assert_int_equal(ckpt_writer_record(w, CKPT_REC_HA_DOMAIN_CONFIG, &iov, 1), 0);
}

/* A stream with one of every forward record type and two checkpoints. */
static struct buf full_stream(void)
{
	static uint8_t pages[3][CKPT_PAGE_SIZE];
	const void *pp[3] = {pages[0], pages[1], pages[2]};
	uint64_t pfns[3] = {1, 2, 40};
	struct ckpt_writer *w;
	struct ckpt_encoder *enc;
	struct ckpt_codec_config cc = {.cache_pages = 16, .level = 1};
	struct ckpt_zbatch zb;
	int fd = mem_fd();

	for (int i = 0; i < 3; i++)
		fill_page(pages[i], (unsigned)i + 1);
	assert_int_equal(ckpt_writer_new(fd, &w), 0);
	assert_int_equal(ckpt_encoder_new(&cc, &enc), 0);
	assert_int_equal(ckpt_writer_headers(w, CKPT_IHDR_ID_XEN, CKPT_DHDR_HAVM, 0, 0), 0);
	write_config(w, CKPT_CFG_TRAILERS | CKPT_CFG_COMPRESSED);

	/* Epoch 0: raw pages, a Xen-style PAGE_DATA with a no-data entry too. */
	assert_int_equal(ckpt_writer_page_data(w, pfns, pp, 3), 0);
	{
		struct ckpt_page_data_hdr h = {.count = 2};
		uint64_t e[2] = {5, ((uint64_t)CKPT_PFN_TYPE_XTAB << CKPT_PFN_TYPE_SHIFT) | 6};
		struct iovec iov[3] = {{&h, sizeof(h)}, {e, sizeof(e)}, {pages[0], CKPT_PAGE_SIZE}};
		assert_int_equal(ckpt_writer_pages(w, CKPT_REC_PAGE_DATA, iov, 3, 1), 0);
	}
	{
		struct ckpt_tsc_info t = {.mode = 1, .khz = 2596122, .nsec = 99, .incarnation = 2};
		struct iovec iov = {&t, sizeof(t)};
		assert_int_equal(ckpt_writer_record(w, CKPT_REC_X86_TSC_INFO, &iov, 1), 0);
	}
	{
		char ctx[13] = "hvm-context!";
		struct iovec iov = {ctx, sizeof(ctx)};
		assert_int_equal(ckpt_writer_record(w, CKPT_REC_HVM_CONTEXT, &iov, 1), 0);
	}
	{
		struct ckpt_hvm_params_hdr h = {.count = 2};
		uint64_t e[4] = {1, 10, 2, 20};
		struct iovec iov[2] = {{&h, sizeof(h)}, {e, sizeof(e)}};
		assert_int_equal(ckpt_writer_record(w, CKPT_REC_HVM_PARAMS, iov, 2), 0);
	}
	{
		struct ckpt_ha_vmm_state_hdr h = {.format = 1};
		char blob[21] = "vcpu-and-device-state";
		struct iovec iov[2] = {{&h, sizeof(h)}, {blob, sizeof(blob)}};
		assert_int_equal(ckpt_writer_record(w, CKPT_REC_HA_VMM_STATE, iov, 2), 0);
	}
	assert_int_equal(ckpt_writer_checkpoint(w, 0), 0);

	/* Epoch 1: compressed pages, disk records, a heartbeat in between. */
	pages[0][100] ^= 0xff;
	assert_int_equal(ckpt_encoder_encode(enc, pfns, pp, 3, &zb), 0);
	assert_int_equal(ckpt_writer_pages(w, CKPT_REC_HA_PAGE_DATA_Z, zb.iov, zb.iovcnt, zb.pages),
			 0);
	{
		struct ckpt_ha_heartbeat hb = {.seq = 7, .sent_ns = 123, .committed_epoch = 0};
		struct iovec iov = {&hb, sizeof(hb)};
		assert_int_equal(ckpt_writer_record(w, CKPT_REC_HA_HEARTBEAT, &iov, 1), 0);
	}
	{
		struct ckpt_ha_disk_write_hdr h = {.epoch = 1, .offset = 4096, .length = 5};
		struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)"disk!", 5}};
		assert_int_equal(ckpt_writer_record(w, CKPT_REC_HA_DISK_WRITE, iov, 2), 0);
	}
	{
		struct ckpt_ha_disk_barrier b = {.epoch = 1, .writes = 1};
		struct iovec iov = {&b, sizeof(b)};
		assert_int_equal(ckpt_writer_record(w, CKPT_REC_HA_DISK_BARRIER, &iov, 1), 0);
	}
	assert_int_equal(ckpt_writer_checkpoint(w, 1), 0);
	assert_int_equal(ckpt_writer_end(w), 0);
	ckpt_encoder_free(enc);
	ckpt_writer_free(w);
	return slurp(fd);
}

static void test_roundtrip_forward(void **state)
{
	struct buf b = full_stream();
	struct ckpt_reader *r;
	struct ckpt_record rec;
	const struct ckpt_stream_info *info;
	static const uint32_t expect[] = {
		CKPT_REC_HA_DOMAIN_CONFIG, CKPT_REC_PAGE_DATA,	    CKPT_REC_PAGE_DATA,
		CKPT_REC_X86_TSC_INFO,	   CKPT_REC_HVM_CONTEXT,    CKPT_REC_HVM_PARAMS,
		CKPT_REC_HA_VMM_STATE,	   CKPT_REC_HA_TRAILER,	    CKPT_REC_CHECKPOINT,
		CKPT_REC_HA_PAGE_DATA_Z,   CKPT_REC_HA_HEARTBEAT,   CKPT_REC_HA_DISK_WRITE,
		CKPT_REC_HA_DISK_BARRIER,  CKPT_REC_HA_TRAILER,	    CKPT_REC_CHECKPOINT,
		CKPT_REC_END,
	};

	assert_int_equal(b.len % 8, 0);
	assert_int_equal(ckpt_reader_new_mem(b.data, b.len, &r), 0);
	assert_int_equal(ckpt_reader_headers(r, CKPT_IHDR_ID_XEN), 0);
	info = ckpt_reader_info(r);
	assert_int_equal(info->domain_type, CKPT_DHDR_HAVM);
	assert_int_equal(info->version, CKPT_IHDR_VERSION);
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		assert_int_equal(ckpt_reader_next(r, &rec), 0);
		assert_int_equal(rec.type, expect[i]);
		assert_int_equal(rec.offset % 8, 0);
		switch (rec.type) {
		case CKPT_REC_HA_DOMAIN_CONFIG:
			assert_true(info->have_config);
			assert_string_equal(info->config.name, "web");
			assert_int_equal(info->config.nr_pages, 64);
			break;
		case CKPT_REC_PAGE_DATA: {
			struct ckpt_pages_view v;
			uint8_t want[CKPT_PAGE_SIZE];

			assert_int_equal(ckpt_pages_view(&rec, &v), 0);
			if (v.count == 3) {
				assert_int_equal(rec.pages, 3);
				assert_int_equal(v.pfns[2], 40);
				fill_page(want, 3);
				assert_memory_equal(v.data + 2 * CKPT_PAGE_SIZE, want,
						    CKPT_PAGE_SIZE);
			} else {
				assert_int_equal(v.count, 2);
				assert_int_equal(rec.pages, 1);
			}
			break;
		}
		case CKPT_REC_HA_PAGE_DATA_Z: {
			struct ckpt_pages_view v;
			assert_int_equal(ckpt_pages_view(&rec, &v), 0);
			assert_int_equal(v.count, 3);
			/* The encoder had not sent these pages before: no delta yet. */
			assert_int_equal(v.descs[0].encoding, CKPT_ENC_ZSTD);
			break;
		}
		case CKPT_REC_X86_TSC_INFO:
			assert_int_equal(((const struct ckpt_tsc_info *)rec.body)->khz, 2596122);
			break;
		case CKPT_REC_HVM_CONTEXT:
			assert_int_equal(rec.length, 13);
			assert_string_equal((const char *)rec.body, "hvm-context!");
			break;
		case CKPT_REC_HA_TRAILER:
		case CKPT_REC_CHECKPOINT:
			assert_int_equal(rec.epoch, i < 9 ? 0 : 1);
			break;
		case CKPT_REC_HA_DISK_WRITE:
			assert_memory_equal(rec.body + 24, "disk!", 5);
			break;
		default:
			break;
		}
	}
	assert_int_equal(ckpt_reader_last_epoch(r), 1);
	assert_int_equal(ckpt_reader_at_eof(r), 1);
	assert_int_not_equal(ckpt_reader_next(r, &rec), 0);
	ckpt_reader_free(r);
	free(b.data);
}

static void test_roundtrip_back_channel(void **state)
{
	struct ckpt_writer *w;
	struct ckpt_reader *r;
	struct ckpt_record rec;
	int fd = mem_fd();
	struct ckpt_ha_ack ack = {.epoch = 41, .flags = CKPT_ACK_MEMORY | CKPT_ACK_DISK};
	struct ckpt_ha_heartbeat hb = {.seq = 1, .sent_ns = 5, .committed_epoch = 41};
	struct ckpt_ha_error_hdr eh = {.code = ENOSPC};
	uint64_t dirty[2] = {3, 9};
	struct iovec iov_ack = {&ack, sizeof(ack)}, iov_hb = {&hb, sizeof(hb)};
	struct iovec iov_err[2] = {{&eh, sizeof(eh)}, {(void *)"journal full", 12}};
	struct iovec iov_d = {dirty, sizeof(dirty)};

	assert_int_equal(ckpt_writer_new(fd, &w), 0);
	assert_int_equal(ckpt_writer_headers(w, CKPT_IHDR_ID_BACK, CKPT_DHDR_HAVM, 0, 0), 0);
	assert_int_equal(ckpt_writer_record(w, CKPT_REC_HA_ACK, &iov_ack, 1), 0);
	assert_int_equal(ckpt_writer_record(w, CKPT_REC_HA_HEARTBEAT, &iov_hb, 1), 0);
	assert_int_equal(ckpt_writer_record(w, CKPT_REC_CHECKPOINT_DIRTY_PFN_LIST, &iov_d, 1), 0);
	assert_int_equal(ckpt_writer_record(w, CKPT_REC_HA_ERROR, iov_err, 2), 0);
	assert_int_equal(ckpt_writer_end(w), 0);
	ckpt_writer_free(w);
	struct buf b = slurp(fd);

	assert_int_equal(ckpt_reader_new_mem(b.data, b.len, &r), 0);
	/* A back channel is not a forward stream. */
	assert_int_equal(ckpt_reader_headers(r, CKPT_IHDR_ID_XEN), -EBADMSG);
	ckpt_reader_free(r);
	assert_int_equal(ckpt_reader_new_mem(b.data, b.len, &r), 0);
	assert_int_equal(ckpt_reader_headers(r, CKPT_IHDR_ID_BACK), 0);
	assert_int_equal(ckpt_reader_next(r, &rec), 0);
	assert_int_equal(rec.type, CKPT_REC_HA_ACK);
	assert_int_equal(((const struct ckpt_ha_ack *)rec.body)->epoch, 41);
	assert_int_equal(ckpt_reader_next(r, &rec), 0);
	assert_int_equal(((const struct ckpt_ha_heartbeat *)rec.body)->committed_epoch, 41);
	assert_int_equal(ckpt_reader_next(r, &rec), 0);
	assert_int_equal(rec.type, CKPT_REC_CHECKPOINT_DIRTY_PFN_LIST);
	assert_int_equal(ckpt_reader_next(r, &rec), 0);
	assert_int_equal(rec.type, CKPT_REC_HA_ERROR);
	assert_memory_equal(rec.body + 8, "journal full", 12);
	assert_int_equal(ckpt_reader_next(r, &rec), 0);
	assert_int_equal(rec.type, CKPT_REC_END);
	ckpt_reader_free(r);
	free(b.data);
}

/* Reads a whole stream; returns the first error (0 if it ended cleanly). */
static int read_all(const uint8_t *data, size_t len, char *err, size_t errlen)
{
	struct ckpt_reader *r;
	struct ckpt_record rec;
	int rc;

	assert_int_equal(ckpt_reader_new_mem(data, len, &r), 0);
	rc = ckpt_reader_headers(r, CKPT_IHDR_ID_XEN);
	while (rc == 0) {
		rc = ckpt_reader_next(r, &rec);
		if (rc == 0 && rec.type == CKPT_REC_END)
			break;
	}
	if (err)
		snprintf(err, errlen, "%s", ckpt_reader_error(r));
	ckpt_reader_free(r);
	return rc;
}

/* Offset of the n-th record (0-based) of a stream. */
static size_t record_offset(const struct buf *b, int n)
{
	size_t off = 40;

	while (n--) {
		uint32_t len;
		memcpy(&len, b->data + off + 4, 4);
		off += 8 + ((len + 7) & ~7u);
	}
	return off;
}

static void expect_error(const struct buf *b, int want_rc, const char *want_msg)
{
	char err[256];
	int rc = read_all(b->data, b->len, err, sizeof(err));

	if (rc != want_rc || !strstr(err, want_msg))
		fail_msg("expected %d '%s', got %d '%s'", want_rc, want_msg, rc, err);
}

static void test_truncated_header(void **state)
{
	struct buf b = full_stream();
	struct buf t = {b.data, 10};

	expect_error(&t, -EPIPE, "truncated in the image header");
	t.len = 24 + 3;
	expect_error(&t, -EPIPE, "truncated in the domain header");
	t.len = 40 + 5;
	expect_error(&t, -EPIPE, "truncated in a record header");
	t.len = 40 + 8 + 10;
	expect_error(&t, -EPIPE, "HA_DOMAIN_CONFIG");
	t.len = 40;
	expect_error(&t, -ENODATA, "without an END record");
	free(b.data);
}

static void test_bad_marker_and_version(void **state)
{
	struct buf b = full_stream();

	b.data[3] = 0;
	expect_error(&b, -EBADMSG, "bad marker");
	b.data[3] = 0xff;
	b.data[15] = 9; /* version 9 */
	expect_error(&b, -EBADMSG, "unsupported version 9");
	/* Both versions named, for an operator with two releases. */
	expect_error(&b, -EBADMSG, "version 9, this release (" HA_VERSION ") reads 2 to 3");
	b.data[15] = 2; /* version 2 is accepted */
	assert_int_equal(read_all(b.data, b.len, NULL, 0), 0);
	b.data[15] = 3;
	b.data[17] = 1; /* big-endian option */
	expect_error(&b, -EBADMSG, "big-endian");
	b.data[17] = 0;
	b.data[24] = 0x77; /* domain type */
	expect_error(&b, -EBADMSG, "unknown domain type");
	free(b.data);
}

static void test_length_over_cap(void **state)
{
	struct buf b = full_stream();
	uint32_t len = htole32(CKPT_REC_LENGTH_MAX + 8);

	memcpy(b.data + record_offset(&b, 1) + 4, &len, 4);
	expect_error(&b, -EBADMSG, "over the");
	/* A fixed-size record with the wrong length. */
	free(b.data);
	b = full_stream();
	len = htole32(87);
	memcpy(b.data + record_offset(&b, 0) + 4, &len, 4);
	expect_error(&b, -EBADMSG, "length 87 outside 88..88");
	free(b.data);
}

static void test_nonzero_padding(void **state)
{
	struct buf b = full_stream();
	/* HVM_CONTEXT (record 4) has 13 octets: 3 of padding. */
	size_t off = record_offset(&b, 4);

	b.data[off + 8 + 14] = 1;
	expect_error(&b, -EBADMSG, "non-zero padding");
	free(b.data);
}

static void test_unknown_records(void **state)
{
	struct ckpt_writer *w;
	int fd = mem_fd();
	struct iovec iov = {(void *)"whatever", 8};

	assert_int_equal(ckpt_writer_new(fd, &w), 0);
	assert_int_equal(ckpt_writer_headers(w, CKPT_IHDR_ID_XEN, CKPT_DHDR_X86_HVM, 4, 17), 0);
	/* Optional and unknown: skipped, yet covered by the checksum. */
	assert_int_equal(ckpt_writer_record(w, 0x8000ABCDu, &iov, 1), 0);
	assert_int_equal(ckpt_writer_checkpoint(w, 0), 0);
	assert_int_equal(ckpt_writer_end(w), 0);
	ckpt_writer_free(w);
	struct buf b = slurp(fd);
	assert_int_equal(read_all(b.data, b.len, NULL, 0), 0);
	/* Made mandatory: an error naming it. */
	b.data[40 + 3] = 0x00;
	expect_error(&b, -EBADMSG, "unknown (0x0000abcd): unknown mandatory record");
	free(b.data);
}

/* HA_VERIFY: its count must match its length, its pfns ascend. */
static void test_verify_record(void **state)
{
	struct {
		struct ckpt_ha_verify_hdr h;
		uint64_t e[4];
	} v = {.h = {.count = 2}, .e = {1, 0x1111, 7, 0x7777}};
	struct ckpt_writer *w;
	struct iovec iov = {&v, sizeof(v)};
	int fd = mem_fd();

	(void)state;
	assert_int_equal(ckpt_writer_new(fd, &w), 0);
	assert_int_equal(ckpt_writer_headers(w, CKPT_IHDR_ID_XEN, CKPT_DHDR_X86_HVM, 4, 17), 0);
	assert_int_equal(ckpt_writer_record(w, CKPT_REC_HA_VERIFY, &iov, 1), 0);
	assert_int_equal(ckpt_writer_checkpoint(w, 0), 0);
	assert_int_equal(ckpt_writer_end(w), 0);
	ckpt_writer_free(w);
	struct buf b = slurp(fd);
	assert_int_equal(read_all(b.data, b.len, NULL, 0), 0);
	b.data[40 + 8] = 3; /* count 3 in 40 octets */
	expect_error(&b, -EBADMSG, "count 3 needs 56 octets, length is 40");
	b.data[40 + 8] = 2;
	b.data[40 + 8 + 8 + 16] = 1; /* second pfn 1, not above the first */
	expect_error(&b, -EBADMSG, "pfns not ascending at entry 1");
	free(b.data);
}

/* HA_POSTCOPY: its bitmap's length, count and tail are checked; HA_PC_REQ's
 * count against its length. */
static void test_postcopy_records(void **state)
{
	struct {
		struct ckpt_ha_postcopy_hdr h;
		uint64_t w[2];
	} pc = {.h = {.nr_pages = 100, .count = 3}, .w = {(1u << 1) | (1u << 5), 1}};
	struct {
		struct ckpt_ha_pc_req_hdr h;
		uint64_t pfns[2];
	} req = {.h = {.count = 2}, .pfns = {5, 64}};
	struct ckpt_writer *w;
	struct iovec iov = {&pc, sizeof(pc)}, iov2 = {&req, sizeof(req)};
	int fd = mem_fd();

	(void)state;
	assert_int_equal(ckpt_writer_new(fd, &w), 0);
	assert_int_equal(ckpt_writer_headers(w, CKPT_IHDR_ID_XEN, CKPT_DHDR_X86_HVM, 4, 17), 0);
	assert_int_equal(ckpt_writer_record(w, CKPT_REC_HA_POSTCOPY, &iov, 1), 0);
	assert_int_equal(ckpt_writer_record(w, CKPT_REC_HA_PC_REQ, &iov2, 1), 0);
	assert_int_equal(ckpt_writer_checkpoint(w, 0), 0);
	assert_int_equal(ckpt_writer_end(w), 0);
	ckpt_writer_free(w);
	struct buf b = slurp(fd);
	assert_int_equal(read_all(b.data, b.len, NULL, 0), 0);
	b.data[48 + 8] = 4; /* count 4, three bits set */
	expect_error(&b, -EBADMSG, "count 4, but 3 bits are set");
	b.data[48 + 8] = 3;
	b.data[48 + 16 + 8 + 4] = 0x10; /* bit 100: past page 99 */
	expect_error(&b, -EBADMSG, "bits set beyond page 100");
	b.data[48 + 16 + 8 + 4] = 0;
	b.data[48] = 200; /* 200 pages need 32 octets of bitmap */
	expect_error(&b, -EBADMSG, "200 pages need a 32-octet bitmap");
	b.data[48] = 100;
	b.data[48 + 32 + 8] = 3; /* the request: count 3 in 24 octets */
	expect_error(&b, -EBADMSG, "count 3 in 24 octets, or reserved bits set");
	free(b.data);
}

static void test_page_count_mismatch(void **state)
{
	struct buf b = full_stream();
	size_t off = record_offset(&b, 1); /* PAGE_DATA, 3 pages */
	uint32_t count = htole32(2);

	memcpy(b.data + off + 8, &count, 4);
	expect_error(&b, -EBADMSG, "page count mismatch");
	/* A no-data type on an entry that has data. */
	free(b.data);
	b = full_stream();
	b.data[off + 8 + 8 + 7] = 0xF0;
	expect_error(&b, -EBADMSG, "page count mismatch");
	/* Invalid page type 5. */
	b.data[off + 8 + 8 + 7] = 0x50;
	expect_error(&b, -EBADMSG, "invalid page type 5");
	free(b.data);
}

static void test_compressed_descriptor_errors(void **state)
{
	struct buf b = full_stream();
	size_t off = record_offset(&b, 9); /* HA_PAGE_DATA_Z */
	uint32_t v;

	v = htole32(9);
	memcpy(b.data + off + 8 + 8 + 8, &v, 4); /* encoding of page 0 */
	expect_error(&b, -EBADMSG, "unknown encoding 9");
	free(b.data);
	b = full_stream();
	memcpy(&v, b.data + off + 8 + 8 + 12, 4);
	v = htole32(le32toh(v) + 1); /* payload length of page 0 */
	memcpy(b.data + off + 8 + 8 + 12, &v, 4);
	expect_error(&b, -EBADMSG, "page count mismatch");
	free(b.data);
}

static void test_checksum_mismatch(void **state)
{
	struct buf b = full_stream();
	size_t off = record_offset(&b, 1);

	b.data[off + 8 + 8 + 24 + 100] ^= 1; /* a byte of page 0 */
	expect_error(&b, -EBADMSG, "epoch 0: checksum mismatch");
	free(b.data);
	/* Corrupt compressed payload: caught by the checksum before decoding. */
	b = full_stream();
	off = record_offset(&b, 9);
	b.data[off + 8 + 8 + 3 * 16 + 2] ^= 0x40;
	expect_error(&b, -EBADMSG, "epoch 1: checksum mismatch");
	free(b.data);
}

static void test_checkpoint_ordering(void **state)
{
	struct ckpt_writer *w;
	int fd = mem_fd();

	assert_int_equal(ckpt_writer_new(fd, &w), 0);
	assert_int_equal(ckpt_writer_headers(w, CKPT_IHDR_ID_XEN, CKPT_DHDR_HAVM, 0, 0), 0);
	write_config(w, CKPT_CFG_TRAILERS);
	assert_int_equal(ckpt_writer_checkpoint(w, 5), 0);
	assert_int_equal(ckpt_writer_checkpoint(w, 7), 0); /* a gap */
	assert_int_equal(ckpt_writer_end(w), 0);
	ckpt_writer_free(w);
	struct buf b = slurp(fd);
	expect_error(&b, -EBADMSG, "epoch 7 follows epoch 5");
	free(b.data);

	/* Trailers announced but missing. */
	fd = mem_fd();
	assert_int_equal(ckpt_writer_new(fd, &w), 0);
	assert_int_equal(ckpt_writer_headers(w, CKPT_IHDR_ID_XEN, CKPT_DHDR_HAVM, 0, 0), 0);
	write_config(w, CKPT_CFG_TRAILERS);
	ckpt_writer_set_trailers(w, false);
	assert_int_equal(ckpt_writer_checkpoint(w, 0), 0);
	ckpt_writer_free(w);
	b = slurp(fd);
	expect_error(&b, -EBADMSG, "checkpoint without a trailer");
	free(b.data);
}

static void test_compressed_needs_config(void **state)
{
	static uint8_t page[CKPT_PAGE_SIZE];
	const void *pp[1] = {page};
	uint64_t pfn = 1;
	struct ckpt_writer *w;
	struct ckpt_encoder *enc;
	struct ckpt_codec_config cc = {.cache_pages = 0, .level = 1};
	struct ckpt_zbatch zb;
	int fd = mem_fd();

	fill_page(page, 9);
	assert_int_equal(ckpt_writer_new(fd, &w), 0);
	assert_int_equal(ckpt_encoder_new(&cc, &enc), 0);
	assert_int_equal(ckpt_writer_headers(w, CKPT_IHDR_ID_XEN, CKPT_DHDR_HAVM, 0, 0), 0);
	write_config(w, CKPT_CFG_TRAILERS);
	assert_int_equal(ckpt_encoder_encode(enc, &pfn, pp, 1, &zb), 0);
	assert_int_equal(ckpt_writer_pages(w, CKPT_REC_HA_PAGE_DATA_Z, zb.iov, zb.iovcnt, 1), 0);
	assert_int_equal(ckpt_writer_checkpoint(w, 0), 0);
	ckpt_encoder_free(enc);
	ckpt_writer_free(w);
	struct buf b = slurp(fd);
	expect_error(&b, -EBADMSG, "does not announce compression");
	free(b.data);
}

/* Every prefix of a valid stream is an error (never a crash); the full
 * stream is valid; trailing garbage after END is visible to the caller. */
static void test_every_prefix(void **state)
{
	struct buf b = full_stream();

	for (size_t len = 0; len < b.len; len++) {
		int rc = read_all(b.data, len, NULL, 0);
		assert_true(rc == -EPIPE || rc == -ENODATA);
	}
	assert_int_equal(read_all(b.data, b.len, NULL, 0), 0);
	free(b.data);
}

/* Flipping any octet of a checkpoint's page data is detected. */
static void test_every_page_flip_detected(void **state)
{
	struct buf b = full_stream();
	size_t start = record_offset(&b, 1), end = record_offset(&b, 7);

	for (size_t off = start; off < end; off++) {
		b.data[off] ^= 0x10;
		assert_true(read_all(b.data, b.len, NULL, 0) < 0);
		b.data[off] ^= 0x10;
	}
	free(b.data);
}

/* Flips anywhere: errors or not, never a crash (checked under SAN=1). */
static void test_every_flip_no_crash(void **state)
{
	struct buf b = full_stream();

	for (size_t off = 0; off < b.len; off++) {
		b.data[off] ^= 0x80;
		(void)read_all(b.data, b.len, NULL, 0);
		b.data[off] ^= 0x80;
	}
	free(b.data);
}

static void test_writer_rejects_misuse(void **state)
{
	struct ckpt_writer *w;
	int fd = mem_fd();
	struct iovec iov = {(void *)"x", 1};

	assert_int_equal(ckpt_writer_new(fd, &w), 0);
	assert_int_equal(ckpt_writer_record(w, CKPT_REC_PAGE_DATA, &iov, 1), -EINVAL);
	assert_int_equal(ckpt_writer_record(w, CKPT_REC_CHECKPOINT, &iov, 1), -EINVAL);
	assert_int_equal(ckpt_writer_pages(w, CKPT_REC_HVM_CONTEXT, &iov, 1, 0), -EINVAL);
	assert_int_equal(ckpt_writer_page_data(w, NULL, NULL, 0), -EINVAL);
	ckpt_writer_free(w);
	close(fd);
	/* A closed pipe: the error comes back, no signal kills us. */
	int p[2];
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	assert_int_equal(ckpt_writer_new(p[1], &w), 0);
	assert_int_equal(ckpt_writer_headers(w, CKPT_IHDR_ID_XEN, CKPT_DHDR_HAVM, 0, 0), -EPIPE);
	ckpt_writer_free(w);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_forward),
		cmocka_unit_test(test_roundtrip_back_channel),
		cmocka_unit_test(test_truncated_header),
		cmocka_unit_test(test_bad_marker_and_version),
		cmocka_unit_test(test_length_over_cap),
		cmocka_unit_test(test_nonzero_padding),
		cmocka_unit_test(test_unknown_records),
		cmocka_unit_test(test_verify_record),
		cmocka_unit_test(test_postcopy_records),
		cmocka_unit_test(test_page_count_mismatch),
		cmocka_unit_test(test_compressed_descriptor_errors),
		cmocka_unit_test(test_checksum_mismatch),
		cmocka_unit_test(test_checkpoint_ordering),
		cmocka_unit_test(test_compressed_needs_config),
		cmocka_unit_test(test_every_prefix),
		cmocka_unit_test(test_every_page_flip_detected),
		cmocka_unit_test(test_every_flip_no_crash),
		cmocka_unit_test(test_writer_rejects_misuse),
	};

	signal(SIGPIPE, SIG_IGN);
	log_init("test_stream");
	log_set_level(LOG_LVL_ERROR);
	return cmocka_run_group_tests_name("stream", tests, NULL, NULL);
}
