/* helplinectl.c: the administration tool: organisation keys, staff
 * accounts, sessions and the audit chain, on the same database and key file
 * as helplined.
 *
 * Every read and write runs as a store job on helplinectl's own store (the
 * same writer discipline as the daemon: BEGIN IMMEDIATE, one savepoint per
 * job, audit rows chained inside the job's transaction), so helplinectl may
 * run while helplined does; SQLite's lock and busy timeout order the two.
 * Only `audit verify` and `stats` read on a plain read-only connection.
 *
 * Exit status: 0 ok, 1 the operation failed, 2 usage error. Errors are one
 * line on stderr naming what is wrong. Secrets (the root secret key,
 * enrolment codes) are printed or written once and wiped from memory. */
#include "audit.h"
#include "bundle.h"
#include "cert.h"
#include "common.h"
#include "config.h"
#include "e2e.h"
#include "evidence.h"
#include "keys.h"
#include "log.h"
#include "migrations.h"
#include "staff.h"
#include "stats.h"
#include "store.h"
#include "trust.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define EXIT_FAIL 1
#define EXIT_USAGE 2

#define STAMP_VALID_S (730LL * 86400)  /* the STAMP certificate: 2 years */
#define HASH_PREFIX_BYTES 4              /* of a session's token hash, shown */

/* The org_key rows init writes; all or none must be present. */
static const char *const org_key_names[] = {
	"root_pk", "stamp_pk", "stamp_sk_sealed", "stamp_cert",
};
#define N_ORG_KEYS 4

/* ---- the tool's state ----------------------------------------------------- */

/* Everything one run of helplinectl holds. */
struct ctl {
	char db[HL_CONFIG_PATH_MAX + 32];      /* database path */
	char keyfile[HL_CONFIG_PATH_MAX + 32]; /* key file path */
	bool db_derived;        /* db comes from the state directory */
	char state_dir[HL_CONFIG_PATH_MAX];
	const char *cmd;        /* the command's name, for messages */
	uv_loop_t loop;
	bool loop_open;
	struct hl_store store;
	bool store_open;
	struct hl_keys keys;
	bool keys_loaded;
	int64_t now;            /* unix seconds at start */
	/* A job's error message, if it set one (room for two paths). */
	char msg[2 * (HL_CONFIG_PATH_MAX + 32) + 256];
};

/* Prints "helplinectl: <message>" to stderr. */
static void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void errorf(const char *fmt, ...)
{
	va_list ap;

	fputs("helplinectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- help ----------------------------------------------------------------- */

static const char global_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] COMMAND [ARGS]\n"
	"Administers a Helpline database: organisation keys, staff accounts,\n"
	"sessions and the audit chain. Safe to run while helplined runs; the\n"
	"daemon picks up changes within about a second.\n"
	"\n"
	"Global options (the same defaults as helplined):\n"
	"  --config FILE      read store.db, server.state_dir and store.key_file\n"
	"                     from helplined's INI file\n"
	"  --db PATH          SQLite database (default STATE_DIR/helpline.db)\n"
	"  --state-dir DIR    state directory (default /var/lib/helpline)\n"
	"  --key-file PATH    the server's secret key file (default helpline.key\n"
	"                     in the database's directory)\n"
	"  --help             show this help; COMMAND --help for a command's\n"
	"  --version          show the version\n"
	"\n"
	"Commands:\n"
	"  init --root-key-out FILE      create the organisation's keys\n"
	"  create-admin USERNAME         new admin account + enrolment code\n"
	"  create-staff USERNAME --role ROLE   new counsellor/supervisor account\n"
	"  list-staff [--json]           list accounts\n"
	"  disable USERNAME              lock an account out, end its sessions\n"
	"  enable USERNAME               let a disabled account back in\n"
	"  reset-password USERNAME       clear the password, new enrolment code\n"
	"  reset-totp USERNAME           clear the authenticator, new code\n"
	"  sessions [USERNAME] [--json]  list login sessions\n"
	"  revoke-sessions USERNAME      end every session of an account\n"
	"  audit verify                  check the audit log's hash chain\n"
	"  stats --from DAY --to DAY [--by day|hour]   statistics as CSV\n"
	"  inbox-key set KEY [--replace] | show   the team inbox public key\n"
	"  list-devices [--json]         staff devices and their certificates\n"
	"  certify-device --root-key FILE DEVICE   certify an admin's device\n"
	"  revoke-device --root-key FILE DEVICE    revoke any device with the root\n"
	"  evidence-key --root-key FILE  add the EVIDENCE key to an older install\n"
	"  verify-bundle FILE [--root KEYFILE]     verify an evidence bundle offline\n"
	"  backup FILE                   online copy of the database (daemon running)\n"
	"  restore [--force] FILE        put a backup in place (daemon stopped)\n"
	"\n"
	"Exit status: 0 ok, 1 the operation failed, 2 usage error.\n";

static const char init_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] init --root-key-out FILE\n"
	"Creates the organisation's keys, once:\n"
	"  - the server's key file (if helplined has not made it yet);\n"
	"  - the organisation ROOT signing key pair: the secret key is written\n"
	"    to FILE (new file, mode 0600; never overwritten) and is NOT kept in\n"
	"    the database; only the public key is;\n"
	"  - the service STAMP signing key (sealed under the key file) and its\n"
	"    certificate, signed by the root, valid for 2 years;\n"
	"  - the service EVIDENCE signing key (which countersigns evidence\n"
	"    bundles), made and certified the same way.\n"
	"Run again on an initialised database it says so and changes nothing.\n"
	"\n"
	"Options:\n"
	"  --root-key-out FILE  where to write the root secret key (required)\n"
	"  --help               show this help\n";

static const char create_admin_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] create-admin USERNAME [OPTIONS]\n"
	"Creates an admin account (pending until enrolled) and prints its\n"
	"one-time enrolment code. Passwords are never taken on the command\n"
	"line: the person sets theirs when enrolling in the staff console.\n"
	"\n"
	"USERNAME: 3 to 32 characters of a-z 0-9 . _ -, starting with a letter.\n"
	"Options:\n"
	"  --name \"Display Name\"  name shown to colleagues (default USERNAME)\n"
	"  --languages LIST       comma-separated language tags, e.g. en,cy\n"
	"  --supervisor           also give the supervisor role\n"
	"  --help                 show this help\n";

static const char create_staff_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] create-staff USERNAME --role ROLE "
	"[OPTIONS]\n"
	"Creates a counsellor or supervisor account (pending until enrolled)\n"
	"and prints its one-time enrolment code.\n"
	"\n"
	"USERNAME: 3 to 32 characters of a-z 0-9 . _ -, starting with a letter.\n"
	"Options:\n"
	"  --role ROLE            counsellor, supervisor, or counsellor,supervisor\n"
	"                         (required)\n"
	"  --name \"Display Name\"  name shown to colleagues (default USERNAME)\n"
	"  --languages LIST       comma-separated language tags, e.g. en,cy\n"
	"  --skills LIST          comma-separated skills, e.g. online_exploitation\n"
	"  --capacity N           most chats at once, 0 to 20 (default 2)\n"
	"  --help                 show this help\n";

static const char list_staff_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] list-staff [--json]\n"
	"Lists every account: id, username, display name, roles, state,\n"
	"capacity, languages.\n"
	"\n"
	"Options:\n"
	"  --json   one JSON array, for scripts\n"
	"  --help   show this help\n";

static const char disable_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] disable USERNAME\n"
	"Disables the account USERNAME: it cannot log in, and every session it\n"
	"has is ended (helplined closes its connections within about a second).\n"
	"\n"
	"Options:\n"
	"  --help   show this help\n";

static const char enable_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] enable USERNAME\n"
	"Enables the account USERNAME again: active if it has finished\n"
	"enrolment, otherwise pending.\n"
	"\n"
	"Options:\n"
	"  --help   show this help\n";

static const char reset_password_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] reset-password USERNAME\n"
	"Clears USERNAME's password, ends their sessions and prints a new\n"
	"one-time enrolment code with which they set a new password (and\n"
	"authenticator) in the staff console.\n"
	"\n"
	"Options:\n"
	"  --help   show this help\n";

static const char reset_totp_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] reset-totp USERNAME\n"
	"Clears USERNAME's authenticator (TOTP) secret, e.g. after a lost\n"
	"phone, ends their sessions and prints a new one-time enrolment code\n"
	"with which they set it up again.\n"
	"\n"
	"Options:\n"
	"  --help   show this help\n";

static const char sessions_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] sessions [USERNAME] [--json]\n"
	"Lists login sessions, of USERNAME or of everyone: who, a short prefix\n"
	"of the session's token hash (to tell them apart; never the token),\n"
	"when it started, was last seen and expires (UTC).\n"
	"\n"
	"Options:\n"
	"  --json   one JSON array, for scripts\n"
	"  --help   show this help\n";

static const char revoke_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] revoke-sessions USERNAME\n"
	"Ends every session of USERNAME and prints how many there were. The\n"
	"account stays enabled: they can log in again.\n"
	"\n"
	"Options:\n"
	"  --help   show this help\n";

static const char certify_device_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] certify-device --root-key FILE\n"
	"                   [--days N] DEVICE\n"
	"Certifies an admin's device with the organisation root key (the file\n"
	"helplinectl init wrote): the admin's browser registered the device\n"
	"(device.register); list-devices shows its id. The certificate binds the\n"
	"device's keys, role admin device, for N days (default 365). An admin\n"
	"device then certifies counsellors' and supervisors' devices. Bring the\n"
	"root key file in only for this, and take it away again.\n"
	"\n"
	"Options:\n"
	"  --root-key FILE  the root secret key file (required)\n"
	"  --days N         validity, 1-3650 days (default 365)\n"
	"  --help           show this help\n";

static const char revoke_device_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] revoke-device --root-key FILE DEVICE\n"
	"Revokes a device's certificate with the organisation root key: a lost\n"
	"admin device, or any other. Revoking an admin device also makes every\n"
	"certificate it issued unusable. Clients fetch the signed revocation.\n"
	"\n"
	"Options:\n"
	"  --root-key FILE  the root secret key file (required)\n"
	"  --help           show this help\n";

static const char evidence_key_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] evidence-key --root-key FILE\n"
	"Adds the service EVIDENCE key to a database initialised before it\n"
	"existed: a new signing key, sealed under the key file, and its\n"
	"certificate signed with the organisation root key (the file helplinectl\n"
	"init wrote), valid for 2 years. The service countersigns evidence\n"
	"bundles with it. helplined reads it when it starts. A database that\n"
	"has one already is left alone.\n"
	"\n"
	"Options:\n"
	"  --root-key FILE  the root secret key file (required)\n"
	"  --help           show this help\n";

static const char verify_bundle_usage[] =
	"Usage: helplinectl verify-bundle FILE [--root KEYFILE]\n"
	"Verifies an evidence bundle (docs/evidence.md) offline: no database,\n"
	"no network, no clock. Checks the canonical encoding, the digest, the\n"
	"supervisor's and the service's signatures, every certificate as of the\n"
	"time it was used, the hash chain from seq 1, the STAMP-signed\n"
	"checkpoints, every handshake, each disclosed message's ciphertext and\n"
	"commitment, and the audit entries; prints each check and the disclosed\n"
	"messages, and a verdict. Exit status 0 only when every check passes.\n"
	"\n"
	"Options:\n"
	"  --root KEYFILE  the organisation root PUBLIC key to check against: a\n"
	"                  root key file as helplinectl init writes it, or a file\n"
	"                  holding the key in base64url or hex. Without it the\n"
	"                  key carried in the bundle is used, and the output says\n"
	"                  that it must be compared with the published one.\n"
	"  --help          show this help\n"
	"Global options are ignored: nothing but FILE and KEYFILE is read.\n";

static const char list_devices_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] list-devices [--json]\n"
	"Lists staff devices: id, owner, state (waiting, certified, revoked) and\n"
	"role of the certificate.\n"
	"\n"
	"Options:\n"
	"  --json   one JSON array\n"
	"  --help   show this help\n";

static const char inbox_key_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] inbox-key set KEY [--replace]\n"
	"       helplinectl [GLOBAL OPTIONS] inbox-key show\n"
	"Sets or shows the team inbox public key: the X25519 key (32 bytes,\n"
	"base64url; one that starts with '-' goes after '--': set -- KEY)\n"
	"young people seal out-of-hours messages to. Its secret key\n"
	"stays with the staff console; the server never has it. Replacing the\n"
	"key (--replace) leaves messages sealed to the old one readable only\n"
	"with the old secret key. helplined reads the key when it starts.\n"
	"\n"
	"Options:\n"
	"  --replace   replace a key that is already set\n"
	"  --help      show this help\n";

static const char audit_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] audit verify\n"
	"Recomputes the audit log's hash chain from the first entry and reports\n"
	"  audit chain ok: N entries, head HEX            (exit 0)\n"
	"  audit chain BROKEN at seq N: WHY               (exit 1)\n"
	"Reads on a read-only connection; changes nothing.\n"
	"\n"
	"Options:\n"
	"  --help   show this help\n";

