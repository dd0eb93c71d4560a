/* taxonomy.h: owns the triage taxonomy read from client-web/taxonomy.json
 * (the one file the daemon, the console and the page share): topic tags,
 * risk flags, age bands, and the risk class each tag or flag implies. */
#ifndef HL_TAXONOMY_H
#define HL_TAXONOMY_H

#include <stddef.h>

#define HL_TAX_ID_MAX 32

enum hl_tax_kind {
	HL_TAX_TAG = 0,   /* a topic (e.g. "sextortion") */
	HL_TAX_FLAG,      /* a risk flag (e.g. "danger_now") */
	HL_TAX_AGE_BAND,  /* an age band (e.g. "13_15") */
	HL_TAX_OUTCOME,   /* a wrap-up outcome (e.g. "signposted") */
};

/* One id of the taxonomy. */
struct hl_tax_item {
	char id[HL_TAX_ID_MAX + 1];   /* [a-z0-9_], unique across the file */
	char group[HL_TAX_ID_MAX + 1];/* tags: their group's id; else "" */
	enum hl_tax_kind kind;
	int risk;                     /* 0..3 (age bands: 0) */
};

/* The loaded taxonomy. Caller-allocated; free with hl_taxonomy_free. */
struct hl_taxonomy {
	struct hl_tax_item *items;
	size_t n;
};

/*
 * Parses and validates taxonomy JSON (text of len bytes): "version" 1;
 * "groups" of "tags" and "risk_flags", each with "id", "label", "chip"
 * and "risk" 0..3; "age_bands" and (optional) "outcomes" with "id" and
 * "label"; ids [a-z0-9_]{1,32}
 * unique across the file. Returns 0, or HL_EINVAL with a message naming
 * the offending entry in err; HL_ENOMEM.
 */
int hl_taxonomy_parse(struct hl_taxonomy *t, const char *text, size_t len,
		      char *err, size_t errlen);

/* Reads and parses the file at path (HL_EIO when unreadable). */
int hl_taxonomy_load(struct hl_taxonomy *t, const char *path, char *err,
		     size_t errlen);

/* The item with this id and kind, or NULL. */
const struct hl_tax_item *hl_taxonomy_find(const struct hl_taxonomy *t,
					   const char *id,
					   enum hl_tax_kind kind);

/*
 * The risk class implied by a list of tag and flag ids: the highest of
 * their risks (0 for none). Returns 0 with *risk set, or HL_EINVAL when an
 * id is neither a tag nor a flag (*bad is then that id).
 */
int hl_taxonomy_risk(const struct hl_taxonomy *t, const char *const *ids,
		     size_t n, int *risk, const char **bad);

void hl_taxonomy_free(struct hl_taxonomy *t);

#endif
