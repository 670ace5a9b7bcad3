/* The xen backend's host-testable parts: the restore image a secondary
 * writes on failover (xl save file = xl header + libxl stream + libxc
 * stream), read back octet by octet and through the stream reader; and the
 * "no Xen here" refusal on a host without privcmd. The backend's running
 * side is tested against real Xen in the lab (tests/lab/tests/40-*). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/stream.h"
#include "common/log.h"
#include "hv/hv.h"
#include "hv/xen.h"

static const char config[] = "{\"c_info\": {\"type\": \"pvh\", \"name\": \"web\"}, "
			     "\"disks\": [{\"pdev_path\": \"/dev/drbd0\", \"vdev\": \"xvda\"}]}";
static const uint64_t pfns[] = {0, 1, 5, 1023, 1024, 4095};

static void fill_page(uint8_t *p, uint64_t seed)
{
	for (unsigned i = 0; i < CKPT_PAGE_SIZE; i++)
		p[i] = (uint8_t)(seed * 13 + i * 7 + (i >> 9));
}

static struct hv_xen_image *make_image(void)
{
	struct hv_info info = {.nr_pages = 4096, .vcpus = 1, .xen_major = 4, .xen_minor = 17};
	struct hv_xen_image *im;

	snprintf(info.name, sizeof(info.name), "web");
	assert_int_equal(hv_xen_image_new(&info, &im), 0);
	for (size_t i = 0; i < sizeof(pfns) / sizeof(pfns[0]); i++)
		fill_page(hv_xen_image_page(im, pfns[i]), pfns[i]);
	assert_null(hv_xen_image_page(im, 4096));
	return im;
}

static void make_state(struct hv_state *st, bool with_context)
{
	struct ckpt_tsc_info tsc = {.mode = 0, .khz = 2000000, .nsec = 123456789, .incarnation = 2};
	struct {
		struct ckpt_hvm_params_hdr h;
		uint64_t e[2];
	} params = {.h = {.count = 1}, .e = {1 /* HVM_PARAM_STORE_PFN */, 0xfeffc}};
	uint8_t ctx[100];

	memset(ctx, 0xab, sizeof(ctx));
	assert_int_equal(hv_state_add(st, CKPT_REC_X86_TSC_INFO, &tsc, sizeof(tsc)), 0);
	if (with_context)
		assert_int_equal(hv_state_add(st, CKPT_REC_HVM_CONTEXT, ctx, sizeof(ctx)), 0);
	assert_int_equal(hv_state_add(st, CKPT_REC_HVM_PARAMS, &params, sizeof(params)), 0);
	assert_int_equal(hv_state_add(st, CKPT_REC_HA_XEN_CONFIG, config, sizeof(config)), 0);
}

