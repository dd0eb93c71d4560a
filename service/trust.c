/* trust.c: organisation keys, staff devices, revocations and key wraps (see
 * trust.h). Every input is length-checked before any libsodium call; every
 * certificate and signature is verified before it is stored; every change
 * is audited (ids only). Statements are prepared per job, as in inbox.c:
 * these are rare operations. */
#include "trust.h"
#include "audit.h"
#include "auth.h"
#include "contact.h"
#include "e2e.h"
#include "escalation.h"
#include "common.h"
#include "keys.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "staff.h"
#include "store.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define WRAP_MAX 65536
#define LIST_MAX 1000      /* devices in one page of device.list */
#define REVOCATION_BYTES 640 /* at most, one revocation as sent */
#define DEVICE_BYTES 1200  /* at most, one device as sent (certificates of
			    * up to 290 bytes, in base64url) */

enum tjob_kind {
	TJ_LOAD, TJ_REGISTER, TJ_LIST, TJ_CERTIFY, TJ_REVOKE, TJ_REVOCATIONS,
	TJ_WRAP, TJ_WRAPS,
};

struct trust_job {
	struct hl_store_job job;
	enum tjob_kind kind;
	struct hl_trust *t;
	struct hl_session *s;          /* referenced, or NULL (TJ_LOAD) */
	char id[HL_PROTO_ID_MAX + 1];
	int64_t now, staff_id, device, filter_staff, conv_id;
	int64_t after;                 /* lists (TJ_LIST, TJ_REVOCATIONS, TJ_WRAPS): the page's start */
	size_t budget, used;           /* lists: the page's bytes, and so far */
	bool more;                     /* lists: more are left */
	int64_t next;                  /* lists: after, next page */
	int64_t to_device, from_device;
	unsigned char of[2][32];       /* TJ_REVOCATIONS: only of these (nof) */
	int nof;
	unsigned roles;                /* the actor's HL_STAFF_* bits */
	bool contact;                  /* TJ_WRAP(S) by the young person */
	unsigned char sign_pk[32], box_pk[32], sig[64];
	unsigned char cert[HL_CERT_MAX], issuer[HL_CERT_MAX];
	size_t cert_len, issuer_len;
	unsigned char revocation[HL_E2E_REVOCATION];
	unsigned char *blob;           /* TJ_WRAP: sealed, malloc'd */
	size_t blob_len;
	const char *why;               /* a refusal's reason (static text) */
	enum hl_err_code refusal;      /* set with why */
	json_t *out;                   /* lists */
	/* TJ_WRAP by staff: the accounts whose devices may receive it */
	int64_t *allowed;
	size_t nallowed;
	int64_t esc_id;                /* TJ_WRAP: for this escalation; 0 = none */
	bool esc_read;                 /* TJ_WRAPS: not a party; by escalation */
	bool fresh;                    /* TJ_WRAPS esc_read: TOTP re-entered */
	/* TJ_LOAD */
	unsigned char sealed[crypto_sign_SECRETKEYBYTES + 64];
	size_t sealed_len;
	unsigned char ev_sealed[crypto_sign_SECRETKEYBYTES + 64]; /* TJ_LOAD: EVIDENCE */
	size_t ev_sealed_len;
};

/* ---- helpers ---------------------------------------------------------------- */

void hl_trust_device_subject(const unsigned char sign_pk[32], char out[37])
{
	unsigned char h[32];

	crypto_generichash(h, sizeof(h), sign_pk, 32, NULL, 0);
	memcpy(out, "dev:", 4);
	sodium_bin2hex(out + 4, 33, h, 16);
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	return sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK ? 0
								       : HL_ESTORE;
}

static int refuse(struct trust_job *j, enum hl_err_code code, const char *why)
{
	j->refusal = code;
	j->why = why;
	return HL_EINVAL;
}

static int audit(sqlite3_stmt *const *stmts, const struct trust_job *j,
		 const char *action, int64_t target, int64_t device)
{
	char detail[48];
	struct hl_audit_entry e = {
		.at_ms = j->now, .actor = j->staff_id, .action = action,
		.target = target, .detail = detail,
	};

	snprintf(detail, sizeof(detail), "{\"device\":%lld}", (long long)device);
	return hl_audit_append(stmts, &e, NULL) == 0 ? 0 : HL_ESTORE;
}

bool hl_trust_revoked(const unsigned char hash[32], void *stmts)
{
	sqlite3_stmt *s = ((sqlite3_stmt *const *)stmts)[HL_STMT_REVOKED];
	int rc;

	sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc != SQLITE_DONE; /* a failed lookup counts as revoked */
}

