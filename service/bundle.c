/* bundle.c: the offline verifier of evidence bundles (docs/evidence.md):
 * canonical JSON, the digest, the signatures, certificates as of the times
 * the bundle records, the hash chain, STAMP checkpoints, handshakes, the
 * openings of disclosed messages and the audit entries. Every crypto check
 * is e2e.c's, cert.c's or audit.c's; this file reads JSON and says, in
 * words a court can follow, which check failed. */
#include "bundle.h"
#include "audit.h"
#include "cert.h"
#include "common.h"
#include "e2e.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LINES 200
#define SAFE_INT 9007199254740991LL  /* 2^53 - 1: what JavaScript holds */
#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define ROLES_STAFF ((1u << HL_CERT_COUNSELLOR_DEVICE) | \
		     (1u << HL_CERT_SUPERVISOR_DEVICE))

/* ---- canonical JSON ----------------------------------------------------- */

/* A growable byte buffer; oom once an allocation failed. */
struct buf {
	char *p;
	size_t n, cap;
	bool oom;
};

static void put(struct buf *b, const void *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->n + n)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

static void puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* Keys: 1-64 bytes of printable ASCII without '"' and '\', so that byte
 * order is also JavaScript's (UTF-16 code unit) order and no key needs an
 * escape. */
static bool key_ok(const char *k)
{
	size_t n = strlen(k);

	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (k[i] < 0x20 || k[i] > 0x7e || k[i] == '"' || k[i] == '\\')
			return false;
	return true;
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A string as JSON.stringify writes a well-formed one. */
static void put_string(struct buf *b, const char *s, size_t n)
{
	static const char hexd[] = "0123456789abcdef";
	size_t run = 0;

	put(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[7];

		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		put(b, s + run, i - run);
		run = i + 1;
		switch (ch) {
		case '"': puts_(b, "\\\""); break;
		case '\\': puts_(b, "\\\\"); break;
		case '\b': puts_(b, "\\b"); break;
		case '\t': puts_(b, "\\t"); break;
		case '\n': puts_(b, "\\n"); break;
		case '\f': puts_(b, "\\f"); break;
		case '\r': puts_(b, "\\r"); break;
		default:
			memcpy(esc, "\\u00", 4);
			esc[4] = hexd[ch >> 4];
			esc[5] = hexd[ch & 15];
			put(b, esc, 6);
		}
	}
	put(b, s + run, n - run);
	put(b, "\"", 1);
}

static int canon(struct buf *b, const json_t *v, int depth, char *why,
		 size_t wl)
{
	char num[32];

	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		size_t n = json_object_size(v), i = 0;
		const char **keys;
		const char *k;
		json_t *val;
		int rc = 0;

		if (depth > HL_BUNDLE_MAX_DEPTH) {
			hl_set_err(why, wl, "nests deeper than %d levels",
				   HL_BUNDLE_MAX_DEPTH);
			return HL_EINVAL;
		}
		keys = malloc((n ? n : 1) * sizeof(*keys));
		if (!keys)
			return HL_ENOMEM;
		json_object_foreach((json_t *)v, k, val) {
			if (!key_ok(k)) {
				hl_set_err(why, wl, "an object key is not 1-64 "
					   "printable ASCII characters without "
					   "quote or backslash");
				free(keys);
				return HL_EINVAL;
			}
			keys[i++] = k;
		}
		qsort(keys, n, sizeof(*keys), cmp_keys);
		put(b, "{", 1);
		for (i = 0; rc == 0 && i < n; i++) {
			if (i)
				put(b, ",", 1);
			put_string(b, keys[i], strlen(keys[i]));
			put(b, ":", 1);
			rc = canon(b, json_object_get(v, keys[i]), depth + 1,
				   why, wl);
		}
		put(b, "}", 1);
		free(keys);
		return rc;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *val;
		int rc = 0;

		if (depth > HL_BUNDLE_MAX_DEPTH) {
			hl_set_err(why, wl, "nests deeper than %d levels",
				   HL_BUNDLE_MAX_DEPTH);
			return HL_EINVAL;
		}
		put(b, "[", 1);
		json_array_foreach((json_t *)v, i, val) {
			if (rc)
				break;
			if (i)
				put(b, ",", 1);
			rc = canon(b, val, depth + 1, why, wl);
		}
		put(b, "]", 1);
		return rc;
	}
	case JSON_STRING:
		put_string(b, json_string_value(v), json_string_length(v));
		return 0;
	case JSON_INTEGER: {
		json_int_t x = json_integer_value(v);

		if (x > SAFE_INT || x < -SAFE_INT) {
			hl_set_err(why, wl, "an integer is beyond +-(2^53 - 1)");
			return HL_EINVAL;
		}
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, x);
		puts_(b, num);
		return 0;
	}
	case JSON_REAL:
		hl_set_err(why, wl, "a number is not an integer");
		return HL_EINVAL;
	case JSON_TRUE:
		puts_(b, "true");
		return 0;
	case JSON_FALSE:
		puts_(b, "false");
		return 0;
	case JSON_NULL:
		puts_(b, "null");
		return 0;
	}
	return HL_EINVAL;
}

int hl_bundle_canonical(const json_t *v, char **out, size_t *len, char *why,
			size_t why_len)
{
	struct buf b = {0};
	int rc;

	*out = NULL;
	*len = 0;
	if (!v)
		return HL_EINVAL;
	rc = canon(&b, v, 1, why, why_len);
	if (rc == 0 && b.oom)
		rc = HL_ENOMEM;
	if (rc != 0) {
		free(b.p);
		return rc;
	}
	*out = b.p ? b.p : malloc(1);
	if (!*out)
		return HL_ENOMEM;
	*len = b.n;
	return 0;
}

void hl_bundle_digest(const void *canonical_body, size_t len,
		      unsigned char out[HL_BUNDLE_DIGEST])
{
	crypto_generichash(out, HL_BUNDLE_DIGEST, canonical_body, len, NULL, 0);
}

size_t hl_bundle_sig_msg(enum hl_bundle_signer signer,
			 const unsigned char digest[HL_BUNDLE_DIGEST],
			 unsigned char out[HL_BUNDLE_SIG_MSG_MAX])
{
	const char *label = signer == HL_BUNDLE_BY_SERVICE
				    ? HL_BUNDLE_SERVICE_LABEL
				    : HL_BUNDLE_SUPERVISOR_LABEL;
	size_t n = strlen(label);

	_Static_assert(sizeof(HL_BUNDLE_SUPERVISOR_LABEL) - 1 <= 32 &&
			       sizeof(HL_BUNDLE_SERVICE_LABEL) - 1 <= 32,
		       "labels fit HL_BUNDLE_SIG_MSG_MAX");
	memcpy(out, label, n);
	memcpy(out + n, digest, HL_BUNDLE_DIGEST);
	return n + HL_BUNDLE_DIGEST;
}

/* ---- the report ------------------------------------------------------------ */

static void line(struct hl_bundle_report *r, bool ok, const char *check,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void line(struct hl_bundle_report *r, bool ok, const char *check,
		 const char *fmt, ...)
{
	struct hl_bundle_line *l;
	va_list ap;

	if (!ok)
		r->failures++;
	if (r->nlines >= MAX_LINES) {
		if (!ok)
			r->omitted++;
		return;
	}
	if (r->nlines == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 32;
		void *p = realloc(r->lines, cap * sizeof(*r->lines));

		if (!p) {
			if (!ok)
				r->omitted++;
			return;
		}
		r->lines = p;
		r->cap = cap;
	}
	l = &r->lines[r->nlines++];
	l->ok = ok;
	snprintf(l->check, sizeof(l->check), "%s", check);
	va_start(ap, fmt);
	vsnprintf(l->text, sizeof(l->text), fmt, ap);
	va_end(ap);
}

void hl_bundle_report_free(struct hl_bundle_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nmessages; i++) {
		if (r->messages[i].text)
			sodium_memzero(r->messages[i].text,
				       strlen(r->messages[i].text));
		free(r->messages[i].text);
	}
	free(r->messages);
	free(r->lines);
	free(r->audit_refs);
	memset(r, 0, sizeof(*r));
}

