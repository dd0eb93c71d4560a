/* taxonomy.c: loads and validates the shared triage taxonomy. */
#include "taxonomy.h"
#include "common.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int id_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > HL_TAX_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_'))
			return 0;
	return 1;
}

/* Appends one validated entry of an array; where names it in messages. */
static int add(struct hl_taxonomy *t, json_t *o, enum hl_tax_kind kind,
	       const char *group, const char *where, char *err, size_t errlen)
{
	const char *id = json_string_value(json_object_get(o, "id"));
	json_t *risk = json_object_get(o, "risk");
	struct hl_tax_item *it;
	void *p;

	if (!json_is_object(o) || !id || !id_ok(id)) {
		hl_set_err(err, errlen, "taxonomy: %s: every entry needs an id of "
					"1-32 characters a-z 0-9 _", where);
		return HL_EINVAL;
	}
	if (!json_is_string(json_object_get(o, "label"))) {
		hl_set_err(err, errlen, "taxonomy: %s \"%s\": label missing", where, id);
		return HL_EINVAL;
	}
	if ((kind == HL_TAX_TAG || kind == HL_TAX_FLAG) &&
	    (!json_is_string(json_object_get(o, "chip")) || !json_is_integer(risk) ||
	     json_integer_value(risk) < 0 || json_integer_value(risk) > 3)) {
		hl_set_err(err, errlen, "taxonomy: %s \"%s\": needs a chip and a "
					"risk from 0 to 3", where, id);
		return HL_EINVAL;
	}
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->items[i].id, id) == 0) {
			hl_set_err(err, errlen, "taxonomy: id \"%s\" is used twice", id);
			return HL_EINVAL;
		}
	p = realloc(t->items, (t->n + 1) * sizeof(*t->items));
	if (!p)
		return HL_ENOMEM;
	t->items = p;
	it = &t->items[t->n++];
	memset(it, 0, sizeof(*it));
	snprintf(it->id, sizeof(it->id), "%s", id);
	snprintf(it->group, sizeof(it->group), "%s", group ? group : "");
	it->kind = kind;
	it->risk = kind == HL_TAX_TAG || kind == HL_TAX_FLAG
			   ? (int)json_integer_value(risk) : 0;
	return HL_OK;
}

static int parse_root(struct hl_taxonomy *t, json_t *root, char *err,
		      size_t errlen)
{
	json_t *groups, *g, *v;
	size_t i, j;
	int rc;

	if (json_integer_value(json_object_get(root, "version")) != 1) {
		hl_set_err(err, errlen, "taxonomy: version must be 1");
		return HL_EINVAL;
	}
	groups = json_object_get(root, "groups");
	if (!json_is_array(groups) || json_array_size(groups) == 0) {
		hl_set_err(err, errlen, "taxonomy: groups must be a non-empty array");
		return HL_EINVAL;
	}
	json_array_foreach(groups, i, g) {
		const char *gid = json_string_value(json_object_get(g, "id"));
		json_t *tags = json_object_get(g, "tags");

		if (!gid || !id_ok(gid) || !json_is_array(tags)) {
			hl_set_err(err, errlen, "taxonomy: group %zu needs an id and tags", i);
			return HL_EINVAL;
		}
		json_array_foreach(tags, j, v)
			if ((rc = add(t, v, HL_TAX_TAG, gid, "tag", err, errlen)))
				return rc;
	}
	json_array_foreach(json_object_get(root, "risk_flags"), i, v)
		if ((rc = add(t, v, HL_TAX_FLAG, NULL, "risk flag", err, errlen)))
			return rc;
	v = json_object_get(root, "age_bands");
	if (!json_is_array(v) || json_array_size(v) == 0) {
		hl_set_err(err, errlen, "taxonomy: age_bands must be a non-empty array");
		return HL_EINVAL;
	}
	json_array_foreach(json_object_get(root, "age_bands"), i, v)
		if ((rc = add(t, v, HL_TAX_AGE_BAND, NULL, "age band", err, errlen)))
			return rc;
	json_array_foreach(json_object_get(root, "outcomes"), i, v)
		if ((rc = add(t, v, HL_TAX_OUTCOME, NULL, "outcome", err, errlen)))
			return rc;
	return HL_OK;
}

int hl_taxonomy_parse(struct hl_taxonomy *t, const char *text, size_t len,
		      char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;
	int rc;

	memset(t, 0, sizeof(*t));
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		hl_set_err(err, errlen, "taxonomy: line %d: %s", jerr.line, jerr.text);
		return HL_EINVAL;
	}
	rc = json_is_object(root) ? parse_root(t, root, err, errlen) : HL_EINVAL;
	if (rc == HL_EINVAL && !json_is_object(root))
		hl_set_err(err, errlen, "taxonomy: the file must hold one object");
	json_decref(root);
	if (rc != 0)
		hl_taxonomy_free(t);
	return rc;
}

int hl_taxonomy_load(struct hl_taxonomy *t, const char *path, char *err,
		     size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long n;
	int rc;

	memset(t, 0, sizeof(*t));
	if (!f) {
		hl_set_err(err, errlen, "taxonomy: cannot read %s", path);
		return HL_EIO;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > 1 << 20 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		hl_set_err(err, errlen, "taxonomy: %s is unreadable or over 1 MiB", path);
		return HL_EIO;
	}
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		hl_set_err(err, errlen, "taxonomy: cannot read %s", path);
		return buf ? HL_EIO : HL_ENOMEM;
	}
	fclose(f);
	rc = hl_taxonomy_parse(t, buf, (size_t)n, err, errlen);
	free(buf);
	return rc;
}

const struct hl_tax_item *hl_taxonomy_find(const struct hl_taxonomy *t,
					   const char *id,
					   enum hl_tax_kind kind)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->items[i].kind == kind && strcmp(t->items[i].id, id) == 0)
			return &t->items[i];
	return NULL;
}

int hl_taxonomy_risk(const struct hl_taxonomy *t, const char *const *ids,
		     size_t n, int *risk, const char **bad)
{
	*risk = 0;
	for (size_t i = 0; i < n; i++) {
		const struct hl_tax_item *it = hl_taxonomy_find(t, ids[i], HL_TAX_TAG);

		if (!it)
			it = hl_taxonomy_find(t, ids[i], HL_TAX_FLAG);
		if (!it) {
			if (bad)
				*bad = ids[i];
			return HL_EINVAL;
		}
		if (it->risk > *risk)
			*risk = it->risk;
	}
	return HL_OK;
}

void hl_taxonomy_free(struct hl_taxonomy *t)
{
	free(t->items);
	t->items = NULL;
	t->n = 0;
}