int hl_trust_live_device(sqlite3_stmt *const *stmts, const unsigned char *cert,
			 size_t len, int64_t *device, int64_t *owner)
{
	sqlite3_stmt *s = stmts[HL_STMT_DEVICE_BY_CERT];
	unsigned char h[32];
	int rc;

	hl_e2e_cert_hash(cert, len, h);
	sqlite3_bind_blob(s, 1, h, 32, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*device = sqlite3_column_int64(s, 0);
		*owner = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? HL_ENOTFOUND
							: HL_ESTORE;
}

static json_t *b64(const void *p, size_t n)
{
	json_t *o = p ? hl_proto_b64_json(p, n) : NULL;

	return o ? o : json_null();
}

static void device_json(sqlite3_stmt *st, json_t *arr)
{
	json_t *o = json_object();

	/* id, staff_id, sign_pk, box_pk, created_at, cert, issuer,
	 * certified_at, revoked_at */
	json_object_set_new(o, "device", json_integer(sqlite3_column_int64(st, 0)));
	json_object_set_new(o, "staff_id", json_integer(sqlite3_column_int64(st, 1)));
	json_object_set_new(o, "sign_pk", b64(sqlite3_column_blob(st, 2), 32));
	json_object_set_new(o, "box_pk", b64(sqlite3_column_blob(st, 3), 32));
	json_object_set_new(o, "created_at", json_integer(sqlite3_column_int64(st, 4)));
	json_object_set_new(o, "cert", b64(sqlite3_column_blob(st, 5),
					   (size_t)sqlite3_column_bytes(st, 5)));
	json_object_set_new(o, "issuer", b64(sqlite3_column_blob(st, 6),
					     (size_t)sqlite3_column_bytes(st, 6)));
	json_object_set_new(o, "certified_at",
			    sqlite3_column_type(st, 7) == SQLITE_NULL
				    ? json_null()
				    : json_integer(sqlite3_column_int64(st, 7)));
	json_object_set_new(o, "revoked", json_boolean(
		sqlite3_column_type(st, 8) != SQLITE_NULL));
	json_array_append_new(arr, o);
}

/* ---- jobs on the writer ------------------------------------------------------ */

static int load(sqlite3 *db, struct trust_job *j)
{
	struct hl_trust *t = j->t;
	sqlite3_stmt *st = NULL;
	int rc;

	if (prepare(db, "SELECT name, value FROM org_key WHERE name IN "
			"('root_pk', 'stamp_sk_sealed', 'stamp_cert', "
			"'evidence_sk_sealed', 'evidence_cert')", &st) != 0)
		return HL_ESTORE;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const void *v = sqlite3_column_blob(st, 1);
		size_t n = (size_t)sqlite3_column_bytes(st, 1);

		if (!name || !v)
			continue;
		if (strcmp(name, "root_pk") == 0 && n == 32) {
			memcpy(t->root_pk, v, 32);
			t->has_root = true;
		} else if (strcmp(name, "stamp_sk_sealed") == 0 &&
			   n <= sizeof(j->sealed)) {
			memcpy(j->sealed, v, n);
			j->sealed_len = n;
		} else if (strcmp(name, "stamp_cert") == 0 && n <= HL_CERT_MAX) {
			memcpy(t->stamp_cert, v, n);
			t->stamp_cert_len = n;
		} else if (strcmp(name, "evidence_sk_sealed") == 0 &&
			   n <= sizeof(j->ev_sealed)) {
			memcpy(j->ev_sealed, v, n);
			j->ev_sealed_len = n;
		} else if (strcmp(name, "evidence_cert") == 0 &&
			   n <= HL_CERT_MAX) {
			memcpy(t->evidence_cert, v, n);
			t->evidence_cert_len = n;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : HL_ESTORE;
}

/* The issuer j names (device.certify / device.revoke): an admin device
 * certificate under the root, a live, unrevoked device of the actor. 0 with
 * *admin, a refusal (HL_EINVAL with j->why), or a store error. */
static int own_admin_device(sqlite3_stmt *const *stmts,
			    struct trust_job *j, struct hl_cert *admin)
{
	int64_t dev, owner;
	unsigned char h[32];
	int rc;

	if (!j->t->has_root)
		return refuse(j, HL_ERR_BAD_STATE,
			      "the service has no organisation root key");
	if (hl_cert_verify(j->issuer, j->issuer_len, j->t->root_pk, j->now / 1000,
			   HL_CERT_ADMIN_DEVICE, admin) != 0)
		return refuse(j, HL_ERR_BAD_FIELD,
			      "issuer is not an admin device certificate "
			      "signed by the organisation root");
	rc = hl_trust_live_device(stmts, j->issuer, j->issuer_len, &dev, &owner);
	if (rc == HL_ENOTFOUND || (rc == 0 && owner != j->staff_id))
		return refuse(j, HL_ERR_FORBIDDEN,
			      "issuer is not one of your live devices");
	if (rc != 0)
		return rc;
	hl_e2e_cert_hash(j->issuer, j->issuer_len, h);
	if (hl_trust_revoked(h, (void *)stmts))
		return refuse(j, HL_ERR_FORBIDDEN, "issuer is revoked");
	return 0;
}

/* device.certify: the issuer must be a live admin device of the actor that
 * chains to the root; the certificate must bind the registered keys under
 * the device's pseudonym with a role its owner holds. */
static int certify_device(sqlite3 *db, sqlite3_stmt *const *stmts,
		   struct trust_job *j)
{
	struct hl_cert admin, dev;
	int64_t owner = 0;
	unsigned owner_roles = 0;
	char subject[37];
	sqlite3_stmt *st = NULL;
	unsigned char h[32];
	int rc, role;

	rc = own_admin_device(stmts, j, &admin);
	if (rc != 0)
		return rc;
	if (prepare(db, "SELECT d.staff_id, d.sign_pk, d.box_pk, s.roles FROM "
			"device d JOIN staff s ON s.id = d.staff_id WHERE "
			"d.id=?1 AND d.cert IS NULL AND d.revoked_at IS NULL",
		    &st) != 0)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->device);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 1) == 32 &&
	    sqlite3_column_bytes(st, 2) == 32) {
		owner = sqlite3_column_int64(st, 0);
		memcpy(j->sign_pk, sqlite3_column_blob(st, 1), 32);
		memcpy(j->box_pk, sqlite3_column_blob(st, 2), 32);
		owner_roles = (unsigned)sqlite3_column_int64(st, 3);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return HL_ESTORE;
	if (!owner)
		return refuse(j, HL_ERR_NOT_FOUND,
			      "no such device waiting for a certificate");
	role = (owner_roles & HL_STAFF_SUPERVISOR) ? HL_CERT_SUPERVISOR_DEVICE
						   : HL_CERT_COUNSELLOR_DEVICE;
	if (!(owner_roles & (HL_STAFF_SUPERVISOR | HL_STAFF_COUNSELLOR)))
		return refuse(j, HL_ERR_BAD_STATE,
			      "the device's owner is neither counsellor nor "
			      "supervisor");
	hl_trust_device_subject(j->sign_pk, subject);
	if (hl_cert_verify(j->cert, j->cert_len, admin.sign_pk, j->now / 1000,
			   role, &dev) != 0 ||
	    strcmp(dev.subject, subject) != 0 ||
	    sodium_memcmp(dev.sign_pk, j->sign_pk, 32) != 0 ||
	    sodium_memcmp(dev.box_pk, j->box_pk, 32) != 0)
		return refuse(j, HL_ERR_BAD_FIELD,
			      "cert must bind this device's keys and pseudonym, "
			      "with its owner's role, signed by the issuer, "
			      "valid now");
	hl_e2e_cert_hash(j->cert, j->cert_len, h);
	if (prepare(db, "UPDATE device SET cert=?2, issuer=?3, cert_hash=?4, "
			"certified_at=?5, certified_by=?6 WHERE id=?1 AND "
			"cert IS NULL", &st) != 0)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->device);
	sqlite3_bind_blob(st, 2, j->cert, (int)j->cert_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, j->issuer, (int)j->issuer_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, h, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, j->now);
	sqlite3_bind_int64(st, 6, j->staff_id);
	rc = hl_store_step_done(st);
	sqlite3_finalize(st);
	if (rc != 0)
		return rc;
	j->filter_staff = owner;
	return audit(stmts, j, "device.certify", owner, j->device);
}