/* Unix seconds as ISO 8601 UTC. */
static const char *iso(int64_t s, char buf[32])
{
	struct tm tm;
	time_t t = (time_t)s;

	if (s < -62135596800LL || s > 253402300799LL || !gmtime_r(&t, &tm)) {
		snprintf(buf, 32, "%" PRId64 " s", s);
		return buf;
	}
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

/* unix ms -> unix s, rounding down. */
static int64_t secs(int64_t ms)
{
	return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

/* ---- reading the body ------------------------------------------------------ */

/* An event of the chain, as the bundle records it. */
struct ev {
	int64_t seq, at;
	const char *kind, *sender;   /* into the JSON, which outlives ev */
	bool staff_only;
	bool full;                   /* payload disclosed */
	unsigned char *payload;      /* malloc'd when full (NULL when empty) */
	size_t plen;
	unsigned char ph[32];        /* H(payload), recorded or computed */
	unsigned char head[32];      /* the head the bundle records */
	bool hs_ok;                  /* accept: its handshake verified */
};

/* A revocation the bundle carries, once verified. */
struct rev {
	unsigned char hash[32];
	int64_t at;                  /* unix s */
};

/* Everything one verification holds. */
struct ctx {
	struct hl_bundle_report *r;
	unsigned char root[32];
	uint64_t conv;
	int64_t created_at;          /* ms */
	struct ev *ev;
	size_t nev;
	bool events_ok;              /* events read (seq checks aside) */
	struct rev *rev;
	size_t nrev;
	bool rev_ok;
	struct hl_cert stamp;
	bool stamp_ok;               /* signed by the root with role STAMP */
	unsigned char stamp_hash[32];
	bool oom;
};

static void structure(struct ctx *c, const char *path, const char *why)
{
	line(c->r, false, "structure", "%s: %s", path, why);
}

/* o is an object whose keys are all in keys (NULL-terminated) and which has
 * every key of req (also NULL-terminated; NULL = all of keys). */
static bool shape(struct ctx *c, const json_t *o, const char *path,
		  const char *const *keys, const char *const *req)
{
	const char *k;
	json_t *v;
	bool ok = true;

	if (!json_is_object(o)) {
		structure(c, path, "is not an object");
		return false;
	}
	json_object_foreach((json_t *)o, k, v) {
		bool known = false;

		for (size_t i = 0; keys[i]; i++)
			known |= strcmp(k, keys[i]) == 0;
		if (!known) {
			char why[120];

			snprintf(why, sizeof(why), "unknown field \"%.64s\"", k);
			structure(c, path, why);
			ok = false;
		}
	}
	for (size_t i = 0; (req ? req : keys)[i]; i++) {
		if (!json_object_get(o, (req ? req : keys)[i])) {
			char why[120];

			snprintf(why, sizeof(why), "field \"%s\" is missing",
				 (req ? req : keys)[i]);
			structure(c, path, why);
			ok = false;
		}
	}
	(void)v;
	return ok;
}

static bool get_int(struct ctx *c, const json_t *o, const char *path,
		    const char *key, int64_t min, int64_t max, int64_t *out)
{
	const json_t *v = json_object_get(o, key);
	char why[120];

	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max) {
		snprintf(why, sizeof(why), "\"%s\" is not an integer from %"
			 PRId64 " to %" PRId64, key, min, max);
		structure(c, path, why);
		return false;
	}
	*out = json_integer_value(v);
	return true;
}

static const char *get_str(struct ctx *c, const json_t *o, const char *path,
			   const char *key, size_t min, size_t max)
{
	const json_t *v = json_object_get(o, key);
	char why[120];

	if (!json_is_string(v) || json_string_length(v) < min ||
	    json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		snprintf(why, sizeof(why), "\"%s\" is not a string of %zu to "
			 "%zu bytes", key, min, max);
		structure(c, path, why);
		return NULL;
	}
	return json_string_value(v);
}

/* Decodes base64url without padding, the whole string, into out (cap). */
static int unb64(const char *s, size_t sl, unsigned char *out, size_t cap,
		 size_t *outlen)
{
	const char *end = NULL;

	*outlen = 0;
	if (sodium_base642bin(out, cap, s, sl, NULL, outlen, &end, B64) != 0 ||
	    end != s + sl)
		return -1;
	return 0;
}

/* A base64url field of exactly len bytes into out. */
static bool get_fixed(struct ctx *c, const json_t *o, const char *path,
		      const char *key, unsigned char *out, size_t len)
{
	const json_t *v = json_object_get(o, key);
	size_t n;
	char why[120];

	if (!json_is_string(v) ||
	    unb64(json_string_value(v), json_string_length(v), out, len,
		  &n) != 0 ||
	    n != len) {
		snprintf(why, sizeof(why), "\"%s\" is not %zu bytes of "
			 "base64url", key, len);
		structure(c, path, why);
		return false;
	}
	return true;
}

/* A base64url field of 1..max bytes (or 0 with allow_empty) into a
 * malloc'd *out (NULL when empty). */
static bool get_blob(struct ctx *c, const json_t *o, const char *path,
		     const char *key, size_t max, bool allow_empty,
		     unsigned char **out, size_t *len)
{
	const json_t *v = json_object_get(o, key);
	size_t sl;
	char why[120];

	*out = NULL;
	*len = 0;
	if (!json_is_string(v) || (sl = json_string_length(v)) > max / 3 * 4 + 4)
		goto bad;
	if (sl == 0) {
		if (allow_empty)
			return true;
		goto bad;
	}
	*out = malloc(sl);
	if (!*out) {
		c->oom = true;
		return false;
	}
	if (unb64(json_string_value(v), sl, *out, sl, len) != 0 || *len > max ||
	    *len == 0) {
		free(*out);
		*out = NULL;
		*len = 0;
		goto bad;
	}
	return true;
bad:
	snprintf(why, sizeof(why), "\"%s\" is not base64url of %s1 to %zu "
		 "bytes", key, allow_empty ? "0 or " : "", max);
	structure(c, path, why);
	return false;
}

/* A certificate field (base64url, at most HL_CERT_MAX bytes) into out. */
static bool get_cert(struct ctx *c, const json_t *o, const char *path,
		     const char *key, unsigned char out[HL_CERT_MAX],
		     size_t *len)
{
	const json_t *v = json_object_get(o, key);
	char why[120];

	if (!json_is_string(v) || json_string_length(v) > 2 * HL_CERT_MAX ||
	    unb64(json_string_value(v), json_string_length(v), out,
		  HL_CERT_MAX, len) != 0 ||
	    *len == 0) {
		snprintf(why, sizeof(why), "\"%s\" is not a certificate in "
			 "base64url", key);
		structure(c, path, why);
		return false;
	}
	return true;
}

static const json_t *get_array(struct ctx *c, const json_t *o,
			       const char *path, const char *key, size_t max)
{
	const json_t *v = json_object_get(o, key);
	char why[120];

	if (!json_is_array(v) || json_array_size(v) > max) {
		snprintf(why, sizeof(why), "\"%s\" is not an array of at most "
			 "%zu entries", key, max);
		structure(c, path, why);
		return NULL;
	}
	return v;
}

/* ---- certificates ------------------------------------------------------------ */

/* Whether a certificate hash was revoked at or before t (unix s); *when
 * gets the earliest such revocation's time. */
static bool revoked_by(const struct ctx *c, const unsigned char *cert,
		       size_t len, int64_t t, int64_t *when)
{
	unsigned char h[32];
	bool hit = false;

	hl_e2e_cert_hash(cert, len, h);
	for (size_t i = 0; i < c->nrev; i++) {
		if (sodium_memcmp(h, c->rev[i].hash, 32) == 0 &&
		    c->rev[i].at <= t && (!hit || c->rev[i].at < *when)) {
			*when = c->rev[i].at;
			hit = true;
		}
	}
	return hit;
}

static const char *role_name(int role)
{
	static const char *const n[] = {
		"unknown", "STAMP", "admin device", "counsellor device",
		"supervisor device", "EVIDENCE",
	};

	return role >= 0 && role <= HL_CERT_EVIDENCE ? n[role] : n[0];
}

/*
 * Checks cert: well formed, role allowed by mask, signed by issuer_pk, valid
 * at t (unix s) and not revoked by then. Fills *out. Returns true, or false
 * with why (wl bytes) saying which, naming the certificate as what.
 */
static bool cert_at(const struct ctx *c, const char *what,
		    const unsigned char *cert, size_t len,
		    const unsigned char *issuer_pk, unsigned mask, int64_t t,
		    struct hl_cert *out, char *why, size_t wl)
{
	char a[32], b[32], d[32];
	int64_t when = 0;

	if (hl_cert_parse(cert, len, out) != 0) {
		snprintf(why, wl, "%s is not a well-formed certificate", what);
		return false;
	}
	if (!(mask & (1u << out->role))) {
		snprintf(why, wl, "%s has role %s", what, role_name(out->role));
		return false;
	}
	if (hl_cert_verify(cert, len, issuer_pk, out->not_before, out->role,
			   NULL) != 0) {
		snprintf(why, wl, "%s is not signed by its issuer", what);
		return false;
	}
	if (t < out->not_before || t > out->not_after) {
		snprintf(why, wl, "%s was not valid at %s (valid from %s to %s)",
			 what, iso(t, a), iso(out->not_before, b),
			 iso(out->not_after, d));
		return false;
	}
	if (revoked_by(c, cert, len, t, &when)) {
		snprintf(why, wl, "%s was revoked at %s, before its use at %s",
			 what, iso(when, a), iso(t, b));
		return false;
	}
	return true;
}

/* A device chain {cert, issuer}: the issuer an admin device under the root,
 * cert a device of mask's roles under the issuer, both at t. */
static bool chain_at(const struct ctx *c, const char *what,
		     const unsigned char *cert, size_t cl,
		     const unsigned char *issuer, size_t il, unsigned mask,
		     int64_t t, struct hl_cert *dev, char *why, size_t wl)
{
	struct hl_cert admin;
	char w[96];

	snprintf(w, sizeof(w), "the issuer of %s", what);
	if (!cert_at(c, w, issuer, il, c->root, 1u << HL_CERT_ADMIN_DEVICE, t,
		     &admin, why, wl))
		return false;
	return cert_at(c, what, cert, cl, admin.sign_pk, mask, t, dev, why,
		       wl);
}

/* ---- the checks ---------------------------------------------------------------- */

static void check_revocations(struct ctx *c, const json_t *body)
{
	static const char *const keys[] = {"issuer", "revocation", NULL};
	const json_t *a = get_array(c, body, "body", "revocations",
				    HL_BUNDLE_MAX_LIST), *e;
	size_t i, bad = 0;

	if (!a)
		return;
	c->rev = calloc(json_array_size(a) + 1, sizeof(*c->rev));
	if (!c->rev) {
		c->oom = true;
		return;
	}
	json_array_foreach(a, i, e) {
		unsigned char r[HL_E2E_REVOCATION], cert[HL_CERT_MAX];
		const unsigned char *signer = c->root;
		struct hl_cert admin;
		size_t cl;
		char path[48];

		snprintf(path, sizeof(path), "revocations[%zu]", i);
		if (!shape(c, e, path, keys, NULL) ||
		    !get_fixed(c, e, path, "revocation", r, sizeof(r)))
			goto skip;
		if (!json_is_null(json_object_get(e, "issuer"))) {
			if (!get_cert(c, e, path, "issuer", cert, &cl))
				goto skip;
			if (hl_cert_parse(cert, cl, &admin) != 0 ||
			    admin.role != HL_CERT_ADMIN_DEVICE ||
			    hl_cert_verify(cert, cl, c->root, admin.not_before,
					   HL_CERT_ADMIN_DEVICE, NULL) != 0) {
				line(c->r, false, "revocations",
				     "revocation %zu: its issuer is not an admin "
				     "device certified by the root", i + 1);
				bad++;
				continue;
			}
			signer = admin.sign_pk;
		}
		if (hl_e2e_revocation_verify(r, sizeof(r), signer,
					     c->rev[c->nrev].hash,
					     &c->rev[c->nrev].at) != 0) {
			line(c->r, false, "revocations",
			     "revocation %zu is not signed by the root or by "
			     "the admin device named with it", i + 1);
			bad++;
			continue;
		}
		c->nrev++;
		continue;
skip:
		bad++;
	}
	c->r->revocations = c->nrev;
	c->rev_ok = bad == 0;
	if (!bad)
		line(c->r, true, "revocations", "%zu signed revocation%s, each "
		     "signed by the root or a root-certified admin device",
		     c->nrev, c->nrev == 1 ? "" : "s");
}

/* One of the two signatures over the digest: a line saying it is missing,
 * valid or invalid under pk, or, when pk is NULL (the signer's certificate
 * did not verify), that it cannot be checked. Returns false when it is
 * missing. */
static bool check_signature(struct ctx *c, const json_t *sigs,
			    const char *key, const char *label,
			    enum hl_bundle_signer who, const unsigned char *pk,
			    const char *missing, const char *valid,
			    const char *invalid, const char *no_cert)
{
	unsigned char sig[64], msg[HL_BUNDLE_SIG_MSG_MAX];
	size_t ml;

	if (!sigs || !json_object_get(sigs, key)) {
		line(c->r, false, label, "%s", missing);
		return false;
	}
	if (get_fixed(c, sigs, "signatures", key, sig, 64) && pk) {
		ml = hl_bundle_sig_msg(who, c->r->digest, msg);
		if (crypto_sign_verify_detached(sig, msg, ml, pk) == 0)
			line(c->r, true, label, "%s", valid);
		else
			line(c->r, false, label, "%s", invalid);
	} else if (!pk) {
		line(c->r, false, label, "%s", no_cert);
	}
	return true;
}

/* The signer's chain and the two signatures over the digest. */
static void check_signatures(struct ctx *c, const json_t *top,
			     const json_t *certs, bool certs_ok)
{
	static const char *const chain_keys[] = {"cert", "issuer", NULL};
	static const char *const sig_keys[] = {"evidence", "supervisor", NULL};
	static const char *const none[] = {NULL};
	const json_t *sigs = json_object_get(top, "signatures");
	unsigned char cert[HL_CERT_MAX], issuer[HL_CERT_MAX];
	size_t cl, il;
	struct hl_cert dev, ev;
	int64_t t = secs(c->created_at);
	char why[256], when[32], valid[160];
	bool have;

	if (!shape(c, sigs, "signatures", sig_keys, none))
		sigs = NULL;

	/* The supervisor's device. */
	have = false;
	if (certs_ok) {
		const json_t *s = json_object_get(certs, "signer");

		if (shape(c, s, "certificates.signer", chain_keys, NULL) &&
		    get_cert(c, s, "certificates.signer", "cert", cert, &cl) &&
		    get_cert(c, s, "certificates.signer", "issuer", issuer,
			     &il)) {
			have = chain_at(c, "the signing supervisor's device "
					"certificate", cert, cl, issuer, il,
					1u << HL_CERT_SUPERVISOR_DEVICE, t,
					&dev, why, sizeof(why));
			memcpy(c->r->signer_cert, cert, cl);
			c->r->signer_cert_len = cl;
			line(c->r, have, "supervisor certificate", "%s",
			     have ? "the signing device is a supervisor device "
				    "certified under the root, valid and not "
				    "revoked when the bundle was made"
				  : why);
		}
	}
	snprintf(valid, sizeof(valid), "valid: made by device %s over the "
		 "digest", have ? dev.subject : "");
	check_signature(c, sigs, "supervisor", "supervisor signature",
			HL_BUNDLE_BY_SUPERVISOR, have ? dev.sign_pk : NULL,
			"missing: the supervisor's device did not sign this "
			"bundle", valid,
			"invalid: not the signing supervisor device's "
			"signature of this bundle's digest",
			"cannot be checked without a valid supervisor device "
			"certificate");

	/* The service's EVIDENCE key. */
	have = false;
	if (certs_ok && get_cert(c, certs, "certificates", "evidence", cert,
				 &cl)) {
		have = cert_at(c, "the EVIDENCE certificate", cert, cl,
			       c->root, 1u << HL_CERT_EVIDENCE, t, &ev, why,
			       sizeof(why));
		if (have)
			line(c->r, true, "evidence certificate",
			     "the service's EVIDENCE key is certified by the "
			     "root, valid at %s", iso(t, when));
		else
			line(c->r, false, "evidence certificate", "%s", why);
	}
	if (!check_signature(c, sigs, "evidence", "evidence signature",
			     HL_BUNDLE_BY_SERVICE, have ? ev.sign_pk : NULL,
			     "missing: the service has not countersigned this "
			     "bundle with its EVIDENCE key",
			     "valid: the service's EVIDENCE key signed the "
			     "digest",
			     "EVIDENCE signature invalid: not the EVIDENCE "
			     "key's signature of this bundle's digest",
			     "cannot be checked without a valid EVIDENCE "
			     "certificate"))
		c->r->evidence_missing = true;
}

static void check_stamp(struct ctx *c, const json_t *certs)
{
	unsigned char cert[HL_CERT_MAX];
	size_t cl;

	if (!get_cert(c, certs, "certificates", "stamp", cert, &cl))
		return;
	if (hl_cert_parse(cert, cl, &c->stamp) != 0 ||
	    c->stamp.role != HL_CERT_STAMP ||
	    hl_cert_verify(cert, cl, c->root, c->stamp.not_before,
			   HL_CERT_STAMP, NULL) != 0) {
		line(c->r, false, "stamp certificate",
		     "is not a STAMP certificate signed by the root");
		return;
	}
	hl_e2e_cert_hash(cert, cl, c->stamp_hash);
	c->stamp_ok = true;
	line(c->r, true, "stamp certificate",
	     "the service's STAMP key is certified by the root (its validity "
	     "is checked at each checkpoint)");
}

static void free_events(struct ctx *c)
{
	for (size_t i = 0; i < c->nev; i++)
		free(c->ev[i].payload);
	free(c->ev);
	c->ev = NULL;
	c->nev = 0;
}

/* Reads the events; checks seq order and the chain. */
static void check_events(struct ctx *c, const json_t *body)
{
	static const char *const keys[] = {"at", "head", "kind", "payload",
		"payload_hash", "sender", "seq", "visibility", NULL};
	static const char *const req[] = {"at", "head", "kind", "sender", "seq",
		"visibility", NULL};
	const json_t *a = get_array(c, body, "body", "events",
				    HL_BUNDLE_MAX_EVENTS), *e;
	size_t i, broken = 0, order_bad = 0, struct_bad = 0;
	unsigned char h[32];

	if (!a)
		return;
	if (json_array_size(a) == 0) {
		structure(c, "events", "is empty");
		return;
	}
	c->ev = calloc(json_array_size(a), sizeof(*c->ev));
	if (!c->ev) {
		c->oom = true;
		return;
	}
	json_array_foreach(a, i, e) {
		struct ev *v = &c->ev[c->nev];
		const char *vis;
		bool has_p, has_h;
		char path[48];

		snprintf(path, sizeof(path), "events[%zu]", i);
		if (!shape(c, e, path, keys, req) ||
		    !get_int(c, e, path, "seq", 1, SAFE_INT, &v->seq) ||
		    !get_int(c, e, path, "at", 0, SAFE_INT, &v->at) ||
		    !(v->kind = get_str(c, e, path, "kind", 1, 255)) ||
		    !(v->sender = get_str(c, e, path, "sender", 1, 255)) ||
		    !(vis = get_str(c, e, path, "visibility", 1, 8)) ||
		    !get_fixed(c, e, path, "head", v->head, 32)) {
			struct_bad++;
			continue;
		}
		if (strcmp(vis, "all") != 0 && strcmp(vis, "staff") != 0) {
			structure(c, path, "\"visibility\" is neither \"all\" "
				  "nor \"staff\"");
			struct_bad++;
			continue;
		}
		v->staff_only = vis[0] == 's';
		has_p = json_object_get(e, "payload") != NULL;
		has_h = json_object_get(e, "payload_hash") != NULL;
		if (has_p == has_h) {
			structure(c, path, "has to have exactly one of "
				  "\"payload\" and \"payload_hash\"");
			struct_bad++;
			continue;
		}
		if (has_p) {
			if (!get_blob(c, e, path, "payload", 65536, true,
				      &v->payload, &v->plen)) {
				struct_bad++;
				continue;
			}
			v->full = true;
			crypto_generichash(v->ph, 32, v->payload, v->plen, NULL,
					   0);
		} else if (!get_fixed(c, e, path, "payload_hash", v->ph, 32)) {
			struct_bad++;
			continue;
		}
		c->nev++;
	}
	if (c->oom || struct_bad)
		return;
	c->events_ok = true;
	c->r->events = c->nev;
	memcpy(c->r->last_head, c->ev[c->nev - 1].head, 32);
	for (i = 0; i < c->nev; i++)
		c->r->withheld += !c->ev[i].full;

	/* Seq 1, 2, 3, ... in order: a deleted, duplicated or moved event
	 * shows here first. */
	for (i = 0; i < c->nev; i++) {
		int64_t want = (int64_t)i + 1;
		bool later = false;

		if (c->ev[i].seq == want)
			continue;
		order_bad++;
		/* Missing if it is nowhere later; else moved. */
		for (size_t k = i + 1; k < c->nev && !later; k++)
			later = c->ev[k].seq == want;
		if (c->ev[i].seq > want && !later)
			line(c->r, false, "events", "seq %" PRId64 " is missing "
			     "(the event after seq %" PRId64 " is seq %" PRId64
			     "): an event was deleted", want, want - 1,
			     c->ev[i].seq);
		else
			line(c->r, false, "events", "seq %" PRId64 " comes where "
			     "seq %" PRId64 " belongs: events were reordered or "
			     "duplicated", c->ev[i].seq, want);
		break;
	}
	/* Each head from the previous recorded head and the event itself. */
	for (i = 0; i < c->nev; i++) {
		const struct ev *v = &c->ev[i];

		if (hl_e2e_chain_head_h(i ? c->ev[i - 1].head : NULL, c->conv,
					(uint64_t)v->seq, v->at, v->kind,
					v->sender, v->staff_only, v->ph, h) != 0 ||
		    sodium_memcmp(h, v->head, 32) != 0) {
			if (broken++ < 5)
				line(c->r, false, "chain",
				     "chain broken at seq %" PRId64 ": the event "
				     "(its time, kind, sender, visibility or "
				     "payload) does not hash to the head "
				     "recorded for it", v->seq);
		}
	}
	if (broken > 5)
		line(c->r, false, "chain", "and %zu more events do not hash "
		     "to their heads", broken - 5);
	if (!broken && !order_bad)
		line(c->r, true, "chain", "seq 1 to %zu: every event hashes to "
		     "its recorded head from the one before", c->nev);
}

static const struct ev *event_at(const struct ctx *c, int64_t seq)
{
	/* After the order check, events[i] is seq i + 1; find by search so a
	 * misordered bundle still resolves what it can. */
	if (seq >= 1 && (uint64_t)seq <= c->nev && c->ev[seq - 1].seq == seq)
		return &c->ev[seq - 1];
	for (size_t i = 0; i < c->nev; i++)
		if (c->ev[i].seq == seq)
			return &c->ev[i];
	return NULL;
}

static void check_checkpoints(struct ctx *c, const json_t *body)
{
	static const char *const keys[] = {"at", "head", "seq", "sig", NULL};
	const json_t *a = get_array(c, body, "body", "checkpoints",
				    HL_BUNDLE_MAX_EVENTS), *e;
	int64_t last = 0, seq, at, when = 0;
	size_t i, bad = 0, n = 0;
	char t1[32], t2[32], t3[32];

	if (!a)
		return;
	json_array_foreach(a, i, e) {
		unsigned char head[32], sig[64], msg[HL_E2E_CHECKPOINT_MSG];
		const struct ev *v;
		char path[48];
		int64_t t;

		snprintf(path, sizeof(path), "checkpoints[%zu]", i);
		if (!shape(c, e, path, keys, NULL) ||
		    !get_int(c, e, path, "seq", 1, SAFE_INT, &seq) ||
		    !get_int(c, e, path, "at", 0, SAFE_INT, &at) ||
		    !get_fixed(c, e, path, "head", head, 32) ||
		    !get_fixed(c, e, path, "sig", sig, 64)) {
			bad++;
			continue;
		}
		n++;
		if (seq <= last) {
			line(c->r, false, "checkpoints", "checkpoint seq %" PRId64
			     " is out of order (after seq %" PRId64 ")", seq,
			     last);
			bad++;
		}
		last = seq;
		t = secs(at);
		hl_e2e_checkpoint_msg(c->conv, (uint64_t)seq, head, at, msg);
		if (!c->stamp_ok) {
			line(c->r, false, "checkpoints", "checkpoint seq %" PRId64
			     " cannot be checked without a valid STAMP "
			     "certificate", seq);
			bad++;
		} else if (crypto_sign_verify_detached(sig, msg, sizeof(msg),
						       c->stamp.sign_pk) != 0) {
			line(c->r, false, "checkpoints", "checkpoint seq %" PRId64
			     " not signed by the STAMP key", seq);
			bad++;
		} else if (t < c->stamp.not_before || t > c->stamp.not_after) {
			line(c->r, false, "checkpoints", "checkpoint seq %" PRId64
			     " was signed at %s, outside the STAMP certificate's "
			     "validity (%s to %s)", seq, iso(t, t1),
			     iso(c->stamp.not_before, t2),
			     iso(c->stamp.not_after, t3));
			bad++;
		} else if (c->nrev && c->rev_ok) {
			/* A STAMP key revoked before it signed. */
			for (size_t k = 0; k < c->nrev; k++) {
				if (sodium_memcmp(c->rev[k].hash, c->stamp_hash,
						  32) == 0 && c->rev[k].at <= t) {
					when = c->rev[k].at;
					line(c->r, false, "checkpoints",
					     "checkpoint seq %" PRId64 " was "
					     "signed after the STAMP certificate "
					     "was revoked at %s", seq,
					     iso(when, t1));
					bad++;
					break;
				}
			}
		}
		if (!c->events_ok)
			continue;
		v = event_at(c, seq);
		if (!v) {
			line(c->r, false, "checkpoints", "checkpoint seq %" PRId64
			     " names an event the bundle does not have", seq);
			bad++;
		} else if (sodium_memcmp(v->head, head, 32) != 0) {
			line(c->r, false, "checkpoints", "checkpoint seq %" PRId64
			     ": the signed head is not the chain's head at "
			     "seq %" PRId64 " (the events up to it were "
			     "changed)", seq, seq);
			bad++;
		} else if (at < v->at) {
			line(c->r, false, "checkpoints", "checkpoint seq %" PRId64
			     " is dated before the event it covers", seq);
			bad++;
		}
	}
	c->r->checkpoints = n;
	if (n == 0 && !bad) {
		line(c->r, false, "checkpoints", "there are none: the chain is "
		     "not attested by the STAMP key");
		return;
	}
	if (c->events_ok && n && last != (int64_t)c->nev) {
		line(c->r, false, "checkpoints", "the last checkpoint is at seq "
		     "%" PRId64 " but the events run to seq %zu: those after it "
		     "are not covered by a STAMP signature", last, c->nev);
		bad++;
	}
	if (!bad)
		line(c->r, true, "checkpoints", "%zu STAMP-signed checkpoint%s, "
		     "the last at seq %" PRId64 " (the last event), each "
		     "matching the chain", n, n == 1 ? "" : "s", last);
}

/* Every hello and accept in full; every accept verified as the young
 * person's page verified it; certificates.devices = the accepting chains. */
static void check_handshakes(struct ctx *c, const json_t *certs, bool certs_ok)
{
	static const char *const chain_keys[] = {"cert", "issuer", NULL};
	const json_t *devs = certs_ok ? get_array(c, certs, "certificates",
						  "devices", HL_BUNDLE_MAX_LIST)
				      : NULL;
	size_t bad = 0, n = 0, ndev = 0, i;
	bool devs_match = devs != NULL;
	char why[256];

	for (i = 0; i < c->nev; i++) {
		struct ev *v = &c->ev[i];
		const struct ev *hello;
		struct hl_e2e_accept acc;
		struct hl_cert dev;
		char what[64];

		if (strcmp(v->kind, "hello") == 0) {
			if (!v->full || v->plen != 32) {
				line(c->r, false, "handshakes", "hello seq %" PRId64
				     " is withheld or not a 32-byte key: "
				     "handshake events are never withheld",
				     v->seq);
				bad++;
			}
			continue;
		}
		if (strcmp(v->kind, "accept") != 0)
			continue;
		n++;
		if (!v->full ||
		    hl_e2e_accept_parse(v->payload, v->plen, &acc) != 0) {
			line(c->r, false, "handshakes", "accept seq %" PRId64 " is "
			     "withheld or malformed: handshake events are never "
			     "withheld", v->seq);
			bad++;
			continue;
		}
		hello = acc.hello_seq <= (uint64_t)SAFE_INT
				? event_at(c, (int64_t)acc.hello_seq)
				: NULL;
		if (!hello || hello->seq >= v->seq ||
		    strcmp(hello->kind, "hello") != 0 || !hello->full ||
		    hello->plen != 32) {
			line(c->r, false, "handshakes", "accept seq %" PRId64
			     " answers seq %" PRIu64 ", which is not an earlier "
			     "hello in the bundle", v->seq, acc.hello_seq);
			bad++;
			continue;
		}
		snprintf(what, sizeof(what), "the device certificate of accept "
			 "seq %" PRId64, v->seq);
		if (!chain_at(c, what, acc.cert, acc.cert_len, acc.issuer,
			      acc.issuer_len, ROLES_STAFF, secs(v->at), &dev,
			      why, sizeof(why))) {
			line(c->r, false, "handshakes", "%s", why);
			bad++;
			continue;
		}
		if (hl_e2e_accept_verify(v->payload, v->plen, c->conv,
					 hello->payload, c->root, secs(v->at),
					 ROLES_STAFF, NULL, NULL, NULL, NULL,
					 &acc, &dev) != 0) {
			line(c->r, false, "handshakes", "accept seq %" PRId64 ": "
			     "the device's signature over the handshake with "
			     "hello seq %" PRId64 " is invalid", v->seq,
			     hello->seq);
			bad++;
			continue;
		}
		v->hs_ok = true;
		/* The accepting chains, in order of first use, are
		 * certificates.devices. */
		if (devs_match) {
			bool seen = false;

			for (size_t k = 0; k < i && !seen; k++) {
				struct hl_e2e_accept b;

				seen = c->ev[k].hs_ok &&
				       hl_e2e_accept_parse(c->ev[k].payload,
							   c->ev[k].plen,
							   &b) == 0 &&
				       b.cert_len == acc.cert_len &&
				       b.issuer_len == acc.issuer_len &&
				       memcmp(b.cert, acc.cert, b.cert_len) == 0 &&
				       memcmp(b.issuer, acc.issuer,
					      b.issuer_len) == 0;
			}
			if (!seen) {
				const json_t *d = json_array_get(devs, ndev);
				unsigned char cc[HL_CERT_MAX], ci[HL_CERT_MAX];
				size_t ccl, cil;
				char path[48];

				snprintf(path, sizeof(path),
					 "certificates.devices[%zu]", ndev);
				ndev++;
				if (!d || !shape(c, d, path, chain_keys, NULL) ||
				    !get_cert(c, d, path, "cert", cc, &ccl) ||
				    !get_cert(c, d, path, "issuer", ci, &cil) ||
				    ccl != acc.cert_len || cil != acc.issuer_len ||
				    memcmp(cc, acc.cert, ccl) != 0 ||
				    memcmp(ci, acc.issuer, cil) != 0)
					devs_match = false;
			}
		}
	}
	c->r->accepts = n;
	if (devs && (!devs_match || ndev != json_array_size(devs))) {
		line(c->r, false, "devices", "certificates.devices does not list "
		     "exactly the accepting devices' certificate chains, in the "
		     "order they first accepted");
		bad++;
	} else if (devs) {
		line(c->r, true, "devices", "%zu accepting device%s, each chain "
		     "listed", ndev, ndev == 1 ? "" : "s");
	}
	if (!bad)
		line(c->r, true, "handshakes", "%zu handshake%s: each accepting "
		     "device chains to the root (valid, not revoked, when it "
		     "accepted) and signed the transcript with the young "
		     "person's hello key", n, n == 1 ? "" : "s");
}

/* The card id rule (docs/crypto.md). */
static bool card_ok(const char *s, size_t n)
{
	if (n < 1 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

static bool add_message(struct ctx *c, const struct ev *v, const char *text,
			size_t tl, int type, bool ok)
{
	struct hl_bundle_report *r = c->r;
	struct hl_bundle_message *m;
	void *p = realloc(r->messages, (r->nmessages + 1) * sizeof(*m));

	if (!p) {
		c->oom = true;
		return false;
	}
	r->messages = p;
	m = &r->messages[r->nmessages];
	memset(m, 0, sizeof(*m));
	m->text = malloc(tl + 1);
	if (!m->text) {
		c->oom = true;
		return false;
	}
	memcpy(m->text, text, tl);
	m->text[tl] = '\0';
	m->seq = v->seq;
	m->at = v->at;
	snprintf(m->sender, sizeof(m->sender), "%s", v->sender);
	m->type = type;
	m->card = type == 2;
	m->ok = ok;
	r->nmessages++;
	return true;
}

/* The opening types (docs/evidence.md), in body-type order from 1. */
static const char *const opening_types[] = {"text", "card", "consent",
	"consent_answer", "hash_report", NULL};

static int opening_type(const char *s)
{
	for (int i = 0; opening_types[i]; i++)
		if (strcmp(s, opening_types[i]) == 0)
			return i + 1;
	return 0;
}

/* One opening: everything that ties the disclosed text to the chain. */
static bool check_opening(struct ctx *c, const json_t *e, size_t i,
			  int64_t *last)
{
	static const char *const keys[] = {"kf", "mk", "seq", "text", "type",
		NULL};
	unsigned char kf[32], mk[32], kf2[32], c2[32];
	unsigned char *body = NULL, *dec = NULL;
	struct hl_e2e_header h;
	const struct ev *v, *acc, *seen;
	const char *type, *text;
	size_t tl, bl, dl;
	int64_t seq;
	int btype;
	bool card, ok = false;
	char path[48];

	snprintf(path, sizeof(path), "openings[%zu]", i);
	if (!shape(c, e, path, keys, NULL) ||
	    !get_int(c, e, path, "seq", 1, SAFE_INT, &seq) ||
	    !(type = get_str(c, e, path, "type", 4, 14)) ||
	    !(text = get_str(c, e, path, "text", 0, HL_BUNDLE_MAX_BODY - 1)) ||
	    !get_fixed(c, e, path, "kf", kf, 32) ||
	    !get_fixed(c, e, path, "mk", mk, 32))
		return false;
	tl = strlen(text);
	btype = opening_type(type);
	card = btype == 2;
	if (!btype) {
		structure(c, path, "\"type\" is not \"text\", \"card\", "
			  "\"consent\", \"consent_answer\" or \"hash_report\"");
		return false;
	}
	if (seq <= *last) {
		line(c->r, false, "messages", "the opening of seq %" PRId64
		     " is out of order or repeated", seq);
		return false;
	}
	*last = seq;
	v = c->events_ok ? event_at(c, seq) : NULL;
	if (!v) {
		line(c->r, false, "messages", "message seq %" PRId64 ": no such "
		     "event in the bundle", seq);
		return false;
	}
	if (strcmp(v->kind, "msg") != 0 || !v->full) {
		line(c->r, false, "messages", "message seq %" PRId64 ": the event "
		     "is %s, not a message with its ciphertext", seq,
		     v->full ? v->kind : "withheld");
		goto out;
	}
	if (card && !card_ok(text, tl)) {
		line(c->r, false, "messages", "message seq %" PRId64 ": a card "
		     "id must be 1-32 of a-z 0-9 _", seq);
		goto out;
	}
	if (hl_e2e_header_parse(v->payload, v->plen, &h) != 0) {
		line(c->r, false, "messages", "message seq %" PRId64 ": the "
		     "payload is not an envelope", seq);
		goto out;
	}
	if (h.conv != c->conv) {
		line(c->r, false, "messages", "message seq %" PRId64 ": the "
		     "envelope belongs to conversation %" PRIu64, seq, h.conv);
		goto out;
	}
	/* A consent question goes from staff to the young person (dir 2),
	 * its answer and a hash report the other way (dir 1). */
	if ((btype == 3 && h.dir != 2) || (btype >= 4 && h.dir != 1)) {
		line(c->r, false, "messages", "message seq %" PRId64 ": a %s "
		     "in the wrong direction", seq, type);
		goto out;
	}
	if ((h.dir == HL_E2E_TO_STAFF) != (strcmp(v->sender, "contact") == 0) ||
	    (h.dir == HL_E2E_TO_CONTACT &&
	     strncmp(v->sender, "staff:", 6) != 0)) {
		line(c->r, false, "messages", "message seq %" PRId64 ": its "
		     "direction does not match its sender %s", seq, v->sender);
		goto out;
	}
	acc = h.epoch <= (uint64_t)SAFE_INT ? event_at(c, (int64_t)h.epoch)
					    : NULL;
	if (!acc || acc->seq >= seq || strcmp(acc->kind, "accept") != 0 ||
	    !acc->hs_ok) {
		line(c->r, false, "messages", "message seq %" PRId64 ": its epoch "
		     "%" PRIu64 " is not a verified handshake earlier in the "
		     "bundle", seq, h.epoch);
		goto out;
	}
	if (h.seen_seq >= (uint64_t)seq) {
		line(c->r, false, "messages", "message seq %" PRId64 " says its "
		     "sender had seen seq %" PRIu64 ", which comes after it",
		     seq, h.seen_seq);
		goto out;
	}
	seen = h.seen_seq ? event_at(c, (int64_t)h.seen_seq) : NULL;
	if (h.seen_seq && (!seen || sodium_memcmp(seen->head, h.seen_head,
						  32) != 0)) {
		line(c->r, false, "messages", "message seq %" PRId64 ": its "
		     "sender had seen another history at seq %" PRIu64, seq,
		     h.seen_seq);
		goto out;
	}
	bl = 1 + tl;
	body = malloc(bl);
	dec = malloc(HL_BUNDLE_MAX_BODY + 1);
	if (!body || !dec) {
		c->oom = true;
		goto out;
	}
	body[0] = (unsigned char)btype;
	memcpy(body + 1, text, tl);
	hl_e2e_commit(h.conv, h.dir, h.epoch, h.n, body, bl, kf, c2);
	if (sodium_memcmp(c2, h.commitment, 32) != 0) {
		line(c->r, false, "messages", "message seq %" PRId64 ": the "
		     "disclosed body and franking key do not match the "
		     "commitment in the ciphertext's header (the text was "
		     "changed)", seq);
		goto out;
	}
	if (hl_e2e_open(v->payload, v->plen, mk, dec, HL_BUNDLE_MAX_BODY + 1,
			&dl, kf2) != 0) {
		line(c->r, false, "messages", "message seq %" PRId64 ": "
		     "ciphertext does not decrypt with the disclosed key", seq);
		goto out;
	}
	if (dl != bl || sodium_memcmp(dec, body, bl) != 0 ||
	    sodium_memcmp(kf, kf2, 32) != 0) {
		line(c->r, false, "messages", "message seq %" PRId64 ": the "
		     "ciphertext decrypts to another body or franking key than "
		     "the ones disclosed", seq);
		goto out;
	}
	ok = true;
out:
	if (dec)
		sodium_memzero(dec, HL_BUNDLE_MAX_BODY + 1);
	free(dec);
	free(body);
	sodium_memzero(mk, sizeof(mk));
	add_message(c, v, text, tl, btype, ok);
	return ok;
}

static void check_openings(struct ctx *c, const json_t *body)
{
	const json_t *a = get_array(c, body, "body", "openings",
				    HL_BUNDLE_MAX_EVENTS), *e;
	int64_t last = 0;
	size_t i, good = 0;

	if (!a)
		return;
	json_array_foreach(a, i, e) {
		if (check_opening(c, e, i, &last))
			good++;
	}
	if (good == json_array_size(a))
		line(c->r, true, "messages", "%zu disclosed message%s: each "
		     "ciphertext is in the chain, decrypts with the disclosed "
		     "message key, and its commitment matches the disclosed "
		     "text and franking key", good, good == 1 ? "" : "s");
}

static bool action_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
		      s[i] == '_'))
			return false;
	return true;
}