static void test_restore_image(void **unused)
{
	struct hv_xen_image *im = make_image();
	struct hv_state st = {0};
	int fd = memfd_create("image", MFD_CLOEXEC);
	uint8_t *b, expect[CKPT_PAGE_SIZE];
	off_t len;
	size_t off = 0;
	uint32_t u32;
	struct ckpt_reader *r;
	struct ckpt_record rec;
	uint32_t types[16], ntypes = 0, pages = 0;

	assert_true(fd >= 0);
	make_state(&st, true);
	assert_int_equal(hv_xen_image_write(im, &st, fd), 0);
	len = lseek(fd, 0, SEEK_END);
	b = malloc((size_t)len);
	assert_int_equal(pread(fd, b, (size_t)len, 0), len);

	/* xl's save file header and its optional data: the JSON configuration. */
	assert_memory_equal(b, "Xen saved domain, xl format\n \0 \r", 32);
	memcpy(&u32, b + 32, 4);
	assert_int_equal(u32, 0x01020304u);
	memcpy(&u32, b + 36, 4);
	assert_int_equal(u32, 0x3u); /* STREAMv2 | JSON */
	memcpy(&u32, b + 40, 4);
	assert_int_equal(u32, 0);
	memcpy(&u32, b + 44, 4);
	assert_int_equal(u32, 4 + sizeof(config));
	memcpy(&u32, b + 48, 4);
	assert_int_equal(u32, sizeof(config));
	assert_memory_equal(b + 52, config, sizeof(config));
	off = 52 + sizeof(config);

	/* libxl's header (big-endian) and LIBXC_CONTEXT. */
	assert_memory_equal(b + off, "LibxlFmt", 8);
	assert_memory_equal(b + off + 8, "\0\0\0\x02\0\0\0\0", 8);
	assert_memory_equal(b + off + 16, "\x01\0\0\0\0\0\0\0", 8);
	off += 24;

	/* libxc's stream, through our reader: every Xen rule it checks. */
	assert_int_equal(ckpt_reader_new_mem(b + off, (size_t)len - off, &r), 0);
	assert_int_equal(ckpt_reader_headers(r, CKPT_IHDR_ID_XEN), 0);
	assert_int_equal(ckpt_reader_info(r)->version, 3);
	assert_int_equal(ckpt_reader_info(r)->domain_type, CKPT_DHDR_X86_HVM);
	assert_int_equal(ckpt_reader_info(r)->xen_major, 4);
	assert_int_equal(ckpt_reader_info(r)->xen_minor, 17);
	do {
		struct ckpt_pages_view v;
		struct ckpt_page_iter it;
		struct ckpt_page pg;

		assert_int_equal(ckpt_reader_next(r, &rec), 0);
		if (rec.type != CKPT_REC_PAGE_DATA && ntypes < 16)
			types[ntypes++] = rec.type;
		if (rec.type != CKPT_REC_PAGE_DATA)
			continue;
		assert_int_equal(ckpt_pages_view(&rec, &v), 0);
		ckpt_page_iter_init(&it, &v);
		while (ckpt_page_iter_next(&it, &pg)) {
			assert_int_equal(pg.pfn, pfns[pages]);
			fill_page(expect, pg.pfn);
			assert_memory_equal(pg.payload, expect, CKPT_PAGE_SIZE);
			pages++;
		}
	} while (rec.type != CKPT_REC_END);
	assert_int_equal(pages, sizeof(pfns) / sizeof(pfns[0]));
	/* STATIC_DATA_END before the pages; state in libxc's order; no private
	 * records (xl restore gets a plain stream). */
	assert_int_equal(ntypes, 5);
	assert_int_equal(types[0], CKPT_REC_STATIC_DATA_END);
	assert_int_equal(types[1], CKPT_REC_X86_TSC_INFO);
	assert_int_equal(types[2], CKPT_REC_HVM_CONTEXT);
	assert_int_equal(types[3], CKPT_REC_HVM_PARAMS);
	assert_int_equal(types[4], CKPT_REC_END);

	/* libxl's END closes the file. */
	off += (size_t)ckpt_reader_offset(r);
	assert_int_equal((size_t)len - off, 8);
	assert_memory_equal(b + off, "\0\0\0\0\0\0\0\0", 8);

	ckpt_reader_free(r);
	free(b);
	close(fd);
	hv_state_free(&st);
	hv_xen_image_free(im);
}

/* The framing checks ha-stream verify runs on an xl save file: the file
 * as written passes; each kind of damage is named with its offset. */