/* device.revoke: a revocation of the device's certificate signed by a live
 * admin device of the actor. */
static int revoke_device(sqlite3 *db, sqlite3_stmt *const *stmts,
		  struct trust_job *j)
{
	struct hl_cert admin;
	unsigned char want[32], got[32];
	int64_t at, owner = 0;
	sqlite3_stmt *st = NULL;
	int rc;

	rc = own_admin_device(stmts, j, &admin);
	if (rc != 0)
		return rc;
	if (prepare(db, "SELECT staff_id, cert_hash FROM device WHERE id=?1 AND "
			"cert_hash IS NOT NULL", &st) != 0)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->device);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 1) == 32) {
		owner = sqlite3_column_int64(st, 0);
		memcpy(want, sqlite3_column_blob(st, 1), 32);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return HL_ESTORE;
	if (!owner)
		return refuse(j, HL_ERR_NOT_FOUND, "no such certified device");
	if (hl_e2e_revocation_verify(j->revocation, sizeof(j->revocation),
				     admin.sign_pk, got, &at) != 0 ||
	    sodium_memcmp(got, want, 32) != 0)
		return refuse(j, HL_ERR_BAD_FIELD,
			      "revocation must name this device's certificate "
			      "and be signed by the issuer");
	if (prepare(db, "INSERT OR IGNORE INTO revocation(cert_hash, statement, "
			"signer, created_at) VALUES(?1, ?2, ?3, ?4)", &st) != 0)
		return HL_ESTORE;
	sqlite3_bind_blob(st, 1, want, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, j->revocation, sizeof(j->revocation),
			  SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, j->issuer, (int)j->issuer_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, j->now);
	rc = hl_store_step_done(st);
	sqlite3_finalize(st);
	if (rc == 0 && prepare(db, "UPDATE device SET revoked_at=coalesce("
				   "revoked_at, ?2) WHERE id=?1", &st) == 0) {
		sqlite3_bind_int64(st, 1, j->device);
		sqlite3_bind_int64(st, 2, j->now);
		rc = hl_store_step_done(st);
		sqlite3_finalize(st);
	}
	if (rc != 0)
		return rc;
	return audit(stmts, j, "device.revoke", owner, j->device);
}

/* key.wrap from staff: to a live device; from one of the sender's. */
static int store_wrap(sqlite3 *db, sqlite3_stmt *const *stmts, struct trust_job *j)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (!j->contact) {
		if (prepare(db, "SELECT (SELECT count(*) FROM device WHERE id=?1 "
				"AND cert IS NOT NULL AND revoked_at IS NULL), "
				"(SELECT count(*) FROM device WHERE id=?2 AND "
				"staff_id=?3 AND cert IS NOT NULL AND revoked_at "
				"IS NULL)", &st) != 0)
			return HL_ESTORE;
		sqlite3_bind_int64(st, 1, j->to_device);
		sqlite3_bind_int64(st, 2, j->from_device);
		sqlite3_bind_int64(st, 3, j->staff_id);
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW) {
			sqlite3_finalize(st);
			return HL_ESTORE;
		}
		rc = sqlite3_column_int64(st, 0) == 1 &&
		     sqlite3_column_int64(st, 1) == 1;
		sqlite3_finalize(st);
		if (!rc)
			return refuse(j, HL_ERR_BAD_FIELD,
				      "to_device must be a live device and "
				      "from_device one of your live devices");
		if (prepare(db, "SELECT staff_id FROM device WHERE id=?1", &st) != 0)
			return HL_ESTORE;
		sqlite3_bind_int64(st, 1, j->to_device);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			int64_t owner = sqlite3_column_int64(st, 0);

			rc = 0;
			for (size_t i = 0; i < j->nallowed && !rc; i++)
				rc = j->allowed[i] == owner;
		} else {
			rc = -1;
		}
		sqlite3_finalize(st);
		if (rc < 0)
			return HL_ESTORE;
		if (!rc)
			return refuse(j, HL_ERR_FORBIDDEN, j->esc_id
				      ? "an escalation's keys go only to the devices "
					"of the supervisor who claimed it"
				      : "keys go only to a party of the chat or to "
					"someone who can take it by transfer");
	}
	if (prepare(db, "INSERT INTO key_wrap(conversation_id, to_device, "
			"from_device, created_at, sealed, signature) VALUES(?1, "
			"?2, ?3, ?4, ?5, ?6)", &st) != 0)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->conv_id);
	if (j->contact) {
		sqlite3_bind_null(st, 2);
		sqlite3_bind_null(st, 3);
	} else {
		sqlite3_bind_int64(st, 2, j->to_device);
		sqlite3_bind_int64(st, 3, j->from_device);
	}
	sqlite3_bind_int64(st, 4, j->now);
	sqlite3_bind_blob(st, 5, j->blob, (int)j->blob_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, j->sig, 64, SQLITE_STATIC);
	rc = hl_store_step_done(st);
	sqlite3_finalize(st);
	if (rc != 0 || j->contact)
		return rc;
	j->device = sqlite3_last_insert_rowid(db);
	{
		char detail[120];
		struct hl_audit_entry e = {
			.at_ms = j->now, .actor = j->staff_id,
			.action = j->esc_id ? "escalation.wrap" : "key.wrap",
			.detail = detail,
		};

		snprintf(detail, sizeof(detail),
			 "{\"device\":%lld,\"conversation\":%lld,"
			 "\"escalation\":%lld}", (long long)j->to_device,
			 (long long)j->conv_id, (long long)j->esc_id);
		return hl_audit_append(stmts, &e, NULL) == 0 ? 0 : HL_ESTORE;
	}
}