static void check_audit(struct ctx *c, const json_t *body)
{
	static const char *const keys[] = {"action", "actor", "at", "detail",
		"entry_hash", "prev_hash", "seq", "target", NULL};
	const json_t *a = get_array(c, body, "body", "audit",
				    HL_BUNDLE_MAX_LIST), *e;
	unsigned char prev_entry[32], h[32];
	int64_t last = 0;
	size_t i, bad = 0, linked = 0;

	if (!a)
		return;
	c->r->audit_refs = calloc(json_array_size(a) + 1,
				  sizeof(*c->r->audit_refs));
	if (!c->r->audit_refs) {
		c->oom = true;
		return;
	}
	json_array_foreach(a, i, e) {
		unsigned char prev[32], entry[32];
		const char *action, *detail;
		int64_t seq, at, actor, target;
		char path[48];

		snprintf(path, sizeof(path), "audit[%zu]", i);
		if (!shape(c, e, path, keys, NULL) ||
		    !get_int(c, e, path, "seq", 1, SAFE_INT, &seq) ||
		    !get_int(c, e, path, "at", 0, SAFE_INT, &at) ||
		    !get_int(c, e, path, "actor", 0, SAFE_INT, &actor) ||
		    !get_int(c, e, path, "target", 0, SAFE_INT, &target) ||
		    !(action = get_str(c, e, path, "action", 1, 64)) ||
		    !(detail = get_str(c, e, path, "detail", 0, 1024)) ||
		    !get_fixed(c, e, path, "prev_hash", prev, 32) ||
		    !get_fixed(c, e, path, "entry_hash", entry, 32)) {
			bad++;
			continue;
		}
		if (!action_ok(action)) {
			structure(c, path, "\"action\" is not [a-z0-9._]");
			bad++;
			continue;
		}
		if (seq <= last) {
			line(c->r, false, "audit", "audit seq %" PRId64 " is out "
			     "of order or repeated", seq);
			bad++;
		}
		hl_audit_hash(prev, seq, at, actor, action, target, detail, h);
		if (sodium_memcmp(h, entry, 32) != 0) {
			line(c->r, false, "audit", "audit seq %" PRId64 ": "
			     "entry_hash does not match the entry (edited)", seq);
			bad++;
		}
		if (last && seq == last + 1) {
			linked++;
			if (sodium_memcmp(prev, prev_entry, 32) != 0) {
				line(c->r, false, "audit", "audit seq %" PRId64
				     ": prev_hash is not the entry_hash of seq %"
				     PRId64, seq, last);
				bad++;
			}
		}
		memcpy(prev_entry, entry, 32);
		last = seq;
		c->r->audit_refs[i].seq = seq;
		memcpy(c->r->audit_refs[i].entry_hash, entry, 32);
	}
	c->r->audit = json_array_size(a);
	if (!bad)
		line(c->r, true, "audit", "%zu audit entr%s: each entry_hash "
		     "recomputes from its fields and prev_hash (%zu linked to "
		     "the one before)", json_array_size(a),
		     json_array_size(a) == 1 ? "y" : "ies", linked);
}