static const char stats_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] stats --from DAY --to DAY "
	"[--by day|hour]\n"
	"Prints statistics of the conversations that started from DAY to DAY\n"
	"(both included; UTC; DAY is YYYY-MM-DD) as CSV on stdout, one number\n"
	"per line: period_start,metric,key,value. Only counts and time\n"
	"distributions, per UTC day or hour: never a conversation or its id.\n"
	"At most 366 days by day, 31 days by hour. Reads on a read-only\n"
	"connection; changes nothing.\n"
	"\n"
	"Options:\n"
	"  --from DAY      first day (required)\n"
	"  --to DAY        last day, included (required)\n"
	"  --by day|hour   period length (default day)\n"
	"  --help          show this help\n";

/* ---- store jobs --------------------------------------------------------- */

typedef int (*ctl_fn)(struct ctl *c, sqlite3_stmt *const *stmts, void *arg);

/* One operation run on the store's writer thread. */
struct ctl_job {
	struct hl_store_job job;
	struct ctl *c;
	ctl_fn fn;
	void *arg;
	bool done;
	int status;
};

static int ctl_job_exec(struct hl_store_job *job, sqlite3 *db,
			sqlite3_stmt *const *stmts)
{
	struct ctl_job *j = hl_container_of(job, struct ctl_job, job);

	(void)db;
	return j->fn(j->c, stmts, j->arg);
}

static void ctl_job_done(struct hl_store_job *job, int status)
{
	struct ctl_job *j = hl_container_of(job, struct ctl_job, job);

	j->status = status;
	j->done = true;
}

/* Runs fn(c, stmts, arg) as one store job (its own transaction) and waits
 * for its fate. Returns the job's status. */
static int run_job(struct ctl *c, ctl_fn fn, void *arg)
{
	struct ctl_job j;
	int rc;

	memset(&j, 0, sizeof(j));
	j.job.exec = ctl_job_exec;
	j.job.done = ctl_job_done;
	j.c = c;
	j.fn = fn;
	j.arg = arg;
	rc = hl_store_submit(&c->store, &j.job);
	if (rc != 0)
		return rc;
	while (!j.done)
		uv_run(&c->loop, UV_RUN_ONCE);
	return j.status;
}

/* ---- opening and closing ------------------------------------------------ */

/* Opens the store (applying migrations). With must_exist, a missing
 * database is an error rather than created. Returns 0 or EXIT_FAIL. */
static int open_store(struct ctl *c, bool must_exist)
{
	char err[1024];
	struct stat sb;
	int rc;

	if (must_exist && stat(c->db, &sb) != 0) {
		errorf("no database at %s (run 'helplinectl init' or start "
		       "helplined first, or pass --db)", c->db);
		return EXIT_FAIL;
	}
	if (!must_exist && c->db_derived && mkdir(c->state_dir, 0700) != 0 &&
	    errno != EEXIST) {
		errorf("cannot create state directory %s: %s", c->state_dir,
		       strerror(errno));
		return EXIT_FAIL;
	}
	if (uv_loop_init(&c->loop) != 0) {
		errorf("cannot start an event loop");
		return EXIT_FAIL;
	}
	c->loop_open = true;
	rc = hl_store_open(&c->store, &c->loop, c->db, NULL, err, sizeof(err));
	if (rc != 0) {
		errorf("%s", err);
		return EXIT_FAIL;
	}
	c->store_open = true;
	return 0;
}

/* Loads the key file; create for init only (elsewhere a missing file means
 * a wrong path, and a new key would not match the database). */
static int load_keys(struct ctl *c, bool create)
{
	char err[1024];
	int rc;

	rc = hl_keys_load(&c->keys, c->keyfile, create, err, sizeof(err));
	if (rc == HL_ENOTFOUND) {
		errorf("no key file at %s (helplined creates it at its first "
		       "start, 'helplinectl init' too; or pass --key-file)",
		       c->keyfile);
		return EXIT_FAIL;
	}
	if (rc != 0) {
		errorf("%s", err);
		return EXIT_FAIL;
	}
	c->keys_loaded = true;
	return 0;
}

static void ctl_close(struct ctl *c)
{
	if (c->store_open) {
		hl_store_close(&c->store);
		c->store_open = false;
	}
	if (c->loop_open) {
		uv_run(&c->loop, UV_RUN_DEFAULT);
		if (uv_loop_close(&c->loop) != 0)
			hl_warn("ctl.loop_busy", "handles left open");
		c->loop_open = false;
	}
	if (c->keys_loaded) {
		hl_keys_wipe(&c->keys);
		c->keys_loaded = false;
	}
}

/* Maps a job's status to a message and exit code when it failed. */
static int job_failed(struct ctl *c, int status, const char *what)
{
	if (c->msg[0])
		errorf("%s", c->msg);
	else
		errorf("%s failed: %s", what, hl_strerror(status));
	return EXIT_FAIL;
}

/* ---- argument parsing --------------------------------------------------- */

/* True for an argument that is surely a base64url value, not a mistyped
 * option: '-' then 15 or more characters of that alphabet. */
static bool looks_like_value(const char *arg)
{
	size_t n = strlen(arg);

	if (n < 16 || arg[0] != '-' || arg[1] == '-')
		return false;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)arg[i]) && arg[i] != '-' &&
		    arg[i] != '_')
			return false;
	return true;
}

/* Parses a command's options with getopt_long over argv (argv[0] is the
 * command name). Returns the option character, -1 at the end, or '?' after
 * printing a usage error. */
static int next_opt(struct ctl *c, int argc, char **argv,
		    const struct option *opts)
{
	int ch = getopt_long(argc, argv, ":", opts, NULL);

	const char *value = NULL;

	/* A base64url key or code may well start with '-'; getopt then
	 * takes it for a cluster of options (and, permuting argv, may name
	 * another argument), so look for one among the arguments. */
	for (int i = 1; ch == '?' && !value && i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (looks_like_value(argv[i]))
			value = argv[i];
	}
	if (value) {
		errorf("%s: '%s' reads as options: a value that starts with "
		       "'-' goes after '--' (helplinectl %s ... -- %s)",
		       c->cmd, value, c->cmd, value);
	} else if (ch == '?') {
		errorf("%s: unknown option '%s' (see helplinectl %s --help)",
		       c->cmd, argv[optind - 1], c->cmd);
	} else if (ch == ':') {
		errorf("%s: option '%s' needs a value (see helplinectl %s "
		       "--help)", c->cmd, argv[optind - 1], c->cmd);
		ch = '?';
	}
	return ch;
}

/* Checks the number of positional arguments left after the options. */
static int want_args(struct ctl *c, int argc, char **argv, int min, int max)
{
	int n = argc - optind;

	if (n < min) {
		errorf("%s: missing argument (see helplinectl %s --help)",
		       c->cmd, c->cmd);
		return EXIT_USAGE;
	}
	if (n > max) {
		errorf("%s: unexpected argument '%s' (see helplinectl %s "
		       "--help)", c->cmd, argv[optind + max], c->cmd);
		return EXIT_USAGE;
	}
	return 0;
}

/* Options of the commands that take only --help. */
static const struct option help_only[] = {
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* Parses a command that takes --help and exactly one USERNAME. Returns -1
 * to go on (with *user set), or the exit code. */
static int parse_user_cmd(struct ctl *c, int argc, char **argv,
			  const char *usage, const char **user)
{
	int ch, rc;

	while ((ch = next_opt(c, argc, argv, help_only)) != -1) {
		if (ch == 'h') {
			fputs(usage, stdout);
			return 0;
		}
		return EXIT_USAGE;
	}
	rc = want_args(c, argc, argv, 1, 1);
	if (rc != 0)
		return rc;
	*user = argv[optind];
	return -1;
}

/* ---- formatting --------------------------------------------------------- */

/* "2024-05-01 12:00:00Z", or "-" for 0. */
static void fmt_time(int64_t t, char *buf, size_t cap)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t == 0 || !gmtime_r(&tt, &tm) ||
	    strftime(buf, cap, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
		snprintf(buf, cap, "-");
}

static void fmt_roles(unsigned roles, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s%s%s%s%s",
		 roles & HL_STAFF_COUNSELLOR ? "counsellor" : "",
		 (roles & HL_STAFF_COUNSELLOR) && (roles & ~HL_STAFF_COUNSELLOR)
			 ? "," : "",
		 roles & HL_STAFF_SUPERVISOR ? "supervisor" : "",
		 (roles & HL_STAFF_SUPERVISOR) && (roles & HL_STAFF_ADMIN)
			 ? "," : "",
		 roles & HL_STAFF_ADMIN ? "admin" : "");
}

/* A JSON array of the comma-separated items of list ("" gives []). */
static json_t *json_list(const char *list)
{
	json_t *a = json_array();
	const char *p = list, *comma;

	while (a && p && *p) {
		comma = strchr(p, ',');
		json_array_append_new(a, json_stringn(p, comma ?
					(size_t)(comma - p) : strlen(p)));
		p = comma ? comma + 1 : NULL;
	}
	return a;
}

/* Prints a JSON value on its own line and frees it. */
static int print_json(json_t *v)
{
	char *s;

	if (!v)
		return EXIT_FAIL;
	s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(v);
	if (!s)
		return EXIT_FAIL;
	puts(s);
	free(s);
	return 0;
}

static void print_code(const char *username, const char *code, int64_t now)
{
	char until[32];

	fmt_time(now + HL_ENROL_TTL_S, until, sizeof(until));
	printf("enrolment code: %s\n"
	       "Give it to %s in person or over a channel you trust. In the\n"
	       "staff console they choose \"Enrol with your code\", enter the\n"
	       "code, choose a password and add the account to an\n"
	       "authenticator app (TOTP).\n"
	       "The code works once and expires at %s (72 hours).\n",
	       code, username, until);
}

/* ---- shared job pieces -------------------------------------------------- */

/* Looks username up; sets c->msg when there is no such account. */
static int find_user(struct ctl *c, sqlite3_stmt *const *stmts,
		     const char *username, struct hl_staff *out)
{
	int rc = hl_staff_get_by_username(stmts, username, out);

	if (rc == HL_ENOTFOUND)
		snprintf(c->msg, sizeof(c->msg), "no such staff member: %s",
			 username);
	return rc;
}

/* Reads org_key name into buf (cap bytes). Returns its length, 0 when
 * absent, or a negative status. */
static int org_key_get(sqlite3_stmt *const *stmts, const char *name,
		       unsigned char *buf, size_t cap)
{
	sqlite3_stmt *s = stmts[HL_STMT_ORG_KEY_GET];
	int rc, n = 0;

	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		n = sqlite3_column_bytes(s, 0);
		if ((size_t)n > cap || n == 0)
			n = HL_ESTORE;
		else
			memcpy(buf, sqlite3_column_blob(s, 0), (size_t)n);
	} else if (rc != SQLITE_DONE) {
		n = hl_store_sqlite_status(rc);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return n;
}

static int org_key_put(sqlite3_stmt *const *stmts, const char *name,
		       const unsigned char *v, size_t len, int64_t now)
{
	sqlite3_stmt *s = stmts[HL_STMT_ORG_KEY_PUT];
	int rc;

	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, v, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, now);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : hl_store_sqlite_status(rc);
}

/*
 * When the organisation is initialised, checks that the loaded key file is
 * the one the database was sealed with (the STAMP secret key opens), so a
 * wrong --key-file cannot issue enrolment codes the daemon will never
 * accept. Sets c->msg and returns HL_EINVAL when it is not.
 */
static int check_key_file(struct ctl *c, sqlite3_stmt *const *stmts)
{
	unsigned char sealed[crypto_sign_SECRETKEYBYTES + HL_SEAL_OVERHEAD];
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	int n, rc;

	n = org_key_get(stmts, "stamp_sk_sealed", sealed, sizeof(sealed));
	if (n <= 0)
		return n;  /* not initialised (0) or a store error */
	if (n != (int)sizeof(sealed)) {
		snprintf(c->msg, sizeof(c->msg),
			 "org_key stamp_sk_sealed has the wrong size");
		return HL_EINVAL;
	}
	rc = hl_keys_open(&c->keys, sealed, sizeof(sealed), "stamp_sk", sk);
	sodium_memzero(sk, sizeof(sk));
	if (rc != 0) {
		snprintf(c->msg, sizeof(c->msg),
			 "key file %s does not match database %s (its sealed "
			 "keys do not open): pass the right --key-file",
			 c->keyfile, c->db);
		return HL_EINVAL;
	}
	return 0;
}

static int check_key_job(struct ctl *c, sqlite3_stmt *const *stmts,
			 void *arg)
{
	(void)arg;
	return check_key_file(c, stmts);
}

/* ---- init --------------------------------------------------------------- */