/* About what one wrap costs as sent, besides its blobs in base64. */
#define WRAP_OVERHEAD 200

int hl_trust_wraps_json(sqlite3 *db, int64_t conv_id, int64_t staff_id,
			struct hl_wraps_page *page, json_t *out)
{
	sqlite3_stmt *st = NULL;
	bool contact = staff_id == 0;
	size_t used = 0;
	int rc;

	if (prepare(db, contact
			    ? "SELECT w.id, w.to_device, w.from_device, "
			      "w.created_at, w.sealed, w.signature, NULL, NULL FROM "
			      "key_wrap w WHERE w.conversation_id=?1 AND "
			      "w.to_device IS NULL AND w.id > ?3 ORDER BY w.id"
			    : "SELECT w.id, w.to_device, w.from_device, "
			      "w.created_at, w.sealed, w.signature, f.cert, "
			      "f.issuer FROM "
			      "key_wrap w JOIN device t ON t.id = w.to_device "
			      "LEFT JOIN device f ON f.id = w.from_device WHERE "
			      "w.conversation_id=?1 AND t.staff_id=?2 AND "
			      "t.revoked_at IS NULL AND w.id > ?3 ORDER BY w.id",
		    &st) != 0)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, conv_id);
	if (!contact)
		sqlite3_bind_int64(st, 2, staff_id);
	sqlite3_bind_int64(st, 3, page->after);
	page->more = false;
	page->next = page->after;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		size_t bytes = WRAP_OVERHEAD +
			((size_t)sqlite3_column_bytes(st, 4) + 64 +
			 (size_t)sqlite3_column_bytes(st, 6) +
			 (size_t)sqlite3_column_bytes(st, 7)) * 4 / 3;
		json_t *o;

		if (!hl_proto_page_fits(&used, page->budget, bytes)) {
			page->more = true;
			rc = SQLITE_DONE;
			break;
		}
		page->next = sqlite3_column_int64(st, 0);
		o = json_object();
		json_object_set_new(o, "wrap", json_integer(sqlite3_column_int64(st, 0)));
		if (!contact) {
			json_object_set_new(o, "to_device",
					    json_integer(sqlite3_column_int64(st, 1)));
			json_object_set_new(o, "from_device",
					    json_integer(sqlite3_column_int64(st, 2)));
			json_object_set_new(o, "from_cert",
					    b64(sqlite3_column_blob(st, 6),
						(size_t)sqlite3_column_bytes(st, 6)));
			json_object_set_new(o, "from_issuer",
					    b64(sqlite3_column_blob(st, 7),
						(size_t)sqlite3_column_bytes(st, 7)));
		}
		json_object_set_new(o, "created_at",
				    json_integer(sqlite3_column_int64(st, 3)));
		json_object_set_new(o, "sealed",
				    b64(sqlite3_column_blob(st, 4),
					(size_t)sqlite3_column_bytes(st, 4)));
		json_object_set_new(o, "sig", b64(sqlite3_column_blob(st, 5), 64));
		json_array_append_new(out, o);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : HL_ESTORE;
}

static int list_wraps(sqlite3 *db, sqlite3_stmt *const *stmts,
		      struct trust_job *j)
{
	char detail[80];
	struct hl_audit_entry e = {
		.at_ms = j->now, .actor = j->staff_id, .action = "key.wraps",
		.detail = detail,
	};
	int rc;

	if (j->esc_read) {
		rc = hl_escalation_reader(db, j->conv_id, j->staff_id);
		if (rc < 0)
			return rc;
		if (rc == HL_ESC_READER_NONE)
			return refuse(j, HL_ERR_FORBIDDEN, "not your conversation");
		if (rc == HL_ESC_READER_CLAIMER && !j->fresh)
			return refuse(j, HL_ERR_REAUTH_REQUIRED,
				      "enter a code from your authenticator app "
				      "(auth.reauth) to read an escalated chat");
		if (rc == HL_ESC_READER_CLAIMER)
			e.action = "escalation.keys";
	}
	{
		struct hl_wraps_page page = {.after = j->after, .budget = j->budget};

		rc = hl_trust_wraps_json(db, j->conv_id,
					 j->contact ? 0 : j->staff_id, &page, j->out);
		j->more = page.more;
		j->next = page.next;
	}
	if (rc != 0 || j->contact)
		return rc;
	snprintf(detail, sizeof(detail), "{\"conversation\":%lld}",
		 (long long)j->conv_id);
	return hl_audit_append(stmts, &e, NULL) == 0 ? 0 : HL_ESTORE;
}