/* ---- the whole --------------------------------------------------------------- */

/* Whether nesting stays within the limit, scanning the raw bytes (before
 * the parser recurses). */
static bool depth_ok(const unsigned char *p, size_t n)
{
	int d = 0;
	bool str = false, esc = false;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = p[i];

		if (str) {
			if (esc)
				esc = false;
			else if (ch == '\\')
				esc = true;
			else if (ch == '"')
				str = false;
			continue;
		}
		if (ch == '"')
			str = true;
		else if ((ch == '[' || ch == '{') && ++d > HL_BUNDLE_MAX_DEPTH)
			return false;
		else if (ch == ']' || ch == '}')
			d--;
	}
	return true;
}

/* Reads and checks the file and the body's fixed fields; NULL when it cannot
 * be read as a bundle at all. */
static json_t *read_file(struct ctx *c, const unsigned char *data, size_t len,
			 const unsigned char *root_pk)
{
	static const char *const top_keys[] = {"body", "digest", "signatures",
		NULL};
	static const char *const body_keys[] = {"audit", "certificates",
		"checkpoints", "conversation", "created_at", "events", "format",
		"openings", "referral", "revocations", "root_pk", NULL};
	struct hl_bundle_report *r = c->r;
	json_error_t err;
	json_t *top;
	const json_t *body;
	char *canon_top = NULL, *canon_body = NULL, why[160] = "";
	size_t cl, bl, at;
	unsigned char stated[32], bundle_root[32];
	const char *fmt;
	int64_t conv;
	char hex[65];

	if (len > HL_BUNDLE_MAX_BYTES) {
		line(r, false, "file", "is %zu bytes, over the limit of %u MiB",
		     len, HL_BUNDLE_MAX_BYTES >> 20);
		return NULL;
	}
	if (!depth_ok(data, len)) {
		line(r, false, "file", "nests deeper than %d levels",
		     HL_BUNDLE_MAX_DEPTH);
		return NULL;
	}
	top = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &err);
	if (!top) {
		line(r, false, "file", "is not valid JSON (line %d, column %d): "
		     "%.120s", err.line, err.column, err.text);
		return NULL;
	}
	if (!shape(c, top, "the file", top_keys, NULL))
		goto fail;
	switch (hl_bundle_canonical(top, &canon_top, &cl, why, sizeof(why))) {
	case 0:
		break;
	case HL_ENOMEM:
		c->oom = true;
		goto fail;
	default:
		line(r, false, "file", "is outside canonical JSON: %s", why);
		goto fail;
	}
	if (cl + 1 != len || memcmp(canon_top, data, cl) != 0 ||
	    data[cl] != '\n') {
		for (at = 0; at < cl && at < len && canon_top[at] == data[at];
		     at++)
			;
		line(r, false, "file", "is not in canonical form (first "
		     "difference at byte %zu): it was edited, or re-saved by "
		     "another program", at);
	} else {
		line(r, true, "file", "canonical JSON, %zu bytes", len);
	}
	free(canon_top);
	canon_top = NULL;

	body = json_object_get(top, "body");
	if (!shape(c, body, "body", body_keys, NULL))
		goto fail;
	if (hl_bundle_canonical(body, &canon_body, &bl, why, sizeof(why)) != 0) {
		c->oom = true;
		goto fail;
	}
	hl_bundle_digest(canon_body, bl, r->digest);
	free(canon_body);
	fmt = get_str(c, body, "body", "format", 1, 64);
	if (!fmt || strcmp(fmt, HL_BUNDLE_FORMAT) != 0) {
		line(r, false, "format", "this verifier reads %s bundles only",
		     HL_BUNDLE_FORMAT);
		goto fail;
	}
	if (!get_int(c, body, "body", "conversation", 1, SAFE_INT, &conv) ||
	    !get_int(c, body, "body", "created_at", 0, SAFE_INT,
		     &c->created_at) ||
	    !get_fixed(c, body, "body", "root_pk", bundle_root, 32))
		goto fail;
	c->conv = (uint64_t)conv;
	r->conversation = conv;
	r->created_at = c->created_at;
	r->parsed = true;

	if (!get_fixed(c, top, "the file", "digest", stated, 32))
		line(r, false, "digest", "the stated digest is unreadable");
	else if (sodium_memcmp(stated, r->digest, 32) != 0)
		line(r, false, "digest", "bundle digest mismatch: the body "
		     "hashes to %s, not to the digest stated",
		     sodium_bin2hex(hex, sizeof(hex), r->digest, 32));
	else
		line(r, true, "digest", "BLAKE2b-256 of the body: %s",
		     sodium_bin2hex(hex, sizeof(hex), r->digest, 32));

	if (root_pk) {
		r->root_given = true;
		memcpy(c->root, root_pk, 32);
		if (sodium_memcmp(root_pk, bundle_root, 32) != 0)
			line(r, false, "root key", "the bundle names another "
			     "root key than the one given: it was not made "
			     "under this organisation's root");
		else
			line(r, true, "root key", "the bundle's root key is the "
			     "one given");
	} else {
		memcpy(c->root, bundle_root, 32);
		line(r, true, "root key", "checked against the root key the "
		     "bundle carries (no --root given)");
	}
	memcpy(r->root_pk, c->root, 32);
	return top;
