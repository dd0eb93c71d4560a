/* config.h: owns the daemon's configuration: defaults, INI file, command line. */
#ifndef HL_CONFIG_H
#define HL_CONFIG_H

#include "addrlimit.h"

#include <stddef.h>
#include <stdint.h>

#define HL_CONFIG_MAX_ORIGINS 16
#define HL_CONFIG_ORIGIN_MAX 256
#define HL_CONFIG_PATH_MAX 1024
/* ws.outq_max must be at least 2 x ws.max_message + this: room for the
 * largest reply, which carries up to two messages' payloads and its own
 * fields (hl_config_finish). */
#define HL_CONFIG_REPLY_OVERHEAD 1024

/*
 * Every setting of helplined. Each field maps to one "section.key" of the
 * INI file (named in the comment); the README's configuration table lists
 * them all. Strings are stored inline so a config can be copied by value and
 * needs no freeing.
 */
/* [chat] envelopes (the words' order in config.c). */
enum { HL_ENVELOPES_OPAQUE = 1, HL_ENVELOPES_STRICT = 2 };

struct hl_config {
	/* [server] listen = HOST:PORT; default 127.0.0.1:8080. HOST is an IPv4
	 * or IPv6 literal (IPv6 in brackets: [::1]:8080) or "localhost". */
	char listen_host[64];
	int listen_port;                /* 1..65535 (0 allowed: kernel picks) */
	/* [server] web_root: directory served over HTTP; default HL_DEFAULT_WEB_ROOT */
	char web_root[HL_CONFIG_PATH_MAX];
	/* [server] state_dir: where the embedded database lives by default;
	 * default /var/lib/helpline, created 0700 if missing. */
	char state_dir[HL_CONFIG_PATH_MAX];
	/* [server] max_connections: 1..1000000; default 19000. */
	int max_connections;
	/* [server] max_connections_per_address: WebSockets one address (an
	 * IPv6 /64) may hold at once; 0..1000000, 0 = no cap; default 64. */
	int max_connections_per_address;
	/* [server] failed_attempts_per_address, failed_attempts_window: wrong
	 * secrets (return code, resume token, staff login or enrolment) one
	 * address may try in a burst (0: no budget), and the seconds in which
	 * a spent budget refills. */
	int failed_attempts_per_address;
	int failed_attempts_window;
	/* [server] uncounted_addresses: addresses and prefixes never counted
	 * per address (a reverse proxy's); "none" or up to 16; default
	 * "127.0.0.0/8, ::1". */
	struct hl_nets uncounted_addresses;

	/* [store] db: SQLite file; default "<state_dir>/helpline.db" (empty
	 * here means "use the default", resolved by hl_config_db_path). */
	char db_path[HL_CONFIG_PATH_MAX];
	/* [store] batch_max: most jobs committed in one transaction; 1..100000;
	 * default 4096. */
	int store_batch_max;
	/* [store] queue_max: most jobs waiting for the writer; 16..10000000;
	 * default 100000. Submissions beyond it fail with HL_EFULL. */
	int store_queue_max;

	/* [store] key_file: the server's secret key file (keys.h); default
	 * "helpline.key" in the database's directory (empty here = default,
	 * resolved by hl_config_key_path). Never inside the database. */
	char key_file[HL_CONFIG_PATH_MAX];

	/* [auth] session_idle: seconds without activity before a staff session
	 * ends; 60..86400; default 1800. */
	int auth_session_idle;
	/* [auth] session_max: absolute session lifetime in seconds;
	 * 300..604800; default 43200 (a 12-hour shift). */
	int auth_session_max;
	/* [auth] max_failures: consecutive failed logins that lock an account;
	 * 1..100; default 5. */
	int auth_max_failures;
	/* [auth] lockout: seconds an account stays locked; 10..86400; default 900. */
	int auth_lockout;
	/* [auth] reauth_window: seconds a TOTP re-entry (auth.reauth) covers
	 * sensitive operations; 30..3600; default 300. */
	int auth_reauth_window;
	/* [auth] pwhash_inflight: Argon2id verifications running at once on the
	 * threadpool; 1..64; default 1, leaving the other core of a 2-core host
	 * to the event loop so a login flood cannot slow chat. */
	int auth_pwhash_inflight;
	/* [auth] pwhash_queue: further verifications waiting; beyond it logins
	 * get "busy"; 0..100000; default 256. */
	int auth_pwhash_queue;