static int tjob_exec(struct hl_store_job *job, sqlite3 *db,
		     sqlite3_stmt *const *stmts)
{
	struct trust_job *j = hl_container_of(job, struct trust_job, job);
	sqlite3_stmt *st = NULL;
	int rc;

	switch (j->kind) {
	case TJ_LOAD:
		return load(db, j);
	case TJ_REGISTER:
		if (prepare(db, "INSERT INTO device(staff_id, sign_pk, box_pk, "
				"request_sig, created_at) VALUES(?1, ?2, ?3, ?4, "
				"?5)", &st) != 0)
			return HL_ESTORE;
		sqlite3_bind_int64(st, 1, j->staff_id);
		sqlite3_bind_blob(st, 2, j->sign_pk, 32, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, j->box_pk, 32, SQLITE_STATIC);
		sqlite3_bind_blob(st, 4, j->sig, 64, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, j->now);
		rc = hl_store_step_done(st);
		sqlite3_finalize(st);
		if (rc == HL_ECONSTRAINT)
			return refuse(j, HL_ERR_CONFLICT,
				      "this signing key is already registered");
		if (rc != 0)
			return rc;
		j->device = sqlite3_last_insert_rowid(db);
		return audit(stmts, j, "device.register", 0, j->device);
	case TJ_LIST:
		/* Certified devices are public to staff (to wrap keys to a
		 * colleague); waiting ones only to admins and their owner. In
		 * pages of up to LIST_MAX and a quarter of ws.outq_max bytes,
		 * revoked ones last (so that a long history of them never
		 * pushes a device in use off the first page), each part in id
		 * order: a page's next is its last (revoked, id) as
		 * id * 2 + revoked. */
		if (prepare(db, "SELECT id, staff_id, sign_pk, box_pk, "
				"created_at, cert, issuer, certified_at, "
				"revoked_at FROM device WHERE (?1=0 OR staff_id=?1) "
				"AND (cert IS NOT NULL OR ?2=1 OR staff_id=?3) "
				"AND (revoked_at IS NOT NULL, id) > (?4, ?5) "
				"ORDER BY revoked_at IS NOT NULL, id LIMIT ?6", &st) != 0)
			return HL_ESTORE;
		sqlite3_bind_int64(st, 1, j->filter_staff);
		sqlite3_bind_int(st, 2, (j->roles & HL_STAFF_ADMIN) ? 1 : 0);
		sqlite3_bind_int64(st, 3, j->staff_id);
		sqlite3_bind_int(st, 4, (int)(j->after & 1));
		sqlite3_bind_int64(st, 5, j->after >> 1);
		sqlite3_bind_int(st, 6, LIST_MAX + 1); /* one more: more */
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (json_array_size(j->out) == LIST_MAX ||
			    !hl_proto_page_fits(&j->used, j->budget, DEVICE_BYTES)) {
				j->more = true;
				rc = SQLITE_DONE;
				break;
			}
			device_json(st, j->out);
			j->next = sqlite3_column_int64(st, 0) * 2 +
				  (sqlite3_column_type(st, 8) != SQLITE_NULL);
		}
		sqlite3_finalize(st);
		return rc == SQLITE_DONE ? 0 : HL_ESTORE;
	case TJ_CERTIFY:
		return certify_device(db, stmts, j);
	case TJ_REVOKE:
		return revoke_device(db, stmts, j);
	case TJ_REVOCATIONS:
		/* In pages of a quarter of ws.outq_max bytes: nothing ever
		 * deletes from it. Only ever appended to, at the end of this
		 * order, so a page's next is how many were read. Or only
		 * those of one or two certificates (a young person's page
		 * checking the device that answered it: at most two). */
		if (prepare(db, j->nof ? "SELECT statement, signer FROM "
				"revocation WHERE cert_hash IN (?2, ?3) ORDER BY "
				"created_at, cert_hash LIMIT -1 OFFSET ?1"
			    : "SELECT statement, signer FROM revocation ORDER "
				"BY created_at, cert_hash LIMIT -1 OFFSET ?1", &st) != 0)
			return HL_ESTORE;
		sqlite3_bind_int64(st, 1, j->after);
		if (j->nof) {
			sqlite3_bind_blob(st, 2, j->of[0], 32, SQLITE_STATIC);
			sqlite3_bind_blob(st, 3, j->of[j->nof - 1], 32, SQLITE_STATIC);
		}
		j->next = j->after;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			json_t *o;

			if (!hl_proto_page_fits(&j->used, j->budget, REVOCATION_BYTES)) {
				j->more = true;
				rc = SQLITE_DONE;
				break;
			}
			o = json_object();
			j->next++;

			json_object_set_new(o, "revocation",
					    b64(sqlite3_column_blob(st, 0),
						(size_t)sqlite3_column_bytes(st, 0)));
			json_object_set_new(o, "issuer",
					    b64(sqlite3_column_blob(st, 1),
						(size_t)sqlite3_column_bytes(st, 1)));
			json_array_append_new(j->out, o);
		}
		sqlite3_finalize(st);
		return rc == SQLITE_DONE ? 0 : HL_ESTORE;
	case TJ_WRAP:
		return store_wrap(db, stmts, j);
	case TJ_WRAPS:
		return list_wraps(db, stmts, j);
	}
	return HL_EINVAL;
}

/* ---- completions on the loop --------------------------------------------------- */

static void tjob_free(struct trust_job *j)
{
	if (j->s)
		hl_session_unref(j->s);
	free(j->blob);
	free(j->allowed);
	json_decref(j->out);
	sodium_memzero(j->sealed, sizeof(j->sealed));
	sodium_memzero(j->ev_sealed, sizeof(j->ev_sealed));
	free(j);
}