fail:
	free(canon_top);
	json_decref(top);
	return NULL;
}

int hl_bundle_verify(const void *data, size_t len,
		     const unsigned char *root_pk, struct hl_bundle_report *r)
{
	static const char *const cert_keys[] = {"devices", "evidence", "signer",
		"stamp", NULL};
	struct ctx c;
	json_t *top;
	const json_t *body, *certs;
	bool certs_ok, oom;

	memset(r, 0, sizeof(*r));
	memset(&c, 0, sizeof(c));
	c.r = r;
	if (!data)
		len = 0;
	top = read_file(&c, data ? data : "", len, root_pk);
	if (!top)
		goto out;
	body = json_object_get(top, "body");
	certs = json_object_get(body, "certificates");
	certs_ok = shape(&c, certs, "certificates", cert_keys, NULL);

	check_revocations(&c, body);
	check_signatures(&c, top, certs, certs_ok);
	if (certs_ok)
		check_stamp(&c, certs);
	check_events(&c, body);
	check_checkpoints(&c, body);
	if (c.events_ok)
		check_handshakes(&c, certs, certs_ok);
	check_openings(&c, body);
	check_audit(&c, body);
	if (!json_is_object(json_object_get(body, "referral")))
		structure(&c, "body", "\"referral\" is not an object");
	json_decref(top);
out:
	free_events(&c);
	free(c.rev);
	oom = c.oom;
	sodium_memzero(&c, sizeof(c));
	if (oom)
		return HL_ENOMEM;
	r->verified = r->parsed && r->failures == 0;
	return r->verified ? 0 : HL_EINVAL;
}

