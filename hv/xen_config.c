/* libxl's JSON configuration of a domain, read and adapted with yajl (the
 * JSON library libxl itself uses): the tree is parsed whole, members are
 * found by path ("c_info.name", "disks.0.pdev_path"), changed in place,
 * and the tree is generated back. */
#include "hv/xen.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

struct hv_xen_config {
	yajl_val root;
};

int hv_xen_config_parse(const char *json, size_t len, struct hv_xen_config **out, char *err,
			size_t errlen)
{
	struct hv_xen_config *c;
	char *text, why[256] = "";

	*out = NULL;
	/* yajl wants a NUL-terminated text; the record may or may not end in
	 * one. */
	while (len && json[len - 1] == '\0')
		len--;
	text = malloc(len + 1);
	c = calloc(1, sizeof(*c));
	if (!text || !c) {
		free(text);
		free(c);
		return -ENOMEM;
	}
	memcpy(text, json, len);
	text[len] = '\0';
	c->root = yajl_tree_parse(text, why, sizeof(why));
	free(text);
	if (!c->root || !YAJL_IS_OBJECT(c->root)) {
		char *nl = strchr(why, '\n');

		if (nl)
			*nl = '\0';
		snprintf(err, errlen, "the domain's libxl configuration is not a JSON object%s%s",
			 why[0] ? ": " : "", why);
		yajl_tree_free(c->root);
		free(c);
		return -EBADMSG;
	}
	*out = c;
	return 0;
}

void hv_xen_config_free(struct hv_xen_config *c)
{
	if (!c)
		return;
	yajl_tree_free(c->root);
	free(c);
}

/* The node at a dotted path: object members by name, array elements by
 * index. NULL when absent. */
static yajl_val lookup(yajl_val v, const char *path)
{
	char part[64];

	while (v && *path) {
		size_t n = strcspn(path, ".");

		if (n >= sizeof(part))
			return NULL;
		memcpy(part, path, n);
		part[n] = '\0';
		path += n + (path[n] == '.');
		if (YAJL_IS_OBJECT(v)) {
			yajl_val next = NULL;

			for (size_t i = 0; i < v->u.object.len; i++)
				if (!strcmp(v->u.object.keys[i], part))
					next = v->u.object.values[i];
			v = next;
		} else if (YAJL_IS_ARRAY(v)) {
			char *end;
			unsigned long i = strtoul(part, &end, 10);

			v = *part && !*end && i < v->u.array.len ? v->u.array.values[i] : NULL;
		} else {
			v = NULL;
		}
	}
	return v;
}

const char *hv_xen_config_str(const struct hv_xen_config *c, const char *path)
{
	yajl_val v = lookup(c->root, path);

	return v && YAJL_IS_STRING(v) ? v->u.string : NULL;
}

size_t hv_xen_config_count(const struct hv_xen_config *c, const char *path)
{
	yajl_val v = lookup(c->root, path);

	return v && YAJL_IS_ARRAY(v) ? v->u.array.len : 0;
}

int hv_xen_config_set(struct hv_xen_config *c, const char *path, const char *value)
{
	yajl_val v = lookup(c->root, path);
	char *s;

	if (!v || !YAJL_IS_STRING(v))
		return -ENOENT;
	s = strdup(value);
	if (!s)
		return -ENOMEM;
	free(v->u.string);
	v->u.string = s;
	return 0;
}

int hv_xen_config_clear(struct hv_xen_config *c, const char *path)
{
	yajl_val v = lookup(c->root, path);

	if (!v || !YAJL_IS_ARRAY(v))
		return -ENOENT;
	for (size_t i = 0; i < v->u.array.len; i++)
		yajl_tree_free(v->u.array.values[i]);
	v->u.array.len = 0;
	return 0;
}

int hv_xen_config_int(const struct hv_xen_config *c, const char *path, int64_t *out)
{
	yajl_val v = lookup(c->root, path);

	if (!v || !YAJL_IS_INTEGER(v))
		return -ENOENT;
	*out = YAJL_GET_INTEGER(v);
	return 0;
}

int hv_xen_config_set_int(struct hv_xen_config *c, const char *path, int64_t value)
{
	yajl_val v = lookup(c->root, path);
	char buf[24], *s;

	if (!v || !YAJL_IS_INTEGER(v))
		return -ENOENT;
	snprintf(buf, sizeof(buf), "%" PRId64, value);
	s = strdup(buf);
	if (!s)
		return -ENOMEM;
	free(v->u.number.r);
	v->u.number.r = s;
	v->u.number.i = value;
	return 0;
}

static yajl_gen_status gen(yajl_gen g, yajl_val v)
{
	const unsigned char *s;
	yajl_gen_status rc = yajl_gen_status_ok;

	switch (v ? v->type : yajl_t_null) {
	case yajl_t_string:
		s = (const unsigned char *)v->u.string;
		return yajl_gen_string(g, s, strlen(v->u.string));
	case yajl_t_number:
		return yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
	case yajl_t_true:
		return yajl_gen_bool(g, 1);
	case yajl_t_false:
		return yajl_gen_bool(g, 0);
	case yajl_t_object:
		rc = yajl_gen_map_open(g);
		for (size_t i = 0; rc == yajl_gen_status_ok && i < v->u.object.len; i++) {
			s = (const unsigned char *)v->u.object.keys[i];
			rc = yajl_gen_string(g, s, strlen(v->u.object.keys[i]));
			if (rc == yajl_gen_status_ok)
				rc = gen(g, v->u.object.values[i]);
		}
		return rc == yajl_gen_status_ok ? yajl_gen_map_close(g) : rc;
	case yajl_t_array:
		rc = yajl_gen_array_open(g);
		for (size_t i = 0; rc == yajl_gen_status_ok && i < v->u.array.len; i++)
			rc = gen(g, v->u.array.values[i]);
		return rc == yajl_gen_status_ok ? yajl_gen_array_close(g) : rc;
	default:
		return yajl_gen_null(g);
	}
}

int hv_xen_config_dump(const struct hv_xen_config *c, char **out, uint32_t *len)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *buf;
	size_t n;
	int rc = -ENOMEM;

	*out = NULL;
	if (!g)
		return -ENOMEM;
	yajl_gen_config(g, yajl_gen_beautify, 1);
	if (gen(g, c->root) == yajl_gen_status_ok &&
	    yajl_gen_get_buf(g, &buf, &n) == yajl_gen_status_ok && n < UINT32_MAX) {
		/* With its NUL, as libxl writes it. */
		*out = malloc(n + 1);
		if (*out) {
			memcpy(*out, buf, n);
			(*out)[n] = '\0';
			*len = (uint32_t)n + 1;
			rc = 0;
		}
	}
	yajl_gen_free(g);
	return rc;
}