static void tjob_done(struct hl_store_job *job, int status)
{
	struct trust_job *j = hl_container_of(job, struct trust_job, job);
	struct hl_session *s = j->s;
	json_t *r = NULL;

	if (j->kind == TJ_LOAD) {
		struct hl_trust *t = j->t;

		if (status == 0 && j->sealed_len &&
		    hl_keys_open(&t->srv->keys, j->sealed, j->sealed_len,
				 "stamp_sk", t->stamp_sk) == 0)
			t->has_stamp = true;
		if (status == 0 && j->ev_sealed_len &&
		    hl_keys_open(&t->srv->keys, j->ev_sealed, j->ev_sealed_len,
				 "evidence_sk", t->evidence_sk) == 0)
			t->has_evidence = true;
		t->init_status = status == 0 ? 1 : status;
		tjob_free(j);
		return;
	}
	if (status == HL_EINVAL && j->why &&
	    (j->kind == TJ_WRAP || j->kind == TJ_WRAPS) &&
	    (j->refusal == HL_ERR_FORBIDDEN || j->refusal == HL_ERR_REAUTH_REQUIRED)) {
		char detail[140];

		snprintf(detail, sizeof(detail),
			 "{\"request\":\"%s\",\"conversation\":%lld,"
			 "\"device\":%lld,\"escalation\":%lld,\"error\":\"%s\"}",
			 j->kind == TJ_WRAP ? "key.wrap" : "key.wraps",
			 (long long)j->conv_id, (long long)j->to_device,
			 (long long)j->esc_id, hl_err_code_name(j->refusal));
		hl_escalation_audit(j->t->srv, j->staff_id, "escalation.refused",
				    detail);
	}
	if (!s->wsi)
		goto out;
	if (status == HL_EINVAL && j->why) {
		hl_session_error(s, j->id, j->refusal, j->why, NULL);
		goto out;
	}
	if (status != 0) {
		hl_session_error(s, j->id, status == HL_EFULL ? HL_ERR_BUSY
							      : HL_ERR_STORE_FAILED,
				 NULL, NULL);
		goto out;
	}
	switch (j->kind) {
	case TJ_REGISTER:
		r = hl_proto_reply("device.registered", j->id);
		json_object_set_new(r, "device", json_integer(j->device));
		hl_info("device.registered", "staff=%lld device=%lld",
			(long long)j->staff_id, (long long)j->device);
		break;
	case TJ_CERTIFY:
		r = hl_proto_reply("device.certified", j->id);
		json_object_set_new(r, "device", json_integer(j->device));
		break;
	case TJ_REVOKE:
		r = hl_proto_reply("device.revoked", j->id);
		json_object_set_new(r, "device", json_integer(j->device));
		break;
	case TJ_LIST:
		r = hl_proto_reply("device.list", j->id);
		json_object_set(r, "devices", j->out);
		hl_proto_page(r, j->more, j->next);
		break;
	case TJ_REVOCATIONS:
		r = hl_proto_reply("device.revocations", j->id);
		json_object_set(r, "revocations", j->out);
		hl_proto_page(r, j->more, j->next);
		break;
	case TJ_WRAP:
		r = hl_proto_reply("key.wrapped", j->id);
		break;
	case TJ_WRAPS:
		r = hl_proto_reply("key.wraps", j->id);
		json_object_set(r, "wraps", j->out);
		hl_proto_page(r, j->more, j->next);
		break;
	case TJ_LOAD:
		break;
	}
	if (r) {
		hl_session_send(s, r);
		json_decref(r);
	}
out:
	tjob_free(j);
}

static struct trust_job *tjob_new(struct hl_session *s, enum tjob_kind kind,
				  const struct hl_msg *m)
{
	struct trust_job *j = calloc(1, sizeof(*j));
	struct hl_auth_staff *st;

	if (!j || ((kind == TJ_LIST || kind == TJ_REVOCATIONS ||
		    kind == TJ_WRAPS) && !(j->out = json_array()))) {
		free(j);
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return NULL;
	}
	j->job.exec = tjob_exec;
	j->job.done = tjob_done;
	j->kind = kind;
	j->t = &s->srv->trust;
	j->s = s;
	hl_session_ref(s);
	snprintf(j->id, sizeof(j->id), "%s", m->id);
	j->now = hl_now_ms();
	j->contact = s->role == HL_ROLE_CONTACT;
	if (!j->contact) {
		j->staff_id = s->staff_id;
		st = hl_auth_staff_by_id(&s->srv->auth, s->staff_id);
		j->roles = st ? st->row.roles : 0;
	}
	return j;
}

static void tjob_submit(struct trust_job *j)
{
	if (hl_store_submit(&j->t->srv->store, &j->job) != 0)
		tjob_done(&j->job, HL_EFULL);
}

/* ---- start-up ----------------------------------------------------------------- */

int hl_trust_init(struct hl_trust *t, struct hl_server *srv)
{
	struct trust_job *j = calloc(1, sizeof(*j));

	memset(t, 0, sizeof(*t));
	t->srv = srv;
	if (!j)
		return HL_ENOMEM;
	j->job.exec = tjob_exec;
	j->job.done = tjob_done;
	j->kind = TJ_LOAD;
	j->t = t;
	if (hl_store_submit(&srv->store, &j->job) != 0) {
		free(j);
		return HL_ESTORE;
	}
	while (t->init_status == 0)
		uv_run(&srv->loop, UV_RUN_ONCE);
	hl_info("trust.ready", "root=%s stamp=%s evidence=%s",
		t->has_root ? "set" : "none", t->has_stamp ? "set" : "none",
		t->has_evidence ? "set" : "none");
	return t->init_status == 1 ? 0 : t->init_status;
}

void hl_trust_free(struct hl_trust *t)
{
	sodium_memzero(t->stamp_sk, sizeof(t->stamp_sk));
	sodium_memzero(t->evidence_sk, sizeof(t->evidence_sk));
}

struct hl_e2e_chains *hl_trust_chains(struct hl_trust *t)
{
	return &t->chains;
}

const unsigned char *hl_trust_root(const struct hl_trust *t)
{
	return t->has_root ? t->root_pk : NULL;
}

const unsigned char *hl_trust_stamp_sk(const struct hl_trust *t)
{
	return t->has_stamp ? t->stamp_sk : NULL;
}

const unsigned char *hl_trust_evidence_sk(const struct hl_trust *t)
{
	return t->has_evidence ? t->evidence_sk : NULL;
}

/* ---- handlers ----------------------------------------------------------------- */

