/* trust.h: owns the trust chain in the daemon (docs/crypto.md): the
 * organisation's public keys and the STAMP signing key, staff devices and
 * their certificates, signed revocations, and key wraps. The server checks
 * every certificate and signature it stores, but holds no key that could
 * read a chat: wraps are sealed to devices, and the root's secret key stays
 * offline (helplinectl certify-device uses it). */
#ifndef HL_TRUST_H
#define HL_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <sqlite3.h>

#include "cert.h"
#include "e2e.h"

struct hl_server;
struct hl_session;
struct hl_msg;

struct hl_trust {
	struct hl_server *srv;
	bool has_root;                        /* helplinectl init was run */
	unsigned char root_pk[32];
	bool has_stamp;                       /* the STAMP key could be opened */
	unsigned char stamp_sk[64];           /* signs chain checkpoints */
	unsigned char stamp_cert[HL_CERT_MAX];
	size_t stamp_cert_len;
	bool has_evidence;                    /* the EVIDENCE key could be opened */
	unsigned char evidence_sk[64];        /* countersigns evidence bundles */
	unsigned char evidence_cert[HL_CERT_MAX];
	size_t evidence_cert_len;
	int init_status;                      /* 0 running, 1 done, < 0 failed */
	struct hl_e2e_chains chains;          /* the store's writer's alone */
};

/* Loads the organisation keys (blocking the loop until read: start-up
 * only). A database without them (no `helplinectl init` yet) is fine:
 * handshakes are then refused. 0 or a negative HL_E* status. */
int hl_trust_init(struct hl_trust *t, struct hl_server *srv);
void hl_trust_free(struct hl_trust *t);

/* The root public key, or NULL when there is none. */
const unsigned char *hl_trust_root(const struct hl_trust *t);

/* The STAMP secret key, or NULL. Immutable after hl_trust_init, so the
 * store's writer thread may read it. */
const unsigned char *hl_trust_stamp_sk(const struct hl_trust *t);

/* The device chains already verified, for handshakes' accepts. Only the
 * store's writer thread uses it (hl_event_append). */
struct hl_e2e_chains *hl_trust_chains(struct hl_trust *t);

/* The EVIDENCE secret key (docs/evidence.md), or NULL (an install from
 * before it: helplinectl evidence-key). Immutable after hl_trust_init. */
const unsigned char *hl_trust_evidence_sk(const struct hl_trust *t);

/* Handlers (dispatch.c): e2e.org, device.*, key.wrap, key.wraps. */
void hl_trust_org(struct hl_session *s, const struct hl_msg *m);
void hl_device_register(struct hl_session *s, const struct hl_msg *m);
void hl_device_list(struct hl_session *s, const struct hl_msg *m);
void hl_device_certify(struct hl_session *s, const struct hl_msg *m);
void hl_device_revoke(struct hl_session *s, const struct hl_msg *m);
void hl_device_revocations(struct hl_session *s, const struct hl_msg *m);
void hl_key_wrap(struct hl_session *s, const struct hl_msg *m);
void hl_key_wraps(struct hl_session *s, const struct hl_msg *m);

/* A page of key wraps: those after `after` (a wrap id; 0 from the
 * first) up to about budget bytes as sent, at least one. On return, more
 * says whether any are left, next is the page's last wrap id. */
struct hl_wraps_page {
	int64_t after;
	size_t budget;
	bool more;
	int64_t next;
};

/* On the store's writer: appends to out a page of the key wraps of
 * conv_id to the devices of staff_id, or (staff_id 0) to the young
 * person's return key, as key.wraps lists them. 0 or HL_ESTORE. */
int hl_trust_wraps_json(sqlite3 *db, int64_t conv_id, int64_t staff_id,
			struct hl_wraps_page *page, json_t *out);

/* On the store's writer. Whether a certificate hash is revoked (a failing
 * lookup counts as revoked); the shape of hl_e2e_revoked_fn, with the
 * store's statements as arg. */
bool hl_trust_revoked(const unsigned char hash[32], void *stmts);
/* The live (certified, not revoked) device whose certificate is cert: 0
 * with its id and owner, HL_ENOTFOUND, HL_ESTORE. */
int hl_trust_live_device(sqlite3_stmt *const *stmts, const unsigned char *cert,
			 size_t len, int64_t *device, int64_t *owner);

/* The pseudonymous subject of a device certificate: "dev:" and the first
 * 32 hex digits of H(sign_pk); out has room for 37 bytes. */
void hl_trust_device_subject(const unsigned char sign_pk[32], char out[37]);

#endif
