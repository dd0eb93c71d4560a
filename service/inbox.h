/* inbox.h: owns the out-of-hours inbox inside helplined: a young person
 * leaves a message sealed to the team inbox key (crypto_box_seal on their
 * device: the server never holds the secret key and cannot read it) under a
 * return key pair derived from their return code; they read the reply later
 * by signing a one-time challenge; counsellors list, open and answer.
 * Storage: table inbox_message (schema 0003). */
#ifndef HL_INBOX_H
#define HL_INBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol.h"

struct hl_server;
struct hl_session;

#define HL_INBOX_CHALLENGES 256      /* live challenges kept at once */
#define HL_INBOX_PER_THREAD 20       /* unanswered messages per return key */
#define HL_INBOX_UNREAD_MAX 100000   /* unread messages in all */

/* One live challenge: for one connection and one return key. */
struct hl_inbox_challenge {
	uint64_t session_id;         /* the connection it was given to */
	unsigned char return_pk[32];
	unsigned char nonce[32];
	int64_t expires_at;          /* unix ms; 0 = free slot */
};

struct hl_inbox {
	struct hl_server *srv;
	char pk_b64[44];             /* team inbox public key, base64url */
	bool have_pk;
	struct hl_inbox_challenge ch[HL_INBOX_CHALLENGES];
	int init_status;             /* start-up load: 0 running, 1 ok, <0 */
};

/* Loads the team inbox public key (org_key "inbox_box_pk"); runs the loop
 * until done (start-up only). A missing key is not an error: the inbox is
 * then unavailable until one is set and the daemon restarts. */
int hl_inbox_init(struct hl_inbox *ib, struct hl_server *srv);
void hl_inbox_free(struct hl_inbox *ib);

/* The team inbox public key as base64url, or NULL when none is set. */
const char *hl_inbox_public_key(const struct hl_inbox *ib);

void hl_inbox_post(struct hl_session *s, const struct hl_msg *m);
void hl_inbox_challenge(struct hl_session *s, const struct hl_msg *m);
void hl_inbox_fetch(struct hl_session *s, const struct hl_msg *m);

/* Checks sig, by pk, over label ‖ nonce ‖ pk for the live challenge s was
 * given for pk (inbox.challenge), and uses the challenge up whatever the
 * outcome. Used by inbox.fetch ("helpline-inbox-fetch-v1") and by
 * contact.return ("helpline-return-v1"): different labels, so one answer
 * cannot be replayed as the other. */
bool hl_inbox_challenge_answer(struct hl_inbox *ib, struct hl_session *s,
			       const unsigned char pk[32], const char *label,
			       const unsigned char sig[64]);
void hl_inbox_list(struct hl_session *s, const struct hl_msg *m);
void hl_inbox_open(struct hl_session *s, const struct hl_msg *m);
void hl_inbox_reply(struct hl_session *s, const struct hl_msg *m);

/* The bytes a fetch signature covers: label || nonce || return_pk. */
#define HL_INBOX_FETCH_LABEL "helpline-inbox-fetch-v1"

#endif