void hl_trust_org(struct hl_session *s, const struct hl_msg *m)
{
	const struct hl_trust *t = &s->srv->trust;
	json_t *r = hl_proto_reply("e2e.org", m->id);

	json_object_set_new(r, "root_pk", t->has_root ? b64(t->root_pk, 32)
						      : json_null());
	json_object_set_new(r, "stamp_cert",
			    t->stamp_cert_len ? b64(t->stamp_cert,
						    t->stamp_cert_len)
					      : json_null());
	/* The EVIDENCE certificate: what a supervisor's client puts in an
	 * evidence bundle (docs/evidence.md). */
	json_object_set_new(r, "evidence_cert",
			    t->evidence_cert_len ? b64(t->evidence_cert,
						       t->evidence_cert_len)
						 : json_null());
	/* For staff: the referral partner's key, which the supervisor's browser
	 * seals referral packages to (docs/escalation.md "Referrals"), and
	 * whether the daemon delivers them itself. */
	if (s->role == HL_ROLE_STAFF) {
		const struct hl_config *cfg = &s->srv->cfg;

		json_object_set_new(r, "partner_key",
				    cfg->referral_partner_key[0]
					    ? json_string(cfg->referral_partner_key)
					    : json_null());
		json_object_set_new(r, "partner_delivery",
				    json_boolean(cfg->referral_partner_url[0] != '\0'));
	}
	hl_session_send(s, r);
	json_decref(r);
}

static bool bad_field(struct hl_session *s, const struct hl_msg *m,
		      const char *field)
{
	hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
			 "a key, certificate or signature of the wrong length "
			 "or not base64url",
			 field);
	return false;
}

void hl_device_register(struct hl_session *s, const struct hl_msg *m)
{
	struct trust_job *j;
	unsigned char sign_pk[32], box_pk[32], sig[64];

	if (!hl_proto_b64_into(m->u.e2e.sign_pk, sign_pk, 32, NULL, true) ||
	    !crypto_core_ed25519_is_valid_point(sign_pk)) {
		bad_field(s, m, "sign_pk");
		return;
	}
	if (!hl_proto_b64_into(m->u.e2e.box_pk, box_pk, 32, NULL, true)) {
		bad_field(s, m, "box_pk");
		return;
	}
	if (!hl_proto_b64_into(m->u.e2e.sig, sig, 64, NULL, true)) {
		bad_field(s, m, "sig");
		return;
	}
	if (hl_e2e_device_request_verify((uint64_t)s->staff_id, sign_pk, box_pk,
					 sig) != 0) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "sig is not the new key's signature of the "
				 "device request, or box_pk is unusable",
				 "sig");
		return;
	}
	j = tjob_new(s, TJ_REGISTER, m);
	if (!j)
		return;
	memcpy(j->sign_pk, sign_pk, 32);
	memcpy(j->box_pk, box_pk, 32);
	memcpy(j->sig, sig, 64);
	tjob_submit(j);
}

void hl_device_list(struct hl_session *s, const struct hl_msg *m)
{
	struct trust_job *j = tjob_new(s, TJ_LIST, m);

	if (!j)
		return;
	j->filter_staff = m->u.e2e.staff_id;
	j->after = m->u.e2e.after;
	j->budget = hl_session_page_budget(s);
	tjob_submit(j);
}

/* Decodes cert and issuer into j; answers and returns false when bad. */
static bool certs(struct hl_session *s, const struct hl_msg *m,
		  struct trust_job *j, bool need_cert)
{
	if (need_cert && !hl_proto_b64_into(m->u.e2e.cert, j->cert,
					    sizeof(j->cert), &j->cert_len, false))
		return bad_field(s, m, "cert");
	if (!hl_proto_b64_into(m->u.e2e.issuer, j->issuer, sizeof(j->issuer),
			       &j->issuer_len, false))
		return bad_field(s, m, "issuer");
	return true;
}

void hl_device_certify(struct hl_session *s, const struct hl_msg *m)
{
	struct trust_job *j = tjob_new(s, TJ_CERTIFY, m);

	if (!j)
		return;
	if (!certs(s, m, j, true)) {
		tjob_free(j);
		return;
	}
	j->device = m->u.e2e.device;
	tjob_submit(j);
}

void hl_device_revoke(struct hl_session *s, const struct hl_msg *m)
{
	struct trust_job *j = tjob_new(s, TJ_REVOKE, m);

	if (!j)
		return;
	if (!certs(s, m, j, false)) {
		tjob_free(j);
		return;
	}
	if (!hl_proto_b64_into(m->u.e2e.revocation, j->revocation,
			       sizeof(j->revocation), NULL, true)) {
		bad_field(s, m, "revocation");
		tjob_free(j);
		return;
	}
	j->device = m->u.e2e.device;
	tjob_submit(j);
}

void hl_device_revocations(struct hl_session *s, const struct hl_msg *m)
{
	struct trust_job *j;
	const char *h = m->u.e2e.hashes, *dot = h ? strchr(h, '.') : NULL;

	/* hashes: "H" or "H.H", each 43 characters of base64url. */
	if (h && (strlen(h) != (dot ? 87u : 43u) || (dot && dot != h + 43))) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "hashes: one or two certificate hashes, "
				 "base64url, joined by '.'", "hashes");
		return;
	}
	if (!(j = tjob_new(s, TJ_REVOCATIONS, m)))
		return;
	if (h) {
		char one[44];

		for (j->nof = 0; j->nof < (dot ? 2 : 1); j->nof++) {
			memcpy(one, h + 44 * j->nof, 43);
			one[43] = '\0';
			if (!hl_proto_b64_into(one, j->of[j->nof], 32, NULL, true)) {
				bad_field(s, m, "hashes");
				tjob_free(j);
				return;
			}
		}
	}
	j->after = m->u.e2e.after;
	j->budget = hl_session_page_budget(s);
	tjob_submit(j);
}

/* Whether staff_id may take a transfer of a chat now (a wrap made before
 * chat.transfer goes to them). */
static bool can_take(struct hl_server *srv, const struct hl_auth_staff *st)
{
	return hl_contacts_transfer_target(st, hl_contacts_load_of(
		&srv->contacts, st->row.id)) == HL_TRANSFER_OK;
}

/*
 * Which accounts' devices a staff wrap on conversation *conv may go to,
 * into j->allowed. With an escalation: only the supervisor who claimed it,
 * from the counsellor who raised it or holds the chat now. Without: the
 * sender's own devices, the chat's counsellor and joined supervisor, and
 * whoever could take it by transfer now. Answers and returns false when
 * the sender may not wrap at all.
 */