	/* [queue] max: most young people waiting; beyond it contact.start gets
	 * "busy" with a kind message; 1..1000000; default 10000. */
	int queue_max;
	/* [queue] ageing: seconds of waiting worth one risk class (a standard
	 * contact waiting this much longer than an elevated one goes first);
	 * 10..86400; default 600. */
	int queue_ageing;
	/* [queue] resume_ttl: seconds a young person's resume secret stays
	 * valid after their last activity; 60..604800; default 86400. */
	int queue_resume_ttl;

	/* [queue] counsellor_grace: seconds a counsellor with active chats may
	 * be disconnected before those chats go back to the front of the
	 * queue; 5..3600; default 60. */
	int queue_counsellor_grace;
	/* [queue] routing: how chats reach counsellors: HL_ROUTING_OFFER (the
	 * server offers each to the best available counsellor), HL_ROUTING_PULL
	 * (counsellors take the next or pick from the list), HL_ROUTING_BOTH
	 * (default: offers, and counsellors may also take or pick). */
	int queue_routing;
	/* [queue] offer_timeout: seconds an offer waits for accept before it
	 * goes to the next counsellor, the first is set away and supervisors
	 * are alerted; 5..600; default 30. */
	int queue_offer_timeout;
	/* [chat] transfer_announce: 1 (default) tells the young person "you
	 * are now talking to another counsellor" on transfer; 0 transfers
	 * silently. */
	int chat_transfer_announce;
	int escalation_realert;     /* s between re-alerts of an unclaimed immediate escalation (urgent: 5x) */
	/* [evidence] max_bundle: the largest evidence bundle evidence.sign
	 * takes, in bytes; 4096..67108864; default 4194304 (4m). A supervisor's
	 * frame may be this much larger than ws.max_message
	 * (hl_evidence_frame_max). */
	size_t evidence_max_bundle;
	/* [referral] partner_url: where approved referrals are POSTed
	 * (docs/escalation.md); "" (default) = no delivery by the daemon
	 * (staff download the sealed file). https:// only; http://127.0.0.1
	 * also in HL_TEST_HOOKS builds. */
	char referral_partner_url[512];
	/* [referral] partner_key: the partner's X25519 public key, base64url
	 * of 32 bytes, to which staff browsers seal referrals; "" = none
	 * (referrals cannot be sealed or approved). */
	char referral_partner_key[48];
	int referral_connect_timeout;  /* [referral] connect_timeout: s, default 10 */
	int referral_timeout;          /* [referral] timeout: s for a whole POST, default 30 */
	int referral_attempts;         /* [referral] attempts: most POSTs before failed, default 8 */
	int referral_backoff;          /* [referral] backoff: s before the 2nd attempt (doubling), default 30 */
	int referral_backoff_max;      /* [referral] backoff_max: s, the longest wait, default 3600 */
	/* [chat] envelopes: HL_ENVELOPES_STRICT (default): a chat message
	 * must be an end-to-end envelope (docs/crypto.md) with the current
	 * epoch and the next counter; HL_ENVELOPES_OPAQUE: payloads are
	 * stored as given (tests of the relay alone; never in service). */
	int chat_envelopes;
	/* [e2e] checkpoint_every: sign a checkpoint of a conversation's hash
	 * chain every this many events (and when it ends); 1..10000;
	 * default 32. */
	int e2e_checkpoint_every;
	/* [ws] rate: requests per second one connection may sustain; 1..10000;
	 * default 20. */
	int ws_rate;
	/* [ws] burst: requests one connection may send at once above the rate;
	 * 1..100000; default 60. A connection over its budget gets
	 * rate_limited; one that keeps going (a further burst's worth refused)
	 * is closed with 1008. */
	int ws_burst;

	/* [hours] weekly: the weekly opening hours, e.g. "mon-fri 09:00-22:00,
	 * sat-sun 12:00-20:00" (hours.h has the format); "" = always open. */
	char hours_weekly[1024];
	/* [hours] exceptions: dated overrides, e.g. "2026-12-25 closed,
	 * 2026-12-24 09:00-14:00"; "" = none. */
	char hours_exceptions[4096];
	/* [hours] timezone: IANA name the hours are in; default "UTC". */
	char hours_timezone[64];

	/* [ws] max_message: largest reassembled message in bytes; 256..1048576;
	 * default 65536. Bigger messages close the connection with 1009. */
	size_t ws_max_message;
	/* [ws] outq_max: bytes queued for one connection before it is closed
	 * as too slow (it resumes later); 4096..67108864; default 1048576. */
	size_t ws_outq_max;
	/* [ws] ping_interval: seconds between keep-alive pings; 0 disables;
	 * 0..3600; default 30. */
	int ws_ping_interval;