/* What init found and made. */
struct init_state {
	int present;                         /* org_key rows found, 0..4 */
	char missing[64];                    /* names of the missing ones */
	unsigned char root_pk[crypto_sign_PUBLICKEYBYTES];
	bool have_root_pk;
	/* For the write: */
	unsigned char stamp_pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char stamp_sk[crypto_sign_SECRETKEYBYTES];
	unsigned char cert[HL_CERT_MAX];
	size_t cert_len;
	char root_b64[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES,
		sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	char stamp_b64[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES,
		sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	/* The EVIDENCE key (evidence.h), made with the others. */
	unsigned char ev_pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char ev_sk[crypto_sign_SECRETKEYBYTES];
	unsigned char ev_cert[HL_CERT_MAX];
	size_t ev_cert_len;
	bool have_evidence;                  /* evidence_cert found */
};

static int init_check(struct ctl *c, sqlite3_stmt *const *stmts, void *arg)
{
	struct init_state *is = arg;
	unsigned char buf[HL_CERT_MAX + HL_SEAL_OVERHEAD];
	int n;

	(void)c;
	is->present = 0;
	is->missing[0] = '\0';
	n = org_key_get(stmts, "evidence_cert", buf, sizeof(buf));
	if (n < 0)
		return n;
	is->have_evidence = n > 0;
	for (size_t i = 0; i < N_ORG_KEYS; i++) {
		n = org_key_get(stmts, org_key_names[i], buf, sizeof(buf));
		if (n < 0)
			return n;
		if (n > 0) {
			is->present++;
			if (i == 0 && n == crypto_sign_PUBLICKEYBYTES) {
				memcpy(is->root_pk, buf, sizeof(is->root_pk));
				is->have_root_pk = true;
			}
		} else {
			size_t l = strlen(is->missing);

			snprintf(is->missing + l, sizeof(is->missing) - l,
				 "%s%s", l ? ", " : "", org_key_names[i]);
		}
	}
	return 0;
}

/* Writes the EVIDENCE key's rows (org_key evidence_pk, evidence_sk_sealed,
 * evidence_cert); plain INSERTs, so a second writer rolls back. */
static int evidence_put(struct ctl *c, sqlite3_stmt *const *stmts,
			const struct init_state *is)
{
	unsigned char sealed[crypto_sign_SECRETKEYBYTES + HL_SEAL_OVERHEAD];
	int rc;

	hl_keys_seal(&c->keys, is->ev_sk, sizeof(is->ev_sk), "evidence_sk",
		     sealed);
	rc = org_key_put(stmts, "evidence_pk", is->ev_pk, sizeof(is->ev_pk),
			 c->now);
	if (rc == 0)
		rc = org_key_put(stmts, "evidence_sk_sealed", sealed,
				 sizeof(sealed), c->now);
	if (rc == 0)
		rc = org_key_put(stmts, "evidence_cert", is->ev_cert,
				 is->ev_cert_len, c->now);
	return rc;
}

static int init_write(struct ctl *c, sqlite3_stmt *const *stmts, void *arg)
{
	struct init_state *is = arg;
	unsigned char sealed[crypto_sign_SECRETKEYBYTES + HL_SEAL_OVERHEAD];
	char detail[256], ev_b64[sodium_base64_ENCODED_LEN(
		crypto_sign_PUBLICKEYBYTES,
		sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	struct hl_audit_entry e;
	int rc;

	/* Plain INSERTs: if another helplinectl initialised meanwhile, the
	 * primary key refuses and this job rolls back whole. */
	hl_keys_seal(&c->keys, is->stamp_sk, sizeof(is->stamp_sk), "stamp_sk",
		     sealed);
	rc = org_key_put(stmts, "root_pk", is->root_pk, sizeof(is->root_pk),
			 c->now);
	if (rc == 0)
		rc = org_key_put(stmts, "stamp_pk", is->stamp_pk,
				 sizeof(is->stamp_pk), c->now);
	if (rc == 0)
		rc = org_key_put(stmts, "stamp_sk_sealed", sealed,
				 sizeof(sealed), c->now);
	if (rc == 0)
		rc = org_key_put(stmts, "stamp_cert", is->cert, is->cert_len,
				 c->now);
	if (rc == 0)
		rc = evidence_put(c, stmts, is);
	if (rc == HL_ECONSTRAINT)
		snprintf(c->msg, sizeof(c->msg),
			 "database %s was initialised by someone else meanwhile",
			 c->db);
	if (rc != 0)
		return rc;
	/* base64url needs no JSON escaping. */
	sodium_bin2base64(ev_b64, sizeof(ev_b64), is->ev_pk, sizeof(is->ev_pk),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	snprintf(detail, sizeof(detail),
		 "{\"root_pk\":\"%s\",\"stamp_pk\":\"%s\","
		 "\"evidence_pk\":\"%s\"}", is->root_b64, is->stamp_b64, ev_b64);
	memset(&e, 0, sizeof(e));
	e.at_ms = c->now * 1000;
	e.action = "org.init";
	e.detail = detail;
	return hl_audit_append(stmts, &e, NULL) == 0 ? 0 : HL_ESTORE;
}

/* Writes the root key file: a new file (O_EXCL, 0600) holding JSON. */
static int write_root_key(const char *path, const unsigned char *pk,
			  const unsigned char *sk)
{
	char pk64[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES,
		sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	char sk64[sodium_base64_ENCODED_LEN(crypto_sign_SECRETKEYBYTES,
		sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	char json[512];
	int fd, n, rc = 0;
	ssize_t w;

	sodium_bin2base64(pk64, sizeof(pk64), pk, crypto_sign_PUBLICKEYBYTES,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_bin2base64(sk64, sizeof(sk64), sk, crypto_sign_SECRETKEYBYTES,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	n = snprintf(json, sizeof(json),
		     "{\"type\":\"helpline-root-key\",\"version\":1,"
		     "\"public\":\"%s\",\"secret\":\"%s\"}\n", pk64, sk64);
	sodium_memzero(sk64, sizeof(sk64));

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0) {
		if (errno == EEXIST)
			errorf("%s already exists: refusing to overwrite it "
			       "(it may hold a root key); choose another "
			       "--root-key-out", path);
		else
			errorf("cannot create %s: %s", path, strerror(errno));
		sodium_memzero(json, sizeof(json));
		return EXIT_FAIL;
	}
	/* The umask may have narrowed 0600, never widened it; make sure. */
	if (fchmod(fd, 0600) != 0)
		rc = errno;
	for (int off = 0; rc == 0 && off < n; off += (int)w) {
		w = write(fd, json + off, (size_t)(n - off));
		if (w < 0 && errno == EINTR) {
			w = 0;
			continue;
		}
		if (w <= 0)
			rc = w < 0 ? errno : EIO;
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = errno;
	if (close(fd) != 0 && rc == 0)
		rc = errno;
	sodium_memzero(json, sizeof(json));
	if (rc != 0) {
		errorf("cannot write %s: %s", path, strerror(rc));
		unlink(path);
		return EXIT_FAIL;
	}
	return 0;
}

/* Makes the STAMP key pair and its certificate, signed with root_sk. */
static int make_stamp(struct ctl *c, struct init_state *is,
		      const unsigned char *root_sk)
{
	struct hl_cert cert;
	unsigned char body[HL_CERT_BODY_MAX];
	size_t body_len;

	crypto_sign_keypair(is->stamp_pk, is->stamp_sk);
	memset(&cert, 0, sizeof(cert));
	cert.role = HL_CERT_STAMP;
	cert.subject_len = (uint8_t)strlen("stamp");
	memcpy(cert.subject, "stamp", cert.subject_len);
	memcpy(cert.sign_pk, is->stamp_pk, sizeof(cert.sign_pk));
	cert.not_before = c->now;
	cert.not_after = c->now + STAMP_VALID_S;
	if (hl_cert_encode(&cert, body, sizeof(body), &body_len) != 0 ||
	    hl_cert_sign(body, body_len, root_sk, is->cert, sizeof(is->cert),
			 &is->cert_len) != 0)
		return HL_EINVAL;
	sodium_bin2base64(is->stamp_b64, sizeof(is->stamp_b64), is->stamp_pk,
			  sizeof(is->stamp_pk),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return 0;
}

static int cmd_init(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"root-key-out", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct init_state *is;
	unsigned char root_sk[crypto_sign_SECRETKEYBYTES];
	const char *out = NULL;
	int ch, rc;

	while ((ch = next_opt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'o': out = optarg; break;
		case 'h': fputs(init_usage, stdout); return 0;
		default: return EXIT_USAGE;
		}
	}
	rc = want_args(c, argc, argv, 0, 0);
	if (rc != 0)
		return rc;
	if (!out || !*out) {
		errorf("init: --root-key-out FILE is required (see helplinectl "
		       "init --help)");
		return EXIT_USAGE;
	}
	is = sodium_malloc(sizeof(*is));  /* holds the STAMP secret for a while */
	if (!is) {
		errorf("out of memory");
		return EXIT_FAIL;
	}
	memset(is, 0, sizeof(*is));
	rc = open_store(c, false);
	if (rc != 0)
		goto out;
	rc = run_job(c, init_check, is);
	if (rc != 0) {
		rc = job_failed(c, rc, "reading the organisation keys");
		goto out;
	}
	/* The key file is created only for a database that has no keys yet:
	 * an initialised one was sealed under an existing file, and a new file
	 * at a mistyped path would only be litter. */
	rc = load_keys(c, is->present == 0);
	if (rc != 0)
		goto out;
	if (is->present == N_ORG_KEYS) {
		rc = run_job(c, check_key_job, NULL);
		if (rc != 0) {
			rc = job_failed(c, rc, "checking the key file");
			goto out;
		}
		sodium_bin2base64(is->root_b64, sizeof(is->root_b64),
				  is->root_pk, sizeof(is->root_pk),
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		printf("database %s is already initialised; nothing changed.\n"
		       "root public key: %s\n", c->db,
		       is->have_root_pk ? is->root_b64 : "(unreadable)");
		if (!is->have_evidence)
			printf("It has no EVIDENCE key (it was initialised "
			       "before there was one): add it with\n"
			       "  helplinectl evidence-key --root-key FILE\n");
		rc = 0;
		goto out;
	}
	if (is->present > 0) {
		errorf("database %s is partly initialised (missing %s): "
		       "restore it from a backup", c->db, is->missing);
		rc = EXIT_FAIL;
		goto out;
	}

	crypto_sign_keypair(is->root_pk, root_sk);
	sodium_bin2base64(is->root_b64, sizeof(is->root_b64), is->root_pk,
			  sizeof(is->root_pk),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if (make_stamp(c, is, root_sk) != 0 ||
	    hl_evidence_make_key(root_sk, c->now, HL_EVIDENCE_VALID_S,
				 is->ev_pk, is->ev_sk, is->ev_cert,
				 &is->ev_cert_len) != 0) {
		sodium_memzero(root_sk, sizeof(root_sk));
		errorf("cannot make the STAMP and EVIDENCE certificates");
		rc = EXIT_FAIL;
		goto out;
	}
	/* The file first: a database naming a root key whose secret was never
	 * saved would be worse than no keys. If the write to the database then
	 * fails, the file is removed. */
	rc = write_root_key(out, is->root_pk, root_sk);
	sodium_memzero(root_sk, sizeof(root_sk));
	if (rc != 0)
		goto out;
	rc = run_job(c, init_write, is);
	if (rc != 0) {
		unlink(out);
		rc = job_failed(c, rc, "storing the organisation keys");
		goto out;
	}
	printf("organisation keys created in %s\n"
	       "root public key: %s\n"
	       "root secret key written to %s (mode 0600)\n"
	       "\n"
	       "WARNING: %s holds the organisation's root SECRET key. It is not\n"
	       "stored anywhere else. Move it offline now (e.g. to an encrypted\n"
	       "USB stick kept in a safe, with a second copy elsewhere) and\n"
	       "delete it from this machine. It is needed only to certify admin\n"
	       "devices; anyone who has it can impersonate the organisation.\n",
	       c->db, is->root_b64, out, out);
out:
	sodium_free(is);
	return rc;
}

/* ---- create-admin / create-staff ---------------------------------------- */

struct create_args {
	struct hl_staff_new n;
	int64_t id;
	char code[HL_ENROL_CODE_LEN + 1];
};

static int create_job(struct ctl *c, sqlite3_stmt *const *stmts, void *arg)
{
	struct create_args *a = arg;
	int rc;

	rc = check_key_file(c, stmts);
	if (rc != 0)
		return rc;
	rc = hl_staff_create(stmts, &c->keys, &a->n, 0, c->now, &a->id,
			     a->code);
	if (rc == HL_ECONSTRAINT)
		snprintf(c->msg, sizeof(c->msg), "username already exists: %s",
			 a->n.username);
	return rc;
}

/* Explains which field of a new account is wrong. */
static void field_error(const char *field)
{
	static const struct {
		const char *field, *why;
	} why[] = {
		{"username", "3 to 32 characters of a-z 0-9 . _ -, starting "
			     "with a letter"},
		{"display_name", "--name must be 1 to 64 bytes of UTF-8 "
				 "without control characters"},
		{"roles", "no valid role"},
		{"languages", "--languages must be comma-separated tags like "
			      "en or pt-BR"},
		{"skills", "--skills must be comma-separated words of a-z "
			   "0-9 _"},
		{"capacity", "--capacity must be 0 to 20"},
	};

	for (size_t i = 0; i < HL_ARRAY_LEN(why); i++) {
		if (field && strcmp(field, why[i].field) == 0) {
			errorf("invalid %s: %s", field, why[i].why);
			return;
		}
	}
	errorf("invalid account fields");
}

/* Validates, creates and prints the code. */
static int create_account(struct ctl *c, struct create_args *a)
{
	const char *field = NULL;
	char roles[64];
	int rc;

	if (hl_staff_validate(&a->n, &field) != 0) {
		field_error(field);
		return EXIT_FAIL;
	}
	rc = open_store(c, true);
	if (rc == 0)
		rc = load_keys(c, false);
	if (rc != 0)
		return rc;
	rc = run_job(c, create_job, a);
	if (rc != 0)
		return job_failed(c, rc, "creating the account");
	fmt_roles(a->n.roles, roles, sizeof(roles));
	printf("created %s (id %" PRId64 ", roles %s), pending enrolment\n",
	       a->n.username, a->id, roles);
	print_code(a->n.username, a->code, c->now);
	sodium_memzero(a->code, sizeof(a->code));
	return 0;
}

/* Parses a --capacity value. */
static int parse_capacity(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 20)
		return -1;
	*out = (int)v;
	return 0;
}

static int cmd_create_admin(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"name", required_argument, NULL, 'n'},
		{"languages", required_argument, NULL, 'l'},
		{"supervisor", no_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct create_args a;
	int ch, rc;

	memset(&a, 0, sizeof(a));
	a.n.roles = HL_STAFF_ADMIN;
	a.n.languages = "";
	a.n.skills = "";
	a.n.capacity = 0;  /* admins do not take chats unless given capacity */
	while ((ch = next_opt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'n': a.n.display_name = optarg; break;
		case 'l': a.n.languages = optarg; break;
		case 's': a.n.roles |= HL_STAFF_SUPERVISOR; break;
		case 'h': fputs(create_admin_usage, stdout); return 0;
		default: return EXIT_USAGE;
		}
	}
	rc = want_args(c, argc, argv, 1, 1);
	if (rc != 0)
		return rc;
	a.n.username = argv[optind];
	if (!a.n.display_name)
		a.n.display_name = a.n.username;
	return create_account(c, &a);
}

/* Parses --role: counsellor, supervisor or both, comma-separated. */
static int parse_roles(const char *s, unsigned *out)
{
	char buf[64];
	char *save = NULL, *tok;

	*out = 0;
	if (snprintf(buf, sizeof(buf), "%s", s) >= (int)sizeof(buf))
		return -1;
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (strcmp(tok, "counsellor") == 0)
			*out |= HL_STAFF_COUNSELLOR;
		else if (strcmp(tok, "supervisor") == 0)
			*out |= HL_STAFF_SUPERVISOR;
		else
			return -1;
	}
	return *out ? 0 : -1;
}

static int cmd_create_staff(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"role", required_argument, NULL, 'r'},
		{"name", required_argument, NULL, 'n'},
		{"languages", required_argument, NULL, 'l'},
		{"skills", required_argument, NULL, 'k'},
		{"capacity", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct create_args a;
	const char *role = NULL;
	int ch, rc;

	memset(&a, 0, sizeof(a));
	a.n.languages = "";
	a.n.skills = "";
	a.n.capacity = 2;
	while ((ch = next_opt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'r': role = optarg; break;
		case 'n': a.n.display_name = optarg; break;
		case 'l': a.n.languages = optarg; break;
		case 'k': a.n.skills = optarg; break;
		case 'c':
			if (parse_capacity(optarg, &a.n.capacity) != 0) {
				errorf("create-staff: --capacity must be a "
				       "number from 0 to 20, not '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h': fputs(create_staff_usage, stdout); return 0;
		default: return EXIT_USAGE;
		}
	}
	rc = want_args(c, argc, argv, 1, 1);
	if (rc != 0)
		return rc;
	if (!role) {
		errorf("create-staff: --role counsellor|supervisor is required "
		       "(see helplinectl create-staff --help)");
		return EXIT_USAGE;
	}
	if (parse_roles(role, &a.n.roles) != 0) {
		errorf("create-staff: --role must be counsellor, supervisor or "
		       "counsellor,supervisor, not '%s' (admins: create-admin)",
		       role);
		return EXIT_USAGE;
	}
	a.n.username = argv[optind];
	if (!a.n.display_name)
		a.n.display_name = a.n.username;
	return create_account(c, &a);
}

/* ---- list-staff --------------------------------------------------------- */

/* A growable array of staff rows, filled on the writer thread. */
struct staff_list {
	struct hl_staff *v;
	size_t n, cap;
	bool oom;
};

static void collect_staff(const struct hl_staff *s, void *arg)
{
	struct staff_list *l = arg;
	struct hl_staff *p;

	if (l->oom)
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;

		p = realloc(l->v, cap * sizeof(*p));
		if (!p) {
			l->oom = true;
			return;
		}
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n] = *s;
	/* The listing never needs credentials: keep no copy of them. */
	sodium_memzero(l->v[l->n].pw_hash, sizeof(l->v[l->n].pw_hash));
	sodium_memzero(l->v[l->n].totp_sealed, sizeof(l->v[l->n].totp_sealed));
	l->v[l->n].pw_hash[0] = s->pw_hash[0] ? '*' : '\0';
	l->n++;
}

static int list_job(struct ctl *c, sqlite3_stmt *const *stmts, void *arg)
{
	struct staff_list *l = arg;
	int rc;

	(void)c;
	rc = hl_staff_each(stmts, collect_staff, l);
	return rc == 0 && l->oom ? HL_ENOMEM : rc;
}

static void staff_list_free(struct staff_list *l)
{
	if (l->v)
		sodium_memzero(l->v, l->cap * sizeof(*l->v));
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* "active", "pending", "disabled", with " (locked)" while locked. */
static void fmt_state(const struct hl_staff *s, int64_t now, char *buf,
		      size_t cap)
{
	snprintf(buf, cap, "%s%s", hl_staff_state_name(s->state),
		 s->locked_until > now ? " (locked)" : "");
}

static int print_staff_json(struct ctl *c, const struct staff_list *l)
{
	json_t *a = json_array(), *o;

	for (size_t i = 0; a && i < l->n; i++) {
		const struct hl_staff *s = &l->v[i];
		json_t *roles = json_array();

		if (s->roles & HL_STAFF_COUNSELLOR)
			json_array_append_new(roles, json_string("counsellor"));
		if (s->roles & HL_STAFF_SUPERVISOR)
			json_array_append_new(roles, json_string("supervisor"));
		if (s->roles & HL_STAFF_ADMIN)
			json_array_append_new(roles, json_string("admin"));
		o = json_pack("{sI ss ss so ss si so so sb sb si sI}",
			      "id", (json_int_t)s->id,
			      "username", s->username,
			      "display_name", s->display_name,
			      "roles", roles,
			      "state", hl_staff_state_name(s->state),
			      "capacity", s->capacity,
			      "languages", json_list(s->languages),
			      "skills", json_list(s->skills),
			      "has_password", s->pw_hash[0] != '\0',
			      "has_totp", s->has_totp,
			      "failed_logins", s->failed_logins,
			      "locked_until", (json_int_t)(s->locked_until > c->now ?
						  s->locked_until : 0));
		if (!o || json_array_append_new(a, o) != 0) {
			json_decref(a);
			a = NULL;
		}
	}
	return print_json(a);
}

static int print_staff_table(struct ctl *c, const struct staff_list *l)
{
	static const char *const head[] = {
		"ID", "USERNAME", "DISPLAY NAME", "ROLES", "STATE", "CAPACITY",
		"LANGUAGES",
	};
	enum { NCOL = 7 };
	int w[NCOL];
	char id[24], roles[64], state[32], cap[16];

	for (int k = 0; k < NCOL; k++)
		w[k] = (int)strlen(head[k]);
	for (size_t i = 0; i < l->n; i++) {
		const struct hl_staff *s = &l->v[i];
		const char *col[NCOL];

		snprintf(id, sizeof(id), "%" PRId64, s->id);
		fmt_roles(s->roles, roles, sizeof(roles));
		fmt_state(s, c->now, state, sizeof(state));
		snprintf(cap, sizeof(cap), "%d", s->capacity);
		col[0] = id; col[1] = s->username; col[2] = s->display_name;
		col[3] = roles; col[4] = state; col[5] = cap;
		col[6] = s->languages;
		for (int k = 0; k < NCOL; k++)
			if ((int)strlen(col[k]) > w[k])
				w[k] = (int)strlen(col[k]);
	}
	printf("%-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %s\n", w[0], head[0], w[1],
	       head[1], w[2], head[2], w[3], head[3], w[4], head[4], w[5],
	       head[5], head[6]);
	for (size_t i = 0; i < l->n; i++) {
		const struct hl_staff *s = &l->v[i];

		snprintf(id, sizeof(id), "%" PRId64, s->id);
		fmt_roles(s->roles, roles, sizeof(roles));
		fmt_state(s, c->now, state, sizeof(state));
		snprintf(cap, sizeof(cap), "%d", s->capacity);
		printf("%-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %s\n", w[0], id,
		       w[1], s->username, w[2], s->display_name, w[3], roles,
		       w[4], state, w[5], cap,
		       s->languages[0] ? s->languages : "-");
	}
	if (l->n == 0)
		printf("(no staff accounts yet: helplinectl create-admin)\n");
	return 0;
}

static int cmd_list_staff(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct staff_list l;
	bool json = false;
	int ch, rc;

	while ((ch = next_opt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'j': json = true; break;
		case 'h': fputs(list_staff_usage, stdout); return 0;
		default: return EXIT_USAGE;
		}
	}
	rc = want_args(c, argc, argv, 0, 0);
	if (rc != 0)
		return rc;
	rc = open_store(c, true);
	if (rc != 0)
		return rc;
	memset(&l, 0, sizeof(l));
	rc = run_job(c, list_job, &l);
	if (rc != 0)
		rc = job_failed(c, rc, "listing staff");
	else
		rc = json ? print_staff_json(c, &l) : print_staff_table(c, &l);
	staff_list_free(&l);
	return rc;
}

/* ---- disable / enable --------------------------------------------------- */

struct state_args {
	const char *username;
	enum hl_staff_state want;
	struct hl_staff row;   /* after the change */
};

static int state_job(struct ctl *c, sqlite3_stmt *const *stmts, void *arg)
{
	struct state_args *a = arg;
	int rc;

	rc = find_user(c, stmts, a->username, &a->row);
	if (rc == 0)
		rc = hl_staff_set_state(stmts, a->row.id, a->want, 0, c->now);
	if (rc == 0)
		rc = hl_staff_get(stmts, a->row.id, &a->row);
	return rc;
}

static int cmd_set_state(struct ctl *c, int argc, char **argv,
			 enum hl_staff_state want)
{
	struct state_args a;
	int rc;

	memset(&a, 0, sizeof(a));
	a.want = want;
	rc = parse_user_cmd(c, argc, argv, want == HL_STAFF_DISABLED ?
			    disable_usage : enable_usage, &a.username);
	if (rc >= 0)
		return rc;
	rc = open_store(c, true);
	if (rc != 0)
		return rc;
	rc = run_job(c, state_job, &a);
	if (rc != 0) {
		rc = job_failed(c, rc, want == HL_STAFF_DISABLED ?
				"disabling the account" :
				"enabling the account");
	} else if (want == HL_STAFF_DISABLED) {
		printf("%s is disabled; their sessions have ended\n",
		       a.username);
	} else {
		printf("%s is enabled (state: %s%s)\n", a.username,
		       hl_staff_state_name(a.row.state),
		       a.row.state == HL_STAFF_PENDING ?
		       ", enrolment not finished" : "");
	}
	sodium_memzero(&a.row, sizeof(a.row));
	return rc;
}

static int cmd_disable(struct ctl *c, int argc, char **argv)
{
	return cmd_set_state(c, argc, argv, HL_STAFF_DISABLED);
}

static int cmd_enable(struct ctl *c, int argc, char **argv)
{
	return cmd_set_state(c, argc, argv, HL_STAFF_ACTIVE);
}

/* ---- reset-password / reset-totp ---------------------------------------- */

struct reset_args {
	const char *username;
	bool password, totp;
	char code[HL_ENROL_CODE_LEN + 1];
};

static int reset_job(struct ctl *c, sqlite3_stmt *const *stmts, void *arg)
{
	struct reset_args *a = arg;
	struct hl_staff row;
	int rc;

	rc = check_key_file(c, stmts);
	if (rc == 0)
		rc = find_user(c, stmts, a->username, &row);
	if (rc == 0)
		rc = hl_staff_reset(stmts, &c->keys, row.id, a->password,
				    a->totp, 0, c->now, a->code);
	sodium_memzero(&row, sizeof(row));
	return rc;
}

static int cmd_reset(struct ctl *c, int argc, char **argv, bool password)
{
	struct reset_args a;
	int rc;

	memset(&a, 0, sizeof(a));
	a.password = password;
	a.totp = !password;
	rc = parse_user_cmd(c, argc, argv, password ? reset_password_usage :
			    reset_totp_usage, &a.username);
	if (rc >= 0)
		return rc;
	rc = open_store(c, true);
	if (rc == 0)
		rc = load_keys(c, false);
	if (rc != 0)
		return rc;
	rc = run_job(c, reset_job, &a);
	if (rc != 0)
		return job_failed(c, rc, "resetting the account");
	printf("%s's %s is cleared and their sessions have ended; they must "
	       "enrol again\n", a.username,
	       password ? "password" : "authenticator (TOTP)");
	print_code(a.username, a.code, c->now);
	sodium_memzero(a.code, sizeof(a.code));
	return 0;
}

static int cmd_reset_password(struct ctl *c, int argc, char **argv)
{
	return cmd_reset(c, argc, argv, true);
}

static int cmd_reset_totp(struct ctl *c, int argc, char **argv)
{
	return cmd_reset(c, argc, argv, false);
}

/* ---- sessions / revoke-sessions ----------------------------------------- */

struct sessions_args {
	const char *username;     /* NULL = everyone */
	struct staff_list staff;  /* for id -> username */
	struct hl_session_row *v;
	size_t n, cap;
	bool oom;
};

static void collect_session(const struct hl_session_row *r, void *arg)
{
	struct sessions_args *a = arg;
	struct hl_session_row *p;

	if (a->oom)
		return;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;

		p = realloc(a->v, cap * sizeof(*p));
		if (!p) {
			a->oom = true;
			return;
		}
		a->v = p;
		a->cap = cap;
	}
	a->v[a->n++] = *r;
}

static int sessions_job(struct ctl *c, sqlite3_stmt *const *stmts, void *arg)
{
	struct sessions_args *a = arg;
	struct hl_staff row;
	int64_t id = 0;
	int rc;

	if (a->username) {
		rc = find_user(c, stmts, a->username, &row);
		if (rc != 0)
			return rc;
		id = row.id;
		sodium_memzero(&row, sizeof(row));
	}
	rc = hl_staff_each(stmts, collect_staff, &a->staff);
	if (rc == 0)
		rc = hl_session_each_row(stmts, id, collect_session, a);
	if (rc == 0 && (a->oom || a->staff.oom))
		rc = HL_ENOMEM;
	return rc;
}

static const char *username_of(const struct sessions_args *a, int64_t id)
{
	for (size_t i = 0; i < a->staff.n; i++)
		if (a->staff.v[i].id == id)
			return a->staff.v[i].username;
	return "?";
}

static int cmd_sessions(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct sessions_args a;
	char hex[2 * HASH_PREFIX_BYTES + 1];
	char t1[32], t2[32], t3[32];
	bool json = false;
	json_t *arr = NULL, *o;
	int ch, rc;

	memset(&a, 0, sizeof(a));
	while ((ch = next_opt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'j': json = true; break;
		case 'h': fputs(sessions_usage, stdout); return 0;
		default: return EXIT_USAGE;
		}
	}
	rc = want_args(c, argc, argv, 0, 1);
	if (rc != 0)
		return rc;
	a.username = optind < argc ? argv[optind] : NULL;
	rc = open_store(c, true);
	if (rc != 0)
		return rc;
	rc = run_job(c, sessions_job, &a);
	if (rc != 0) {
		rc = job_failed(c, rc, "listing sessions");
		goto out;
	}
	if (json)
		arr = json_array();
	else
		printf("%-20s  %-8s  %-20s  %-20s  %s\n", "USERNAME", "SESSION",
		       "CREATED", "LAST SEEN", "EXPIRES");
	for (size_t i = 0; i < a.n; i++) {
		const struct hl_session_row *r = &a.v[i];

		sodium_bin2hex(hex, sizeof(hex), r->token_hash,
			       HASH_PREFIX_BYTES);
		if (json) {
			o = json_pack("{sI ss ss sI sI sI}",
				      "staff_id", (json_int_t)r->staff_id,
				      "username", username_of(&a, r->staff_id),
				      "session", hex,
				      "created_at", (json_int_t)r->created_at,
				      "last_seen", (json_int_t)r->last_seen,
				      "expires_at", (json_int_t)r->expires_at);
			if (arr && (!o || json_array_append_new(arr, o) != 0)) {
				json_decref(arr);
				arr = NULL;
			}
			continue;
		}
		fmt_time(r->created_at, t1, sizeof(t1));
		fmt_time(r->last_seen, t2, sizeof(t2));
		fmt_time(r->expires_at, t3, sizeof(t3));
		printf("%-20s  %-8s  %-20s  %-20s  %s\n",
		       username_of(&a, r->staff_id), hex, t1, t2, t3);
	}
	if (json)
		rc = print_json(arr);
	else if (a.n == 0)
		printf("(no sessions)\n");
out:
	staff_list_free(&a.staff);
	free(a.v);
	return rc;
}

struct revoke_args {
	const char *username;
	int count;
};

static int revoke_job(struct ctl *c, sqlite3_stmt *const *stmts, void *arg)
{
	struct revoke_args *a = arg;
	struct hl_staff row;
	int rc;

	rc = find_user(c, stmts, a->username, &row);
	if (rc == 0)
		rc = hl_session_revoke_all(stmts, row.id, 0, c->now, &a->count);
	sodium_memzero(&row, sizeof(row));
	return rc;
}

static int cmd_revoke_sessions(struct ctl *c, int argc, char **argv)
{
	struct revoke_args a;
	int rc;

	memset(&a, 0, sizeof(a));
	rc = parse_user_cmd(c, argc, argv, revoke_usage, &a.username);
	if (rc >= 0)
		return rc;
	rc = open_store(c, true);
	if (rc != 0)
		return rc;
	rc = run_job(c, revoke_job, &a);
	if (rc != 0)
		return job_failed(c, rc, "revoking sessions");
	printf("revoked %d session%s of %s\n", a.count, a.count == 1 ? "" : "s",
	       a.username);
	return 0;
}

/* ---- audit verify ------------------------------------------------------- */

static int cmd_audit(struct ctl *c, int argc, char **argv)
{
	struct hl_audit_report rep;
	char hex[2 * HL_AUDIT_HASH_BYTES + 1];
	struct stat sb;
	sqlite3 *db = NULL;
	int ch, rc;

	while ((ch = next_opt(c, argc, argv, help_only)) != -1) {
		if (ch == 'h') {
			fputs(audit_usage, stdout);
			return 0;
		}
		return EXIT_USAGE;
	}
	rc = want_args(c, argc, argv, 1, 1);
	if (rc != 0)
		return rc;
	if (strcmp(argv[optind], "verify") != 0) {
		errorf("audit: unknown subcommand '%s' (see helplinectl audit "
		       "--help)", argv[optind]);
		return EXIT_USAGE;
	}
	if (stat(c->db, &sb) != 0) {
		errorf("no database at %s (pass --db)", c->db);
		return EXIT_FAIL;
	}
	rc = sqlite3_open_v2(c->db, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK) {
		errorf("cannot open database %s: %s", c->db,
		       db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return EXIT_FAIL;
	}
	sqlite3_busy_timeout(db, 5000);
	memset(&rep, 0, sizeof(rep));
	rc = hl_audit_verify(db, &rep);
	sqlite3_close(db);
	if (rc == 0) {
		sodium_bin2hex(hex, sizeof(hex), rep.head, sizeof(rep.head));
		printf("audit chain ok: %" PRId64 " entries, head %s\n",
		       rep.rows, hex);
		return 0;
	}
	if (rc == HL_EINVAL) {
		printf("audit chain BROKEN at seq %" PRId64 ": %s\n",
		       rep.first_bad, rep.why);
		return EXIT_FAIL;
	}
	errorf("cannot read the audit log of %s: %s", c->db,
	       rep.why[0] ? rep.why : hl_strerror(rc));
	return EXIT_FAIL;
}

/* ---- inbox-key ------------------------------------------------------------ */

struct inbox_key_args {
	unsigned char pk[32];
	bool set, replace, found;
};

static int inbox_key_job(struct ctl *c, sqlite3_stmt *const *stmts, void *arg)
{
	struct inbox_key_args *a = arg;
	sqlite3_stmt *get = stmts[HL_STMT_ORG_KEY_GET];
	sqlite3 *db = sqlite3_db_handle(get);
	struct hl_audit_entry e = {
		.at_ms = c->now * 1000, .action = "inbox_key.set",
		.detail = a->replace ? "{\"replace\":true}" : "",
	};
	int rc;

	sqlite3_bind_text(get, 1, "inbox_box_pk", -1, SQLITE_STATIC);
	rc = sqlite3_step(get);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(get, 0) == 32) {
		a->found = true;
		if (!a->set)
			memcpy(a->pk, sqlite3_column_blob(get, 0), 32);
	}
	sqlite3_reset(get);
	sqlite3_clear_bindings(get);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return hl_store_sqlite_status(rc);
	if (!a->set)
		return 0;
	if (a->found && !a->replace) {
		snprintf(c->msg, sizeof(c->msg), "an inbox key is set already; "
			 "--replace replaces it (messages sealed to the old key "
			 "then need the old secret key)");
		return HL_ECONSTRAINT;
	}
	if (sqlite3_exec(db, "DELETE FROM org_key WHERE name='inbox_box_pk'",
			 NULL, NULL, NULL) != SQLITE_OK)
		return HL_ESTORE;
	rc = org_key_put(stmts, "inbox_box_pk", a->pk, 32, c->now);
	if (rc == 0 && hl_audit_append(stmts, &e, NULL) != 0)
		rc = HL_ESTORE;
	return rc;
}

static int cmd_inbox_key(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"replace", no_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct inbox_key_args a;
	char b64[64];
	size_t n = 0;
	int ch, rc;

	memset(&a, 0, sizeof(a));
	while ((ch = next_opt(c, argc, argv, opts)) != -1) {
		if (ch == 'h') {
			fputs(inbox_key_usage, stdout);
			return 0;
		}
		if (ch != 'r')
			return EXIT_USAGE;
		a.replace = true;
	}
	rc = want_args(c, argc, argv, 1, 2);
	if (rc != 0)
		return rc;
	if (strcmp(argv[optind], "set") == 0 && argc - optind == 2) {
		const char *k = argv[optind + 1];
		static const unsigned char zero[32];

		if (sodium_base642bin(a.pk, sizeof(a.pk), k, strlen(k), NULL, &n,
				      NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
		    n != 32 || sodium_memcmp(a.pk, zero, 32) == 0) {
			errorf("inbox-key: KEY must be an X25519 public key: 32 "
			       "bytes in base64url (43 characters)");
			return EXIT_USAGE;
		}
		a.set = true;
	} else if (strcmp(argv[optind], "show") != 0 || argc - optind != 1) {
		errorf("inbox-key: use 'set KEY' or 'show' (see helplinectl "
		       "inbox-key --help)");
		return EXIT_USAGE;
	}
	rc = open_store(c, true);
	if (rc != 0)
		return rc;
	rc = run_job(c, inbox_key_job, &a);
	if (rc != 0)
		return job_failed(c, rc, "setting the inbox key");
	if (!a.found && !a.set) {
		printf("no inbox key is set\n");
		return EXIT_FAIL;
	}
	sodium_bin2base64(b64, sizeof(b64), a.pk, 32,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	printf(a.set ? "inbox key set: %s (helplined uses it from its next "
		       "start)\n" : "%s\n", b64);
	return 0;
}

/* ---- devices ------------------------------------------------------------- */

struct device_args {
	int64_t device;
	int days;
	bool revoke;
	bool json;
	unsigned char root_pk[32], root_sk[64];
	json_t *list;
	char owner[HL_STAFF_USERNAME_MAX + 1];
};

/* Reads the root key file helplinectl init wrote; checks the secret key
 * belongs to the public one. */
static int read_root_key(const char *path, unsigned char pk[32],
			 unsigned char sk[64])
{
	json_error_t err;
	json_t *o = json_load_file(path, 0, &err);
	const char *p, *s;
	unsigned char check[32];
	size_t n1 = 0, n2 = 0;
	int rc = EXIT_FAIL;

	if (!o) {
		errorf("cannot read the root key file %s: %s", path, err.text);
		return EXIT_FAIL;
	}
	p = json_string_value(json_object_get(o, "public"));
	s = json_string_value(json_object_get(o, "secret"));
	if (!p || !s ||
	    sodium_base642bin(pk, 32, p, strlen(p), NULL, &n1, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    sodium_base642bin(sk, 64, s, strlen(s), NULL, &n2, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    n1 != 32 || n2 != 64 || crypto_sign_ed25519_sk_to_pk(check, sk) != 0 ||
	    sodium_memcmp(check, pk, 32) != 0)
		errorf("%s is not a Helpline root key file", path);
	else
		rc = 0;
	json_decref(o);
	return rc;
}

static int device_job(struct ctl *c, sqlite3_stmt *const *stmts, void *arg)
{
	struct device_args *a = arg;
	sqlite3 *db = sqlite3_db_handle(stmts[HL_STMT_ORG_KEY_GET]);
	unsigned char stored[32], sign_pk[32], box_pk[32], h[32];
	unsigned char body[HL_CERT_BODY_MAX], cert[HL_CERT_MAX];
	unsigned char rev[HL_E2E_REVOCATION];
	size_t body_len = 0, cert_len = 0;
	unsigned roles = 0;
	struct hl_cert ct;
	sqlite3_stmt *st = NULL;
	int64_t owner = 0;
	bool has_cert = false;
	int rc;
	struct hl_audit_entry e = {
		.at_ms = c->now * 1000,
		.action = a->revoke ? "device.revoke" : "device.certify",
	};
	char detail[48];

	if (org_key_get(stmts, "root_pk", stored, sizeof(stored)) != 32) {
		snprintf(c->msg, sizeof(c->msg), "this database has no "
			 "organisation root key: run helplinectl init first");
		return HL_ENOTFOUND;
	}
	if (sodium_memcmp(stored, a->root_pk, 32) != 0) {
		snprintf(c->msg, sizeof(c->msg), "the root key file is not this "
			 "organisation's root key");
		return HL_EINVAL;
	}
	if (sqlite3_prepare_v2(db, "SELECT d.staff_id, d.sign_pk, d.box_pk, "
			       "s.roles, s.username, d.cert_hash FROM device d "
			       "JOIN staff s ON s.id = d.staff_id WHERE d.id=?1 "
			       "AND d.revoked_at IS NULL", -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, a->device);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 1) == 32 &&
	    sqlite3_column_bytes(st, 2) == 32) {
		owner = sqlite3_column_int64(st, 0);
		memcpy(sign_pk, sqlite3_column_blob(st, 1), 32);
		memcpy(box_pk, sqlite3_column_blob(st, 2), 32);
		roles = (unsigned)sqlite3_column_int64(st, 3);
		snprintf(a->owner, sizeof(a->owner), "%s",
			 (const char *)sqlite3_column_text(st, 4));
		has_cert = sqlite3_column_bytes(st, 5) == 32;
		if (has_cert)
			memcpy(h, sqlite3_column_blob(st, 5), 32);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return HL_ESTORE;
	if (!owner) {
		snprintf(c->msg, sizeof(c->msg), "no live device %lld "
			 "(list-devices shows them)", (long long)a->device);
		return HL_ENOTFOUND;
	}
	e.target = owner;
	snprintf(detail, sizeof(detail), "{\"device\":%lld}",
		 (long long)a->device);
	e.detail = detail;
	if (a->revoke) {
		uint64_t at = (uint64_t)c->now;

		if (!has_cert) {
			snprintf(c->msg, sizeof(c->msg), "device %lld has no "
				 "certificate to revoke", (long long)a->device);
			return HL_EINVAL;
		}
		memcpy(rev, "helpline-revoke-v1", 18);
		memcpy(rev + 18, h, 32);
		hl_put_be64(rev + 50, at);
		crypto_sign_detached(rev + 58, NULL, rev, 58, a->root_sk);
		if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO revocation("
				       "cert_hash, statement, signer, created_at) "
				       "VALUES(?1, ?2, NULL, ?3)", -1, &st,
				       NULL) != SQLITE_OK)
			return HL_ESTORE;
		sqlite3_bind_blob(st, 1, h, 32, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, rev, sizeof(rev), SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, c->now * 1000);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return HL_ESTORE;
		if (sqlite3_prepare_v2(db, "UPDATE device SET revoked_at=?2 "
				       "WHERE id=?1", -1, &st, NULL) != SQLITE_OK)
			return HL_ESTORE;
	} else {
		if (has_cert) {
			snprintf(c->msg, sizeof(c->msg), "device %lld is "
				 "certified already", (long long)a->device);
			return HL_EINVAL;
		}
		if (!(roles & HL_STAFF_ADMIN)) {
			snprintf(c->msg, sizeof(c->msg), "device %lld belongs to "
				 "%s, who is not an admin: an admin's device "
				 "certifies staff devices", (long long)a->device,
				 a->owner);
			return HL_EINVAL;
		}
		memset(&ct, 0, sizeof(ct));
		ct.role = HL_CERT_ADMIN_DEVICE;
		hl_trust_device_subject(sign_pk, ct.subject);
		ct.subject_len = (uint8_t)strlen(ct.subject);
		memcpy(ct.sign_pk, sign_pk, 32);
		memcpy(ct.box_pk, box_pk, 32);
		ct.not_before = c->now - 300; /* clock skew */
		ct.not_after = c->now + (int64_t)a->days * 86400;
		if (hl_cert_encode(&ct, body, sizeof(body), &body_len) != 0 ||
		    hl_cert_sign(body, body_len, a->root_sk, cert, sizeof(cert),
				 &cert_len) != 0)
			return HL_EINVAL;
		hl_e2e_cert_hash(cert, cert_len, h);
		if (sqlite3_prepare_v2(db, "UPDATE device SET cert=?2, issuer=NULL, "
				       "cert_hash=?3, certified_at=?4 WHERE id=?1",
				       -1, &st, NULL) != SQLITE_OK)
			return HL_ESTORE;
		sqlite3_bind_blob(st, 2, cert, (int)cert_len, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, h, 32, SQLITE_STATIC);
	}
	sqlite3_bind_int64(st, 1, a->device);
	sqlite3_bind_int64(st, a->revoke ? 2 : 4, c->now * 1000);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return HL_ESTORE;
	return hl_audit_append(stmts, &e, NULL) == 0 ? 0 : HL_ESTORE;
}

static int device_cmd(struct ctl *c, int argc, char **argv, bool revoke)
{
	static const struct option opts[] = {
		{"root-key", required_argument, NULL, 'k'},
		{"days", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct device_args a = {.days = 365, .revoke = revoke};
	const char *key = NULL;
	char *end;
	int ch, rc;

	while ((ch = next_opt(c, argc, argv, opts)) != -1) {
		if (ch == 'h') {
			fputs(revoke ? revoke_device_usage : certify_device_usage,
			      stdout);
			return 0;
		} else if (ch == 'k') {
			key = optarg;
		} else if (ch == 'd' && !revoke) {
			long v = strtol(optarg, &end, 10);

			if (*end || v < 1 || v > 3650) {
				errorf("%s: --days must be 1-3650", c->cmd);
				return EXIT_USAGE;
			}
			a.days = (int)v;
		} else {
			if (ch == 'd')
				errorf("%s: unknown option '--days'", c->cmd);
			return EXIT_USAGE;
		}
	}
	rc = want_args(c, argc, argv, 1, 1);
	if (rc != 0)
		return rc;
	a.device = strtoll(argv[optind], &end, 10);
	if (*end || a.device < 1) {
		errorf("%s: DEVICE must be a device id (list-devices)", c->cmd);
		return EXIT_USAGE;
	}
	if (!key) {
		errorf("%s: --root-key FILE is required (see helplinectl %s "
		       "--help)", c->cmd, c->cmd);
		return EXIT_USAGE;
	}
	rc = read_root_key(key, a.root_pk, a.root_sk);
	if (rc == 0)
		rc = open_store(c, true);
	if (rc == 0) {
		rc = run_job(c, device_job, &a);
		if (rc != 0)
			rc = job_failed(c, rc, revoke ? "revoking the device"
						      : "certifying the device");
	}
	sodium_memzero(a.root_sk, sizeof(a.root_sk));
	if (rc == 0)
		printf("device %lld of %s %s\n", (long long)a.device, a.owner,
		       revoke ? "revoked" : "certified as an admin device");
	return rc;
}

static int cmd_certify_device(struct ctl *c, int argc, char **argv)
{
	return device_cmd(c, argc, argv, false);
}

static int cmd_revoke_device(struct ctl *c, int argc, char **argv)
{
	return device_cmd(c, argc, argv, true);
}

static int list_devices_job(struct ctl *c, sqlite3_stmt *const *stmts,
			    void *arg)
{
	struct device_args *a = arg;
	sqlite3 *db = sqlite3_db_handle(stmts[HL_STMT_ORG_KEY_GET]);
	sqlite3_stmt *st = NULL;
	int rc;

	(void)c;
	if (sqlite3_prepare_v2(db, "SELECT d.id, s.username, d.cert IS NOT NULL, "
			       "d.revoked_at IS NOT NULL, d.cert, d.created_at "
			       "FROM device d JOIN staff s ON s.id = d.staff_id "
			       "ORDER BY d.id", -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *cert = sqlite3_column_blob(st, 4);
		int n = sqlite3_column_bytes(st, 4);
		static const char *const roles[] = {"", "stamp", "admin",
						    "counsellor", "supervisor"};
		int role = cert && n > HL_CERT_MAGIC_LEN ? cert[HL_CERT_MAGIC_LEN] : 0;

		json_array_append_new(a->list, json_pack(
			"{s:I, s:s, s:s, s:s, s:I}",
			"device", (json_int_t)sqlite3_column_int64(st, 0),
			"owner", (const char *)sqlite3_column_text(st, 1),
			"state", sqlite3_column_int(st, 3) ? "revoked"
				 : sqlite3_column_int(st, 2) ? "certified" : "waiting",
			"role", role >= 1 && role <= 4 ? roles[role] : "",
			"created_at", (json_int_t)sqlite3_column_int64(st, 5)));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : HL_ESTORE;
}

static int cmd_list_devices(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct device_args a = {0};
	size_t i;
	json_t *o;
	int ch, rc;

	while ((ch = next_opt(c, argc, argv, opts)) != -1) {
		if (ch == 'h') {
			fputs(list_devices_usage, stdout);
			return 0;
		}
		if (ch != 'j')
			return EXIT_USAGE;
		a.json = true;
	}
	rc = want_args(c, argc, argv, 0, 0);
	if (rc == 0)
		rc = open_store(c, true);
	if (rc != 0)
		return rc;
	a.list = json_array();
	rc = run_job(c, list_devices_job, &a);
	if (rc != 0) {
		json_decref(a.list);
		return job_failed(c, rc, "listing devices");
	}
	if (a.json) {
		json_dumpf(a.list, stdout, JSON_COMPACT);
		putchar('\n');
	} else {
		printf("%-8s %-24s %-10s %s\n", "DEVICE", "OWNER", "STATE", "ROLE");
		json_array_foreach(a.list, i, o)
			printf("%-8lld %-24s %-10s %s\n",
			       (long long)json_integer_value(json_object_get(o, "device")),
			       json_string_value(json_object_get(o, "owner")),
			       json_string_value(json_object_get(o, "state")),
			       json_string_value(json_object_get(o, "role")));
	}
	json_decref(a.list);
	return 0;
}

/* ---- stats -------------------------------------------------------------- */

/* Statistics as CSV (stats.h), on a read-only connection like audit
 * verify: no store, no migration, nothing written. */
static int cmd_stats(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"from", required_argument, NULL, 'f'},
		{"to", required_argument, NULL, 't'},
		{"by", required_argument, NULL, 'b'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *from_s = NULL, *to_s = NULL, *by_s = "day";
	enum hl_stats_by by;
	int64_t from, to;
	struct hl_stats st;
	struct stat sb;
	sqlite3 *db = NULL;
	char err[512];
	int ch, rc;

	while ((ch = next_opt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'f': from_s = optarg; break;
		case 't': to_s = optarg; break;
		case 'b': by_s = optarg; break;
		case 'h': fputs(stats_usage, stdout); return 0;
		default: return EXIT_USAGE;
		}
	}
	rc = want_args(c, argc, argv, 0, 0);
	if (rc != 0)
		return rc;
	if (!from_s || !to_s) {
		errorf("stats: --from and --to are required (see helplinectl "
		       "stats --help)");
		return EXIT_USAGE;
	}
	if (hl_stats_parse_day(from_s, &from) != 0) {
		errorf("stats: --from must be a date YYYY-MM-DD, not '%s'",
		       from_s);
		return EXIT_USAGE;
	}
	if (hl_stats_parse_day(to_s, &to) != 0) {
		errorf("stats: --to must be a date YYYY-MM-DD, not '%s'", to_s);
		return EXIT_USAGE;
	}
	if (hl_stats_by_parse(by_s, &by) != 0) {
		errorf("stats: --by must be day or hour, not '%s'", by_s);
		return EXIT_USAGE;
	}
	if (to < from) {
		errorf("stats: --to %s is before --from %s", to_s, from_s);
		return EXIT_USAGE;
	}
	to += HL_STATS_DAY_MS; /* --to names the last day included */
	if (hl_stats_check_range(from, to, by, NULL) != 0) {
		errorf("stats: at most %d days by %s (see helplinectl stats "
		       "--help)", by == HL_STATS_BY_DAY ? HL_STATS_MAX_DAYS :
		       HL_STATS_MAX_HOURS / 24, hl_stats_by_name(by));
		return EXIT_USAGE;
	}
	if (stat(c->db, &sb) != 0) {
		errorf("no database at %s (pass --db)", c->db);
		return EXIT_FAIL;
	}
	rc = sqlite3_open_v2(c->db, &db,
			     SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		errorf("cannot open database %s: %s", c->db,
		       db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return EXIT_FAIL;
	}
	sqlite3_busy_timeout(db, 5000);
	memset(&st, 0, sizeof(st));
	rc = hl_stats_compute(db, from, to, by, &st, err, sizeof(err));
	sqlite3_close(db);
	if (rc != 0) {
		errorf("cannot read statistics from %s: %s", c->db, err);
		hl_stats_free(&st);
		return EXIT_FAIL;
	}
	rc = hl_stats_write_csv(&st, stdout);
	hl_stats_free(&st);
	if (rc != 0) {
		errorf("cannot write the statistics: %s", hl_strerror(rc));
		return EXIT_FAIL;
	}
	return 0;
}

/* ---- evidence-key --------------------------------------------------------- */

/* Adds the EVIDENCE rows unless there are some; is->root_pk is the root
 * key file's public key, which must be the database's. */
static int evidence_key_job(struct ctl *c, sqlite3_stmt *const *stmts,
			    void *arg)
{
	struct init_state *is = arg;
	unsigned char pk[HL_CERT_MAX];
	char detail[128], b64[sodium_base64_ENCODED_LEN(
		crypto_sign_PUBLICKEYBYTES,
		sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	struct hl_audit_entry e;
	int n, rc;

	rc = check_key_file(c, stmts);
	if (rc != 0)
		return rc;
	n = org_key_get(stmts, "root_pk", pk, sizeof(pk));
	if (n < 0)
		return n;
	if (n != 32) {
		snprintf(c->msg, sizeof(c->msg), "database %s is not "
			 "initialised: run helplinectl init", c->db);
		return HL_EINVAL;
	}
	if (sodium_memcmp(pk, is->root_pk, 32) != 0) {
		snprintf(c->msg, sizeof(c->msg), "the root key file is not the "
			 "root key of database %s", c->db);
		return HL_EINVAL;
	}
	n = org_key_get(stmts, "evidence_cert", pk, sizeof(pk));
	if (n < 0)
		return n;
	if (n > 0) {
		is->have_evidence = true;
		return 0;
	}
	rc = evidence_put(c, stmts, is);
	if (rc != 0)
		return rc;
	sodium_bin2base64(b64, sizeof(b64), is->ev_pk, sizeof(is->ev_pk),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	snprintf(detail, sizeof(detail), "{\"evidence_pk\":\"%s\"}", b64);
	memset(&e, 0, sizeof(e));
	e.at_ms = c->now * 1000;
	e.action = "org.evidence_key";
	e.detail = detail;
	return hl_audit_append(stmts, &e, NULL) == 0 ? 0 : HL_ESTORE;
}

static int cmd_evidence_key(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"root-key", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct init_state *is;
	unsigned char root_sk[crypto_sign_SECRETKEYBYTES];
	const char *root = NULL;
	int ch, rc;

	while ((ch = next_opt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'r': root = optarg; break;
		case 'h': fputs(evidence_key_usage, stdout); return 0;
		default: return EXIT_USAGE;
		}
	}
	rc = want_args(c, argc, argv, 0, 0);
	if (rc != 0)
		return rc;
	if (!root || !*root) {
		errorf("evidence-key: --root-key FILE is required (see "
		       "helplinectl evidence-key --help)");
		return EXIT_USAGE;
	}
	is = sodium_malloc(sizeof(*is));  /* holds the EVIDENCE secret */
	if (!is) {
		errorf("out of memory");
		return EXIT_FAIL;
	}
	memset(is, 0, sizeof(*is));
	rc = read_root_key(root, is->root_pk, root_sk);
	if (rc == 0 &&
	    hl_evidence_make_key(root_sk, c->now, HL_EVIDENCE_VALID_S,
				 is->ev_pk, is->ev_sk, is->ev_cert,
				 &is->ev_cert_len) != 0) {
		errorf("cannot make the EVIDENCE certificate");
		rc = EXIT_FAIL;
	}
	sodium_memzero(root_sk, sizeof(root_sk));
	if (rc == 0)
		rc = open_store(c, true);
	if (rc == 0)
		rc = load_keys(c, false);
	if (rc == 0) {
		rc = run_job(c, evidence_key_job, is);
		if (rc != 0)
			rc = job_failed(c, rc, "adding the EVIDENCE key");
		else if (is->have_evidence)
			printf("database %s has an EVIDENCE key already; nothing "
			       "changed.\n", c->db);
		else
			printf("EVIDENCE key added to %s, certified by the root "
			       "for 2 years; restart helplined to use it.\n",
			       c->db);
	}
	sodium_free(is);
	return rc;
}

/* ---- verify-bundle ------------------------------------------------------- */

/* Reads a whole file of at most max bytes into a malloc'd *out. */
static int read_small_file(const char *path, size_t max, unsigned char **out,
			   size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p;
	size_t n, cap = max;
	struct stat sb;

	*out = NULL;
	*len = 0;
	if (!f) {
		errorf("cannot open %s: %s", path, strerror(errno));
		return EXIT_FAIL;
	}
	/* A regular file's size bounds the buffer; anything else (a pipe)
	 * gets the limit. */
	if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode)) {
		if ((uintmax_t)sb.st_size > max) {
			fclose(f);
			errorf("%s is larger than %zu bytes: refusing it", path,
			       max);
			return EXIT_FAIL;
		}
		cap = (size_t)sb.st_size;
	}
	p = malloc(cap + 1);
	if (!p) {
		fclose(f);
		errorf("out of memory");
		return EXIT_FAIL;
	}
	n = fread(p, 1, cap + 1, f);
	if (ferror(f)) {
		errorf("cannot read %s", path);
		fclose(f);
		free(p);
		return EXIT_FAIL;
	}
	fclose(f);
	if (n > max || n > cap) {
		errorf("%s is larger than %zu bytes (or grew while read): "
		       "refusing it", path, n > max ? max : cap);
		free(p);
		return EXIT_FAIL;
	}
	*out = p;
	*len = n;
	return 0;
}

/* A root PUBLIC key from a file: helplinectl init's root key file (its
 * "public"), or the key alone in base64url (43 characters) or hex (64). */
static int read_root_public(const char *path, unsigned char pk[32])
{
	unsigned char *data;
	const char *s = NULL;
	json_t *o = NULL;
	size_t len, n = 0, sl;
	int rc;

	rc = read_small_file(path, 4096, &data, &len);
	if (rc != 0)
		return rc;
	o = json_loadb((const char *)data, len, 0, NULL);
	if (o)
		s = json_string_value(json_object_get(o, "public"));
	else
		s = (const char *)data;
	sl = o ? (s ? strlen(s) : 0) : len;
	while (!o && sl && (s[sl - 1] == '\n' || s[sl - 1] == '\r' ||
			    s[sl - 1] == ' '))
		sl--;
	rc = EXIT_FAIL;
	if (s && sl == 64 &&
	    sodium_hex2bin(pk, 32, s, sl, NULL, &n, NULL) == 0 && n == 32)
		rc = 0;
	else if (s && sl == 43 &&
		 sodium_base642bin(pk, 32, s, sl, NULL, &n, NULL,
				   sodium_base64_VARIANT_URLSAFE_NO_PADDING) ==
			 0 && n == 32)
		rc = 0;
	else
		errorf("%s holds no root public key (a root key file, or 32 "
		       "bytes in base64url or hex)", path);
	json_decref(o);
	free(data);
	return rc;
}

static int cmd_verify_bundle(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"root", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct hl_bundle_report rep;
	unsigned char root[32], *data;
	const char *root_file = NULL;
	size_t len;
	int ch, rc;

	while ((ch = next_opt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'r': root_file = optarg; break;
		case 'h': fputs(verify_bundle_usage, stdout); return 0;
		default: return EXIT_USAGE;
		}
	}
	rc = want_args(c, argc, argv, 1, 1);
	if (rc != 0)
		return rc;
	if (root_file && read_root_public(root_file, root) != 0)
		return EXIT_FAIL;
	rc = read_small_file(argv[optind], HL_BUNDLE_MAX_BYTES, &data, &len);
	if (rc != 0)
		return rc;
	rc = hl_bundle_verify(data, len, root_file ? root : NULL, &rep);
	free(data);
	if (rc == HL_ENOMEM) {
		hl_bundle_report_free(&rep);
		errorf("out of memory");
		return EXIT_FAIL;
	}
	hl_bundle_report_print(&rep, stdout);
	hl_bundle_report_free(&rep);
	if (fflush(stdout) != 0 || ferror(stdout))
		return EXIT_FAIL;
	return rc == 0 ? 0 : EXIT_FAIL;
}

/* ---- main --------------------------------------------------------------- */

struct command {
	const char *name;
	int (*run)(struct ctl *c, int argc, char **argv);
};

/* ---- backup and restore ------------------------------------------------- */

static const char backup_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] backup [--pages N] [--pause MS] FILE\n"
	"Copies the database to FILE (a new file, mode 0600) with SQLite's online\n"
	"backup API, while helplined runs. The copy is one consistent snapshot:\n"
	"it holds a read transaction (which in WAL mode never blocks the daemon's\n"
	"writer) and copies N pages per step (default 256), pausing MS\n"
	"milliseconds between steps (default 5). The copy is checked\n"
	"(PRAGMA quick_check) and renamed into place only when complete.\n"
	"The key file (helpline.key) is not in the database: back it up once,\n"
	"separately (it never changes).\n";

static const char restore_usage[] =
	"Usage: helplinectl [GLOBAL OPTIONS] restore [--force] FILE\n"
	"Restores a backup made by 'helplinectl backup' as the database (--db or\n"
	"the state directory's helpline.db). FILE is checked first (integrity,\n"
	"a Helpline schema not newer than this program). Refuses while any\n"
	"process (helplined) has the database open. An existing database is only\n"
	"replaced with --force, and is kept as DB.before-restore-UNIXTIME.\n"
	"Stop helplined first; put the key file from the same installation in\n"
	"place; start helplined afterwards.\n";

/* Opens path read-only or read-write; NULL after printing why. */
static sqlite3 *open_db_path(const char *path, int flags)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, flags, NULL);

	if (rc != SQLITE_OK) {
		errorf("cannot open %s: %s", path,
		       db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 10000);
	return db;
}

/* PRAGMA quick_check / integrity_check is "ok", and the schema is a
 * Helpline one this program can open. 0 or EXIT_FAIL after printing. */
static int check_copy(sqlite3 *db, const char *path, const char *pragma)
{
	sqlite3_stmt *st = NULL;
	int ok = 0, version = -1, convs = 0;
	char sql[64];

	snprintf(sql, sizeof(sql), "PRAGMA %s", pragma);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		ok = strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
	sqlite3_finalize(st);
	if (!ok) {
		errorf("%s: %s failed: not a sound database", path, pragma);
		return EXIT_FAIL;
	}
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) ==
		    SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db,
			       "SELECT count(*) FROM sqlite_schema WHERE "
			       "type = 'table' AND name IN ('conversation', "
			       "'event', 'staff')",
			       -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		convs = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version < 1 || convs != 3) {
		errorf("%s: not a Helpline database", path);
		return EXIT_FAIL;
	}
	if ((size_t)version > hl_migrations_count) {
		errorf("%s: schema version %d is newer than this program (%zu)",
		       path, version, hl_migrations_count);
		return EXIT_FAIL;
	}
	return 0;
}

static int fsync_path(const char *path, int dir)
{
	int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* The directory part of path into out ("." when none). */
static void dir_of(const char *path, char *out, size_t cap)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(out, cap, ".");
	else if (slash == path)
		snprintf(out, cap, "/");
	else
		snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

static int cmd_backup(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"pages", required_argument, NULL, 'p'},
		{"pause", required_argument, NULL, 'P'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	char tmp[HL_CONFIG_PATH_MAX + 64], dir[HL_CONFIG_PATH_MAX + 32];
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *b = NULL;
	long pages = 256, pause_ms = 5;
	const char *out;
	struct stat sb;
	int ch, rc, fd, steps = 0, total = 0;

	while ((ch = next_opt(c, argc, argv, opts)) != -1) {
		char *end;

		switch (ch) {
		case 'h': fputs(backup_usage, stdout); return 0;
		case 'p':
			pages = strtol(optarg, &end, 10);
			if (*end || pages < 1 || pages > 1000000) {
				errorf("backup: --pages must be 1 to 1000000");
				return EXIT_USAGE;
			}
			break;
		case 'P':
			pause_ms = strtol(optarg, &end, 10);
			if (*end || pause_ms < 0 || pause_ms > 10000) {
				errorf("backup: --pause must be 0 to 10000");
				return EXIT_USAGE;
			}
			break;
		default: return EXIT_USAGE;
		}
	}
	rc = want_args(c, argc, argv, 1, 1);
	if (rc != 0)
		return rc;
	out = argv[optind];
	if (stat(c->db, &sb) != 0) {
		errorf("no database at %s (pass --db)", c->db);
		return EXIT_FAIL;
	}
	if (lstat(out, &sb) == 0) {
		errorf("backup: %s exists; give a new file name", out);
		return EXIT_FAIL;
	}
	if (snprintf(tmp, sizeof(tmp), "%s.partial", out) >= (int)sizeof(tmp)) {
		errorf("backup: file name too long");
		return EXIT_USAGE;
	}
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		errorf("backup: cannot create %s: %s", tmp, strerror(errno));
		return EXIT_FAIL;
	}
	close(fd);
	src = open_db_path(c->db, SQLITE_OPEN_READONLY);
	dst = src ? open_db_path(tmp, SQLITE_OPEN_READWRITE) : NULL;
	if (!dst)
		goto fail;
	/* One read transaction over the whole copy: every step sees the same
	 * snapshot (no restarts when the daemon commits meanwhile), and in
	 * WAL mode a reader never blocks the writer. */
	if (sqlite3_exec(src, "BEGIN; SELECT count(*) FROM sqlite_schema;",
			 NULL, NULL, NULL) != SQLITE_OK) {
		errorf("backup: cannot read %s: %s", c->db, sqlite3_errmsg(src));
		goto fail;
	}
	b = sqlite3_backup_init(dst, "main", src, "main");
	if (!b) {
		errorf("backup: %s", sqlite3_errmsg(dst));
		goto fail;
	}
	do {
		rc = sqlite3_backup_step(b, (int)pages);
		steps++;
		if (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
			if (pause_ms)
				usleep((useconds_t)pause_ms * 1000);
		}
	} while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
	total = sqlite3_backup_pagecount(b);
	if (sqlite3_backup_finish(b) != SQLITE_OK || rc != SQLITE_DONE) {
		errorf("backup: copy failed: %s", sqlite3_errstr(rc));
		b = NULL;
		goto fail;
	}
	b = NULL;
	sqlite3_exec(src, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(src);
	src = NULL;
	/* The copy is a self-contained file (no WAL to carry along). */
	if (sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL,
			 NULL) != SQLITE_OK ||
	    check_copy(dst, tmp, "quick_check") != 0)
		goto fail;
	sqlite3_close(dst);
	dst = NULL;
	dir_of(out, dir, sizeof(dir));
	if (fsync_path(tmp, 0) != 0 || link(tmp, out) != 0 ||
	    unlink(tmp) != 0 || fsync_path(dir, 1) != 0) {
		errorf("backup: cannot write %s: %s", out, strerror(errno));
		unlink(tmp);
		return EXIT_FAIL;
	}
	printf("backup of %s written to %s: %d pages in %d steps\n"
	       "the key file is not in it: keep a copy of %s too\n",
	       c->db, out, total, steps, c->keyfile);
	return 0;

fail:
	if (b)
		sqlite3_backup_finish(b);
	sqlite3_close(src);
	sqlite3_close(dst);
	unlink(tmp);
	return EXIT_FAIL;
}

/*
 * Whether some process has the SQLite database at db open: every WAL-mode
 * connection holds a shared lock on the dead-man-switch byte (offset 128)
 * of DB-shm while it is open. Returns 1 yes, 0 no, -1 cannot tell.
 */
static int db_in_use(const char *db)
{
	char shm[HL_CONFIG_PATH_MAX + 40];
	struct flock fl;
	int fd, rc;

	snprintf(shm, sizeof(shm), "%s-shm", db);
	fd = open(shm, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = 128;
	fl.l_len = 1;
	rc = fcntl(fd, F_GETLK, &fl);
	close(fd);
	if (rc != 0)
		return -1;
	return fl.l_type != F_UNLCK;
}

static int cmd_restore(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"force", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	char tmp[HL_CONFIG_PATH_MAX + 64], old[HL_CONFIG_PATH_MAX + 64];
	char side[HL_CONFIG_PATH_MAX + 40], dir[HL_CONFIG_PATH_MAX + 32];
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *b;
	bool force = false, exists;
	const char *in;
	struct stat sb;
	int ch, rc, fd, use;

	while ((ch = next_opt(c, argc, argv, opts)) != -1) {
		if (ch == 'h') {
			fputs(restore_usage, stdout);
			return 0;
		}
		if (ch == 'f') {
			force = true;
			continue;
		}
		return EXIT_USAGE;
	}
	rc = want_args(c, argc, argv, 1, 1);
	if (rc != 0)
		return rc;
	in = argv[optind];
	if (stat(in, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		errorf("restore: no backup file at %s", in);
		return EXIT_FAIL;
	}
	exists = stat(c->db, &sb) == 0;
	use = db_in_use(c->db);
	if (use != 0) {
		errorf("restore: %s is open in another process (stop helplined "
		       "first)%s", c->db, use < 0 ? " or cannot be checked" : "");
		return EXIT_FAIL;
	}
	if (exists && !force) {
		errorf("restore: %s exists; pass --force to replace it (it is "
		       "kept as %s.before-restore-TIME)", c->db, c->db);
		return EXIT_FAIL;
	}
	src = open_db_path(in, SQLITE_OPEN_READONLY);
	if (!src)
		return EXIT_FAIL;
	if (check_copy(src, in, "integrity_check") != 0) {
		sqlite3_close(src);
		return EXIT_FAIL;
	}
	dir_of(c->db, dir, sizeof(dir));
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		errorf("restore: cannot create %s: %s", dir, strerror(errno));
		sqlite3_close(src);
		return EXIT_FAIL;
	}
	snprintf(tmp, sizeof(tmp), "%s.restoring", c->db);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		errorf("restore: cannot create %s: %s", tmp, strerror(errno));
		sqlite3_close(src);
		return EXIT_FAIL;
	}
	close(fd);
	dst = open_db_path(tmp, SQLITE_OPEN_READWRITE);
	b = dst ? sqlite3_backup_init(dst, "main", src, "main") : NULL;
	rc = b ? sqlite3_backup_step(b, -1) : SQLITE_ERROR;
	if (b)
		sqlite3_backup_finish(b);
	sqlite3_close(src);
	if (rc != SQLITE_DONE ||
	    sqlite3_exec(dst, "PRAGMA journal_mode = WAL", NULL, NULL, NULL) !=
		    SQLITE_OK) {
		errorf("restore: copy failed: %s", sqlite3_errstr(rc));
		sqlite3_close(dst);
		unlink(tmp);
		return EXIT_FAIL;
	}
	sqlite3_close(dst);
	/* Check again that nobody opened the database meanwhile. */
	if (db_in_use(c->db) != 0) {
		errorf("restore: %s was opened meanwhile; nothing replaced",
		       c->db);
		unlink(tmp);
		return EXIT_FAIL;
	}
	if (exists) {
		snprintf(old, sizeof(old), "%s.before-restore-%lld", c->db,
			 (long long)time(NULL));
		if (rename(c->db, old) != 0) {
			errorf("restore: cannot move %s aside: %s", c->db,
			       strerror(errno));
			unlink(tmp);
			return EXIT_FAIL;
		}
		printf("the database it replaced is kept as %s\n", old);
	}
	/* A WAL or shm left by the old database must not be applied to the
	 * restored one (after a clean stop there is none). */
	snprintf(side, sizeof(side), "%s-wal", c->db);
	if (exists) {
		char keep[HL_CONFIG_PATH_MAX + 80];

		snprintf(keep, sizeof(keep), "%s-wal", old);
		rename(side, keep);
	} else {
		unlink(side);
	}
	snprintf(side, sizeof(side), "%s-shm", c->db);
	unlink(side);
	if (fsync_path(tmp, 0) != 0 || rename(tmp, c->db) != 0 ||
	    fsync_path(dir, 1) != 0) {
		errorf("restore: cannot put %s in place: %s", c->db,
		       strerror(errno));
		return EXIT_FAIL;
	}
	printf("restored %s from %s\n", c->db, in);
	if (stat(c->keyfile, &sb) != 0)
		printf("no key file at %s: put this installation's helpline.key "
		       "there before starting helplined (staff logins need it)\n",
		       c->keyfile);
	return 0;
}

static const struct command commands[] = {
	{"init", cmd_init},
	{"create-admin", cmd_create_admin},
	{"create-staff", cmd_create_staff},
	{"list-staff", cmd_list_staff},
	{"disable", cmd_disable},
	{"enable", cmd_enable},
	{"reset-password", cmd_reset_password},
	{"reset-totp", cmd_reset_totp},
	{"sessions", cmd_sessions},
	{"revoke-sessions", cmd_revoke_sessions},
	{"audit", cmd_audit},
	{"stats", cmd_stats},
	{"inbox-key", cmd_inbox_key},
	{"certify-device", cmd_certify_device},
	{"revoke-device", cmd_revoke_device},
	{"list-devices", cmd_list_devices},
	{"evidence-key", cmd_evidence_key},
	{"verify-bundle", cmd_verify_bundle},
	{"backup", cmd_backup},
	{"restore", cmd_restore},
};

/* Parses the global options, resolves the database and key file paths as
 * helplined does, and runs one command. Returns the exit status: 0, 1
 * (operation failed) or 2 (usage). */
int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"db", required_argument, NULL, 'd'},
		{"state-dir", required_argument, NULL, 's'},
		{"key-file", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	static struct hl_config cfg;  /* large; one per process */
	static struct ctl c;
	const char *config_file = NULL, *db = NULL, *state_dir = NULL;
	const char *key_file = NULL;
	const struct command *cmd = NULL;
	char err[1024];
	int ch, rc, cmd_at;

	hl_log_set_level(HL_LOG_WARN);
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': config_file = optarg; break;
		case 'd': db = optarg; break;
		case 's': state_dir = optarg; break;
		case 'k': key_file = optarg; break;
		case 'h': fputs(global_usage, stdout); return 0;
		case 'V': printf("helplinectl %s\n", HL_VERSION); return 0;
		case ':':
			errorf("option '%s' needs a value (see helplinectl "
			       "--help)", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			errorf("unknown option '%s' (see helplinectl --help)",
			       argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		errorf("no command given");
		fputs(global_usage, stderr);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < HL_ARRAY_LEN(commands); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			cmd = &commands[i];
	if (!cmd) {
		errorf("unknown command '%s' (see helplinectl --help)",
		       argv[optind]);
		return EXIT_USAGE;
	}

	/* The paths, resolved exactly as helplined resolves them. */
	hl_config_defaults(&cfg);
	if (config_file &&
	    hl_config_load_file(&cfg, config_file, err, sizeof(err)) != 0) {
		errorf("%s", err);
		return EXIT_USAGE;
	}
	if ((state_dir && hl_config_set(&cfg, "server.state_dir", state_dir,
					err, sizeof(err)) != 0) ||
	    (db && hl_config_set(&cfg, "store.db", db, err, sizeof(err)) != 0) ||
	    (key_file && hl_config_set(&cfg, "store.key_file", key_file, err,
				       sizeof(err)) != 0)) {
		errorf("%s", err);
		return EXIT_USAGE;
	}
	if (hl_config_db_path(&cfg, c.db, sizeof(c.db)) != 0 ||
	    hl_config_key_path(&cfg, c.keyfile, sizeof(c.keyfile)) != 0) {
		errorf("database or key file path is too long");
		return EXIT_USAGE;
	}
	c.db_derived = cfg.db_path[0] == '\0';
	snprintf(c.state_dir, sizeof(c.state_dir), "%s", cfg.state_dir);
	c.cmd = cmd->name;
	c.now = (int64_t)time(NULL);
	if (sodium_init() < 0) {
		errorf("libsodium failed to start");
		return EXIT_FAIL;
	}

	/* The command parses its own options from its name on; optind 0 makes
	 * glibc's getopt start afresh (at index 1 of the command's argv). */
	cmd_at = optind;
	optind = 0;
	rc = cmd->run(&c, argc - cmd_at, argv + cmd_at);
	ctl_close(&c);
	return rc;
}