static bool wrap_targets(struct hl_session *s, const struct hl_msg *m,
			 struct trust_job *j, int64_t *conv)
{
	struct hl_server *srv = s->srv;
	struct hl_auth *a = &srv->auth;
	int64_t named = hl_conv_id_parse(m->u.e2e.conversation);
	const struct hl_esc_live *esc;
	struct hl_conv_live *v;
	char detail[120];

	if (!m->u.e2e.escalation) {
		if (!(*conv = hl_contact_party(s, m, m->u.e2e.conversation)))
			return false;
		v = hl_contacts_find(&srv->contacts, *conv);
		if (!(j->allowed = calloc(a->nstaff + 3, sizeof(int64_t)))) {
			hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
			return false;
		}
		j->allowed[j->nallowed++] = s->staff_id;
		if (v && v->counsellor_id)
			j->allowed[j->nallowed++] = v->counsellor_id;
		if (v && v->supervisor_id)
			j->allowed[j->nallowed++] = v->supervisor_id;
		for (size_t i = 0; i < a->nstaff; i++)
			if (can_take(srv, &a->staff[i]))
				j->allowed[j->nallowed++] = a->staff[i].row.id;
		return true;
	}
	esc = hl_escalation_get(&srv->esc, m->u.e2e.escalation);
	if (!esc || (m->u.e2e.conversation && named != esc->conv_id)) {
		hl_session_error(s, m->id, HL_ERR_NOT_FOUND,
				 "no undecided escalation with that id on this chat",
				 "escalation");
		return false;
	}
	v = hl_contacts_find(&srv->contacts, esc->conv_id);
	*conv = esc->conv_id;
	j->esc_id = esc->id;
	if (esc->raised_by != s->staff_id &&
	    !(v && v->counsellor_id == s->staff_id)) {
		snprintf(detail, sizeof(detail),
			 "{\"request\":\"key.wrap\",\"conversation\":%lld,"
			 "\"escalation\":%lld,\"error\":\"forbidden\"}",
			 (long long)esc->conv_id, (long long)esc->id);
		hl_escalation_audit(srv, s->staff_id, "escalation.refused", detail);
		hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
				 "only the counsellor of the chat shares its keys",
				 "escalation");
		return false;
	}
	if (!esc->claimed_by) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "no supervisor has claimed this escalation yet",
				 "escalation");
		return false;
	}
	if (!(j->allowed = calloc(1, sizeof(int64_t)))) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return false;
	}
	{
		struct hl_auth_staff *st = hl_auth_staff_by_id(a, esc->claimed_by);

		/* A claimer who has lost the supervisor role since gets nothing. */
		if (st && (st->row.roles & HL_STAFF_SUPERVISOR))
			j->allowed[j->nallowed++] = esc->claimed_by;
	}
	return true;
}

void hl_key_wrap(struct hl_session *s, const struct hl_msg *m)
{
	int64_t conv = 0;
	struct trust_job *j;
	unsigned char sig[64];

	if (s->role == HL_ROLE_CONTACT) {
		if (m->u.e2e.escalation) {
			hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
					 "a young person wraps only to their return key",
					 "escalation");
			return;
		}
		if (!(conv = hl_contact_party(s, m, m->u.e2e.conversation)))
			return;
	}
	if (s->role == HL_ROLE_STAFF &&
	    (!m->u.e2e.to_device || !m->u.e2e.from_device)) {
		hl_session_error(s, m->id, HL_ERR_MISSING_FIELD,
				 "staff wrap to_device from from_device",
				 !m->u.e2e.to_device ? "to_device" : "from_device");
		return;
	}
	if (s->role == HL_ROLE_CONTACT &&
	    (m->u.e2e.to_device || m->u.e2e.from_device)) {
		hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
				 "a young person wraps only to their return key",
				 "to_device");
		return;
	}
	if (!hl_proto_b64_into(m->u.e2e.sig, sig, 64, NULL, true)) {
		bad_field(s, m, "sig");
		return;
	}
	j = tjob_new(s, TJ_WRAP, m);
	if (!j)
		return;
	if (s->role == HL_ROLE_STAFF && !wrap_targets(s, m, j, &conv)) {
		tjob_free(j);
		return;
	}
	if (hl_proto_b64_decode(m->u.e2e.sealed, WRAP_MAX, &j->blob,
				&j->blob_len) != 0 ||
	    j->blob_len < crypto_box_SEALBYTES) {
		bad_field(s, m, "sealed");
		tjob_free(j);
		return;
	}
	memcpy(j->sig, sig, 64);
	j->conv_id = conv;
	j->to_device = m->u.e2e.to_device;
	j->from_device = m->u.e2e.from_device;
	tjob_submit(j);
}

void hl_key_wraps(struct hl_session *s, const struct hl_msg *m)
{
	int64_t conv = 0, named = hl_conv_id_parse(m->u.e2e.conversation);
	struct trust_job *j;
	bool esc = false;

	/* Staff who are not a party may read by an escalation (decided on the
	 * writer, as for chat.sync). */
	if (s->role == HL_ROLE_STAFF && named) {
		struct hl_conv_live *v = hl_contacts_find(&s->srv->contacts, named);

		if (!v || (v->counsellor_id != s->staff_id &&
			   v->supervisor_id != s->staff_id))
			esc = true;
		conv = named;
	}
	/* A young person may also read the chat that ended on (or came back
	 * ended to) this socket, as for chat.sync. */
	if (!esc && !(conv = hl_contact_ended_conv(s, m->u.e2e.conversation)) &&
	    !(conv = hl_contact_party(s, m, m->u.e2e.conversation)))
		return;
	j = tjob_new(s, TJ_WRAPS, m);
	if (!j)
		return;
	j->conv_id = conv;
	j->after = m->u.e2e.after;
	j->budget = hl_session_page_budget(s);
	j->esc_read = esc;
	j->fresh = esc && hl_auth_fresh(s);
	tjob_submit(j);
}