static void test_xl_framing(void **unused)
{
	struct hv_xen_image *im = make_image();
	struct hv_state st = {0};
	int fd = memfd_create("image", MFD_CLOEXEC);
	struct hv_xl_head h;
	struct ckpt_reader *r;
	struct ckpt_record rec;
	char err[320];
	unsigned tail;
	uint8_t *b, *c;
	size_t len, end;

	assert_true(fd >= 0);
	make_state(&st, true);
	assert_int_equal(hv_xen_image_write(im, &st, fd), 0);
	len = (size_t)lseek(fd, 0, SEEK_END);
	b = malloc(len + 16);
	c = malloc(len + 16);
	assert_int_equal(pread(fd, b, len, 0), (ssize_t)len);

	assert_true(hv_xl_is(b, len));
	assert_int_equal(hv_xl_head(b, len, &h, err, sizeof(err)), 0);
	assert_int_equal(h.flags, 0x3);
	assert_int_equal(h.config_len, sizeof(config));
	assert_memory_equal(h.config, config, sizeof(config));
	assert_int_equal(h.libxc_off, 52 + sizeof(config) + 24);
	assert_int_equal(ckpt_reader_new_mem(b + h.libxc_off, len - h.libxc_off, &r), 0);
	assert_int_equal(ckpt_reader_headers(r, 0), 0);
	do
		assert_int_equal(ckpt_reader_next(r, &rec), 0);
	while (rec.type != CKPT_REC_END);
	end = h.libxc_off + (size_t)ckpt_reader_offset(r);
	ckpt_reader_free(r);
	assert_int_equal(hv_xl_tail(b, len, end, &tail, err, sizeof(err)), 0);
	assert_int_equal(tail, 1);

	/* Not an xl file; another byte order; unknown mandatory flags. */
	memcpy(c, b, len);
	c[0] = 'x';
	assert_false(hv_xl_is(c, len));
	assert_int_equal(hv_xl_head(c, len, &h, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "not an xl save file"));
	memcpy(c, b, len);
	c[32] = 1, c[35] = 4;
	assert_int_equal(hv_xl_head(c, len, &h, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "byte order"));
	memcpy(c, b, len);
	c[36] = 0x7;
	assert_int_equal(hv_xl_head(c, len, &h, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "mandatory flags"));
	/* A configuration longer than the file; a damaged libxl header. */
	memcpy(c, b, len);
	c[47] = 0x7f;
	assert_int_equal(hv_xl_head(c, len, &h, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "octets of configuration data"));
	memcpy(c, b, len);
	c[52 + sizeof(config)] = 'X';
	assert_int_equal(hv_xl_head(c, len, &h, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "no libxl v2 stream header"));
	/* Cut before libxl's END; data after it; an unknown libxl record. */
	assert_int_equal(hv_xl_tail(b, len - 8, end, &tail, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "ends before libxl's END"));
	memcpy(c, b, len);
	memset(c + len, 0, 16);
	assert_int_equal(hv_xl_tail(c, len + 16, end, &tail, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "16 octets after libxl's END"));
	c[end] = 9;
	assert_int_equal(hv_xl_tail(c, len, end, &tail, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "no such type"));
	c[end] = 1;
	assert_int_equal(hv_xl_tail(c, len, end, &tail, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "a second libxc stream"));

	free(b);
	free(c);
	close(fd);
	hv_state_free(&st);
	hv_xen_image_free(im);
}

static void test_image_needs_context(void **unused)
{
	struct hv_xen_image *im = make_image();
	struct hv_state st = {0};
	int fd = memfd_create("image", MFD_CLOEXEC);

	make_state(&st, false);
	assert_int_equal(hv_xen_image_write(im, &st, fd), -EBADMSG);
	close(fd);
	hv_state_free(&st);
	hv_xen_image_free(im);
}

/* The failover plumbing with a stand-in for `xl restore` that records
 * what it reads (the real xl restores in the lab): the image reaches it
 * whole through the FIFO; when it refuses the FIFO, through a file. */