	/* [staff] allowed_origins: space- or comma-separated list of origins
	 * ("scheme://host[:port]") allowed to open helpline.staff.v1.
	 * Default: "http://<listen host>:<listen port>" plus the
	 * localhost/127.0.0.1 twin when listening on loopback. */
	char allowed_origins[HL_CONFIG_MAX_ORIGINS][HL_CONFIG_ORIGIN_MAX];
	int allowed_origins_count;
	int allowed_origins_set;        /* 1 when given explicitly */

	/* [log] level: debug, info, warn, error, off; default info. */
	int log_level;                  /* enum hl_log_level */
	/* [log] format: HL_LOG_FORMAT_TEXT (default: one escaped
	 * "time level event key=value..." line) or HL_LOG_FORMAT_JSON (one
	 * JSON object per line). */
	int log_format;

	/* [metrics] listen: "" (default) serves GET /metrics on the main
	 * listener; HOST:PORT serves it there only (a second listener that
	 * answers nothing else), and the main listener answers 404. */
	char metrics_host[64];
	int metrics_port;               /* -1 when metrics_host is "" */

	/* [retention] days: ended conversations that were never escalated are
	 * deleted this many days after they ended; 1..3650; default 30. */
	int retention_days;
	/* [retention] escalated_days: an escalated conversation is kept while
	 * any escalation of it is undecided, then this many days after the
	 * last decision; 1..36500; default 365. */
	int retention_escalated_days;
	/* [retention] interval: seconds between purge runs; 1..86400; default
	 * 3600. */
	int retention_interval;
	/* [retention] batch: conversations deleted per store job; 1..10000;
	 * default 100. */
	int retention_batch;
};

/* Fills cfg with the defaults above. */
void hl_config_defaults(struct hl_config *cfg);

/*
 * Applies an INI file on top of cfg. Unknown sections or keys and bad values
 * fail: returns HL_EINVAL and writes a message naming the file, line and
 * "section.key" into err (errlen bytes, NUL-terminated). Returns HL_EIO when
 * the file cannot be read. On failure cfg may be partly updated.
 */
int hl_config_load_file(struct hl_config *cfg, const char *path, char *err,
			size_t errlen);

/* As hl_config_load_file, for INI text held in memory (name is used in
 * messages). */
int hl_config_load_string(struct hl_config *cfg, const char *text,
			  const char *name, char *err, size_t errlen);

/*
 * Sets one "section.key" to a value with the same validation as the file
 * (the command line uses this: --listen is "server.listen", --db is
 * "store.db", --web-root is "server.web_root"). Returns 0 or HL_EINVAL with
 * a message in err.
 */
int hl_config_set(struct hl_config *cfg, const char *key, const char *value,
		  char *err, size_t errlen);

/*
 * Final step after file and command line: fills derived defaults and
 * cross-checks. Fills the default allowed origins when none were given (left
 * empty with listen port 0; see hl_config_default_origins). Leaves an empty
 * db_path empty (the server creates state_dir only then) but checks that the
 * derived path fits. Re-checks every numeric range, so fields set directly
 * in code are caught too. Returns 0 or HL_EINVAL with err set.
 */
int hl_config_finish(struct hl_config *cfg, char *err, size_t errlen);

/*
 * (Re)fills the default allowed origins for the port actually bound. With
 * listen port 0 the kernel picks the port at bind time, so hl_config_finish
 * leaves the list empty (no staff origin is allowed) and the server calls
 * this once it knows bound_port. Does nothing and returns 0 when
 * allowed_origins_set is 1 (an explicit list is never replaced). Returns
 * HL_EINVAL, leaving cfg unchanged, when bound_port is not 1..65535.
 * Allocates nothing; call it before other threads read cfg.
 */
int hl_config_default_origins(struct hl_config *cfg, int bound_port);

/*
 * Writes the database path (db_path, or state_dir + "/helpline.db") to out
 * (outlen bytes, NUL-terminated). Returns 0, HL_EINVAL when neither db_path
 * nor state_dir is set, or HL_ERANGE when the path does not fit in out.
 * Does not change cfg: an empty db_path stays empty, meaning "derived".
 */
int hl_config_db_path(const struct hl_config *cfg, char *out, size_t outlen);

/* Writes the key file path (key_file, or "helpline.key" in the database's
 * directory) to out. Returns 0, HL_ERANGE or HL_EINVAL. */
int hl_config_key_path(const struct hl_config *cfg, char *out, size_t outlen);

/* Values of log_format. */
enum { HL_LOG_FORMAT_TEXT = 1, HL_LOG_FORMAT_JSON = 2 };

/* Values of queue_routing. */
enum { HL_ROUTING_OFFER = 1, HL_ROUTING_PULL = 2, HL_ROUTING_BOTH = 3 };

#endif