/* ---- printing ------------------------------------------------------------------ */

/* Writes s with control characters (C0, DEL, C1) and the bidirectional
 * overrides escaped, so what is shown is what is in the bundle. */
static void put_escaped(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned cp = 0;
		int n = 1;

		if (p[0] >= 0xc2 && p[0] <= 0xdf && (p[1] & 0xc0) == 0x80) {
			cp = ((p[0] & 0x1fu) << 6) | (p[1] & 0x3fu);
			n = 2;
		} else if (p[0] >= 0xe0 && p[0] <= 0xef &&
			   (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80) {
			cp = ((p[0] & 0x0fu) << 12) | ((p[1] & 0x3fu) << 6) |
			     (p[2] & 0x3fu);
			n = 3;
		} else {
			cp = p[0];
		}
		if (n == 1 && (cp < 0x20 || cp == 0x7f)) {
			if (cp == '\n')
				fputs("\\n", out);
			else if (cp == '\t')
				fputs("\\t", out);
			else if (cp == '\r')
				fputs("\\r", out);
			else
				fprintf(out, "\\x%02x", cp);
		} else if (n == 1 && cp == '\\') {
			fputs("\\\\", out);
		} else if ((cp >= 0x80 && cp <= 0x9f && n == 2) ||
			   cp == 0x200e || cp == 0x200f ||
			   (cp >= 0x202a && cp <= 0x202e) ||
			   (cp >= 0x2066 && cp <= 0x2069)) {
			fprintf(out, "\\u{%04x}", cp);
		} else {
			fwrite(p, 1, (size_t)n, out);
		}
		p += n;
	}
}