static void restore_with(const char *script, const char *dir, const char *want_kind)
{
	struct hv_xen_image *im = make_image();
	struct hv_state st = {0};
	char xl[600], out[600], kind[600], cmd[1400];
	int fd = memfd_create("image", MFD_CLOEXEC);
	off_t len;
	uint8_t *want, *got;
	FILE *f;

	snprintf(xl, sizeof(xl), "%s/xl", dir);
	snprintf(out, sizeof(out), "%s/restored", dir);
	snprintf(kind, sizeof(kind), "%s/kind", dir);
	f = fopen(xl, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", script);
	fclose(f);
	assert_int_equal(chmod(xl, 0755), 0);
	setenv("HA_XEN_XL", xl, 1);
	setenv("HA_XEN_SAVE_DIR", dir, 1);
	make_state(&st, true);
	assert_int_equal(hv_xen_image_restore(im, &st), 0);

	assert_int_equal(hv_xen_image_write(im, &st, fd), 0);
	len = lseek(fd, 0, SEEK_END);
	want = malloc((size_t)len);
	got = malloc((size_t)len + 1);
	assert_int_equal(pread(fd, want, (size_t)len, 0), len);
	f = fopen(out, "r");
	assert_non_null(f);
	assert_int_equal(fread(got, 1, (size_t)len + 1, f), (size_t)len);
	fclose(f);
	assert_memory_equal(got, want, (size_t)len);
	f = fopen(kind, "r");
	assert_non_null(f);
	assert_non_null(fgets(cmd, sizeof(cmd), f));
	fclose(f);
	assert_string_equal(cmd, want_kind);
	free(want);
	free(got);
	close(fd);
	unlink(xl);
	unlink(out);
	unlink(kind);
	unsetenv("HA_XEN_XL");
	unsetenv("HA_XEN_SAVE_DIR");
	hv_state_free(&st);
	hv_xen_image_free(im);
}

static void test_restore_plumbing(void **unused)
{
	char dir[] = "/tmp/test_xen_image.XXXXXX", script[1200];

	assert_non_null(mkdtemp(dir));
	/* $1 = restore, $2 = the image; no config argument. */
	snprintf(script, sizeof(script),
		 "[ \"$1\" = restore ] && [ $# = 2 ] || exit 3\n"
		 "if [ -p \"$2\" ]; then echo fifo >%s/kind; else echo file >%s/kind; fi\n"
		 "cat \"$2\" >%s/restored",
		 dir, dir, dir);
	restore_with(script, dir, "fifo\n");
	/* An xl that cannot read from a FIFO: the file route follows. */
	snprintf(script, sizeof(script),
		 "[ -p \"$2\" ] && exit 1\n"
		 "echo file >%s/kind; cat \"$2\" >%s/restored",
		 dir, dir);
	restore_with(script, dir, "file\n");
	assert_int_equal(rmdir(dir), 0); /* nothing left behind */
}

static void test_lookup_and_no_xen(void **unused)
{
	const char *name;
	const struct hv_ops *ops = hv_lookup("xen:web", &name);
	struct hv_dom *d = NULL;

	assert_non_null(ops);
	assert_string_equal(ops->prefix, "xen");
	assert_string_equal(name, "web");
	assert_string_equal(hv_lookup("web", &name)->prefix, "kvm");
	if (access("/dev/xen/privcmd", F_OK) == 0 || access("/proc/xen/privcmd", F_OK) == 0) {
		print_message("privcmd present: the no-Xen refusal is not checked here\n");
		return;
	}
	assert_false(hv_xen_present("test"));
	assert_int_equal(ops->save->open("web", &d), -ENODEV);
	assert_null(d);
}

/* libxl's JSON read and rewritten with yajl: members by path, the first
 * disk's device replaced (the secondary restores a DRBD-backed domain on
 * its own minor), everything else kept. */
static void test_config(void **unused)
{
	static const char two[] = "{\"c_info\": {\"name\": \"web\"}, \"disks\": [\n  "
				  "{\"pdev_path\": \"/dev/drbd0\", \"vdev\": \"xvda\"},\n  "
				  "{\"pdev_path\": \"/srv/b\\\"q.img\", \"readwrite\": 1}],\n"
				  " \"on_reboot\": \"restart\", \"on_crash\":\"preserve\", "
				  "\"b_info\": {\"max_memkb\": 98304, \"acpi\": true, \"x\": null}}";
	struct hv_xen_config *c, *c2;
	char err[320], *out;
	uint32_t len;

	(void)unused;
	assert_int_equal(hv_xen_config_parse(two, sizeof(two), &c, err, sizeof(err)), 0);
	assert_string_equal(hv_xen_config_str(c, "disks.0.pdev_path"), "/dev/drbd0");
	assert_string_equal(hv_xen_config_str(c, "disks.1.pdev_path"), "/srv/b\"q.img");
	assert_null(hv_xen_config_str(c, "disks.2.pdev_path"));
	assert_null(hv_xen_config_str(c, "disks.x.pdev_path"));
	assert_null(hv_xen_config_str(c, "b_info.max_memkb")); /* a number */
	assert_int_equal(hv_xen_config_count(c, "disks"), 2);
	assert_int_equal(hv_xen_config_count(c, "nics"), 0);
	assert_string_equal(hv_xen_config_str(c, "on_reboot"), "restart");
	assert_string_equal(hv_xen_config_str(c, "on_crash"), "preserve");
	assert_null(hv_xen_config_str(c, "on_poweroff"));
	assert_int_equal(hv_xen_config_set(c, "disks.0.pdev_path", "/dev/drbd1"), 0);
	assert_int_equal(hv_xen_config_set(c, "c_info.name", "web--standby"), 0);
	assert_int_equal(hv_xen_config_set(c, "on_poweroff", "x"), -ENOENT);
	/* Integers: the balloon target the secondary gets. */
	int64_t kib = 0;

	assert_int_equal(hv_xen_config_int(c, "b_info.max_memkb", &kib), 0);
	assert_int_equal(kib, 98304);
	assert_int_equal(hv_xen_config_int(c, "b_info.acpi", &kib), -ENOENT);
	assert_int_equal(hv_xen_config_int(c, "b_info.target_memkb", &kib), -ENOENT);
	assert_int_equal(hv_xen_config_set_int(c, "b_info.max_memkb", 90112), 0);
	assert_int_equal(hv_xen_config_set_int(c, "c_info.name", 1), -ENOENT);
	assert_int_equal(hv_xen_config_clear(c, "c_info"), -ENOENT);
	assert_int_equal(hv_xen_config_dump(c, &out, &len), 0);
	assert_int_equal(len, strlen(out) + 1);
	assert_int_equal(hv_xen_config_parse(out, len, &c2, err, sizeof(err)), 0);
	assert_string_equal(hv_xen_config_str(c2, "disks.0.pdev_path"), "/dev/drbd1");
	assert_string_equal(hv_xen_config_str(c2, "disks.0.vdev"), "xvda");
	assert_string_equal(hv_xen_config_str(c2, "disks.1.pdev_path"), "/srv/b\"q.img");
	assert_string_equal(hv_xen_config_str(c2, "c_info.name"), "web--standby");
	assert_int_equal(hv_xen_config_int(c2, "b_info.max_memkb", &kib), 0);
	assert_int_equal(kib, 90112);
	assert_null(strstr(out, "98304"));
	assert_non_null(strstr(out, "true"));
	assert_non_null(strstr(out, "null"));
	free(out);
	hv_xen_config_free(c2);
	hv_xen_config_free(c);
	/* Not JSON, or not an object: said, with yajl's reason. */
	assert_int_equal(hv_xen_config_parse("{\"a\": ", 6, &c, err, sizeof(err)), -EBADMSG);
	assert_null(c);
	assert_non_null(strstr(err, "not a JSON object"));
	assert_int_equal(hv_xen_config_parse("[1]", 3, &c, err, sizeof(err)), -EBADMSG);
}

/* The image written on failover names this host's device. */
static void test_image_config(void **unused)
{
	static const char two[] = "{\"c_info\": {\"name\": \"web\"}, \"disks\": [{\"pdev_path\": "
				  "\"/dev/drbd0\", \"vdev\": \"xvda\"}]}";
	struct hv_info info = {.nr_pages = 4096, .vcpus = 1, .xen_major = 4, .xen_minor = 17};
	struct hv_xen_image *im;
	struct hv_xen_config *c;
	struct hv_state st = {0};
	char *b, err[320];
	int fd = memfd_create("image", MFD_CLOEXEC);
	uint32_t u32;
	off_t len;

	(void)unused;
	snprintf(info.name, sizeof(info.name), "web");
	snprintf(info.disk, sizeof(info.disk), "/dev/drbd1");
	assert_int_equal(hv_xen_image_new(&info, &im), 0);
	assert_true(fd >= 0);
	make_state(&st, true);
	for (uint32_t i = 0; i < st.nrecs; i++)
		if (st.recs[i].type == CKPT_REC_HA_XEN_CONFIG)
			st.recs[i].type = CKPT_REC_HVM_PARAMS + 0x1000; /* not found any more */
	assert_int_equal(hv_state_add(&st, CKPT_REC_HA_XEN_CONFIG, two, sizeof(two)), 0);
	assert_int_equal(hv_xen_image_write(im, &st, fd), 0);
	len = lseek(fd, 0, SEEK_END);
	b = malloc((size_t)len);
	assert_int_equal(pread(fd, b, (size_t)len, 0), len);
	memcpy(&u32, b + 48, 4);
	assert_int_equal(b[52 + u32 - 1], '\0');
	assert_int_equal(hv_xen_config_parse(b + 52, u32, &c, err, sizeof(err)), 0);
	assert_string_equal(hv_xen_config_str(c, "disks.0.pdev_path"), "/dev/drbd1");
	assert_string_equal(hv_xen_config_str(c, "disks.0.vdev"), "xvda");
	assert_string_equal(hv_xen_config_str(c, "c_info.name"), "web");
	hv_xen_config_free(c);
	free(b);
	close(fd);
	hv_state_free(&st);
	hv_xen_image_free(im);
}

/* The standby's creation image: `xl restore -p` of the domain under its
 * standby name, every page allocated (XALLOC) and none written, then the
 * committed state. */
static void test_standby_image(void **unused)
{
	struct hv_xen_image *im = make_image();
	struct hv_state st = {0};
	struct ckpt_reader *r;
	struct ckpt_record rec;
	struct hv_xen_config *c;
	char dir[] = "/tmp/test_xen_image.XXXXXX", xl[600], out[600], script[1200], err[320];
	char args[200] = "";
	uint32_t u32, npfn = 0, ndata = 0;
	FILE *f;
	int fd, rc;

	(void)unused;
	assert_non_null(mkdtemp(dir));
	snprintf(xl, sizeof(xl), "%s/xl", dir);
	snprintf(out, sizeof(out), "%s/restored", dir);
	snprintf(script, sizeof(script),
		 "#!/bin/sh\necho \"$1 $2\" >%s/args\ncat \"$3\" >%s/restored\n", dir, dir);
	f = fopen(xl, "w");
	assert_non_null(f);
	fputs(script, f);
	fclose(f);
	assert_int_equal(chmod(xl, 0755), 0);
	setenv("HA_XEN_XL", xl, 1);
	setenv("HA_XEN_SAVE_DIR", dir, 1);
	make_state(&st, true);
	{
		/* The stream's start: the CPU policy, before STATIC_DATA_END. */
		struct hv_state start = {0};
		uint32_t leaf[6] = {7, 0, 1, 2, 3, 4};
		uint32_t msr[4] = {0xce, 0, 5, 0};

		assert_int_equal(hv_state_add(&start, CKPT_REC_X86_CPUID_POLICY, leaf, 24), 0);
		assert_int_equal(hv_state_add(&start, CKPT_REC_X86_MSR_POLICY, msr, 16), 0);
		assert_int_equal(hv_state_add(&start, CKPT_REC_STATIC_DATA_END, NULL, 0), 0);
		assert_int_equal(hv_xen_image_set_start(im, &start), 0);
		hv_state_free(&start);
	}
	assert_int_equal(hv_xen_image_standby(im, &st, "web--standby"), 0);
	snprintf(script, sizeof(script), "%s/args", dir);
	f = fopen(script, "r");
	assert_non_null(f);
	assert_non_null(fgets(args, sizeof(args), f));
	fclose(f);
	assert_string_equal(args, "restore -p\n");

	fd = open(out, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &u32, 4, 48), 4);
	{
		char *cfg = malloc(u32);

		assert_int_equal(pread(fd, cfg, u32, 52), (ssize_t)u32);
		assert_int_equal(hv_xen_config_parse(cfg, u32, &c, err, sizeof(err)), 0);
		assert_string_equal(hv_xen_config_str(c, "c_info.name"), "web--standby");
		/* No disks: they are attached at activation. */
		assert_int_equal(hv_xen_config_count(c, "disks"), 0);
		hv_xen_config_free(c);
		free(cfg);
	}
	/* Past the xl header, its configuration and the libxl header with its
	 * LIBXC_CONTEXT record: the libxc stream. */
	assert_int_equal(lseek(fd, 52 + u32 + 16 + 8, SEEK_SET), 52 + u32 + 16 + 8);
	assert_int_equal(ckpt_reader_new_fd(fd, &r), 0);
	assert_int_equal(ckpt_reader_headers(r, 0), 0);
	uint32_t order[3], nfirst = 0;
	while ((rc = ckpt_reader_next(r, &rec)) == 0 && rec.type != CKPT_REC_END) {
		if (nfirst < 3)
			order[nfirst++] = rec.type;
		if (rec.type != CKPT_REC_PAGE_DATA)
			continue;
		const struct ckpt_page_data_hdr *h = (const void *)rec.body;
		const uint64_t *e = (const uint64_t *)(h + 1);

		assert_int_equal(rec.length, sizeof(*h) + h->count * 8); /* no data */
		for (uint32_t i = 0; i < h->count; i++, npfn++) {
			assert_int_equal(e[i] >> CKPT_PFN_TYPE_SHIFT, CKPT_PFN_TYPE_XALLOC);
			assert_int_equal(e[i] & CKPT_PFN_MASK, pfns[npfn]);
		}
		ndata += rec.length > sizeof(*h) + h->count * 8;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(npfn, sizeof(pfns) / sizeof(pfns[0]));
	assert_int_equal(ndata, 0);
	assert_int_equal(order[0], CKPT_REC_X86_CPUID_POLICY);
	assert_int_equal(order[1], CKPT_REC_X86_MSR_POLICY);
	assert_int_equal(order[2], CKPT_REC_STATIC_DATA_END);
	ckpt_reader_free(r);
	close(fd);
	/* No configuration from the primary: no standby (the cold route). */
	hv_state_free(&st);
	make_state(&st, true);
	for (uint32_t i = 0; i < st.nrecs; i++)
		if (st.recs[i].type == CKPT_REC_HA_XEN_CONFIG)
			st.recs[i].type = CKPT_REC_HVM_PARAMS + 0x1000;
	assert_int_equal(hv_xen_image_standby(im, &st, "web--standby"), -ENOENT);
	unlink(out);
	unlink(script);
	unlink(xl);
	rmdir(dir);
	unsetenv("HA_XEN_XL");
	unsetenv("HA_XEN_SAVE_DIR");
	hv_state_free(&st);
	hv_xen_image_free(im);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_restore_image),
		cmocka_unit_test(test_xl_framing),
		cmocka_unit_test(test_image_needs_context),
		cmocka_unit_test(test_restore_plumbing),
		cmocka_unit_test(test_lookup_and_no_xen),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_image_config),
		cmocka_unit_test(test_standby_image),
	};

	log_init("test_xen_image");
	log_set_level(LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