void hl_bundle_report_print(const struct hl_bundle_report *r, FILE *out)
{
	char t[32], hex[65], b64[sodium_base64_ENCODED_LEN(32, B64)];

	fprintf(out, "Helpline evidence bundle (%s)\n", HL_BUNDLE_FORMAT);
	if (r->parsed) {
		fprintf(out, "  conversation:  %" PRId64 "\n", r->conversation);
		fprintf(out, "  made at:       %s (certificates are checked as "
			"of this time and of the times of the events they "
			"signed; this computer's clock is not used)\n",
			iso(secs(r->created_at), t));
		if (r->events)
			fprintf(out, "  events:        seq 1 to %zu: %zu with "
				"payload, %zu withheld (hash only)\n",
				r->events, r->events - r->withheld,
				r->withheld);
		fprintf(out, "  handshakes %zu, checkpoints %zu, audit entries "
			"%zu, revocations %zu, disclosed messages %zu\n",
			r->accepts, r->checkpoints, r->audit, r->revocations,
			r->nmessages);
		fprintf(out, "  digest:        %s\n",
			sodium_bin2hex(hex, sizeof(hex), r->digest, 32));
		sodium_bin2hex(hex, sizeof(hex), r->root_pk, 32);
		sodium_bin2base64(b64, sizeof(b64), r->root_pk, 32, B64);
		fprintf(out, "  root key:      %s (hex %s)\n", b64, hex);
		if (!r->root_given)
			fprintf(out, "  NOTE: checked against the root key carried "
				"in the bundle itself, which proves only that the "
				"bundle is consistent. A court must compare this "
				"key with the one the helpline publishes: %s\n",
				b64);
	}
	fprintf(out, "Checks:\n");
	for (size_t i = 0; i < r->nlines; i++) {
		fprintf(out, "  %-4s  %s: ", r->lines[i].ok ? "ok" : "FAIL",
			r->lines[i].check);
		put_escaped(out, r->lines[i].text);
		fputc('\n', out);
	}
	if (r->omitted)
		fprintf(out, "  FAIL  (%zu more failures not listed)\n",
			r->omitted);
	if (r->nmessages) {
		fprintf(out, "Disclosed messages:\n");
		for (size_t i = 0; i < r->nmessages; i++) {
			const struct hl_bundle_message *m = &r->messages[i];

			fprintf(out, "  seq %" PRId64 "  %s  ", m->seq,
				iso(secs(m->at), t));
			put_escaped(out, m->sender);
			fprintf(out, "  %s%s: \"", m->ok ? "" : "NOT VERIFIED ",
				m->type == 2 ? "safety card" :
				m->type == 3 ? "consent question" :
				m->type == 4 ? "consent answer" :
				m->type == 5 ? "hash report" : "text");
			put_escaped(out, m->text);
			fputs("\"\n", out);
		}
	}
	if (r->verified)
		fprintf(out, "Verdict: VERIFIED: every check passed.\n");
	else
		fprintf(out, "Verdict: NOT VERIFIED: %zu check%s failed.\n",
			r->failures ? r->failures : 1,
			r->failures == 1 ? "" : "s");
}
