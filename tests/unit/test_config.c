/* test_config.c: defaults, INI file, command line and derived values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common.h"
#include "config.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---- */

static char err[512];

/* Loads text named "t.ini" over defaults; returns the status. */
static int load(struct hl_config *cfg, const char *text)
{
	hl_config_defaults(cfg);
	memset(err, 0, sizeof(err));
	return hl_config_load_string(cfg, text, "t.ini", err, sizeof(err));
}

#define assert_contains(hay, needle)                                           \
	do {                                                                   \
		if (!strstr((hay), (needle)))                                  \
			fail_msg("\"%s\" does not contain \"%s\"", (hay),      \
				 (needle));                                    \
	} while (0)

/* Writes text to a new temporary file; path receives its name. */
static void write_tmp(char *path, size_t len, const char *text, size_t n)
{
	const char *dir = getenv("HL_TEST_TMP");
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	mkdir(dir, 0700);
	snprintf(path, len, "%s/test_config.XXXXXX", dir);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	close(fd);
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
	struct hl_config cfg;
	char db[HL_CONFIG_PATH_MAX];

	(void)state;
	memset(&cfg, 0x5a, sizeof(cfg));
	hl_config_defaults(&cfg);
	assert_string_equal(cfg.listen_host, "127.0.0.1");
	assert_int_equal(cfg.listen_port, 8080);
	assert_string_equal(cfg.web_root, HL_DEFAULT_WEB_ROOT);
	assert_string_equal(cfg.state_dir, "/var/lib/helpline");
	assert_int_equal(cfg.max_connections, 19000);
	assert_int_equal(cfg.max_connections_per_address, 64);
	assert_int_equal(cfg.failed_attempts_per_address, 30);
	assert_int_equal(cfg.failed_attempts_window, 900);
	assert_int_equal(cfg.uncounted_addresses.count, 2);
	assert_int_equal(cfg.uncounted_addresses.net[0].prefix, 8);
	assert_int_equal(cfg.uncounted_addresses.net[1].prefix, 128);
	assert_string_equal(cfg.db_path, "");
	assert_int_equal(cfg.store_batch_max, 4096);
	assert_int_equal(cfg.store_queue_max, 100000);
	assert_int_equal(cfg.ws_max_message, 65536);
	assert_int_equal(cfg.ws_outq_max, 1048576);
	assert_int_equal(cfg.ws_ping_interval, 30);
	assert_int_equal(cfg.evidence_max_bundle, 4194304);
	assert_string_equal(cfg.referral_partner_url, "");
	assert_string_equal(cfg.referral_partner_key, "");
	assert_int_equal(cfg.referral_connect_timeout, 10);
	assert_int_equal(cfg.referral_timeout, 30);
	assert_int_equal(cfg.referral_attempts, 8);
	assert_int_equal(cfg.referral_backoff, 30);
	assert_int_equal(cfg.referral_backoff_max, 3600);
	assert_int_equal(cfg.allowed_origins_count, 0);
	assert_int_equal(cfg.allowed_origins_set, 0);
	assert_int_equal(cfg.log_level, HL_LOG_INFO);

	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(cfg.allowed_origins_count, 2);
	assert_string_equal(cfg.allowed_origins[0], "http://127.0.0.1:8080");
	assert_string_equal(cfg.allowed_origins[1], "http://localhost:8080");
	assert_int_equal(cfg.allowed_origins_set, 0);
	/* db_path stays empty ("derived") after finish. */
	assert_string_equal(cfg.db_path, "");
	assert_int_equal(hl_config_db_path(&cfg, db, sizeof(db)), 0);
	assert_string_equal(db, "/var/lib/helpline/helpline.db");
}

/* ---- a full file ---- */

static const char full_file[] =
	"; Helpline test configuration\n"
	"# both comment styles at line start\n"
	"\n"
	"[server]\n"
	"listen = [::1]:9000\n"
	"web_root = /srv/helpline/web\n"
	"state_dir = /srv/helpline/state\n"
	"max_connections = 1000000\n"
	"\n"
	"[store]\n"
	"db = /srv/helpline/db/h.db\n"
	"batch_max = 1\n"
	"queue_max = 16\n"
	"\n"
	"[ws]\n"
	"max_message = 1m\n"
	"outq_max = 3m\n"
	"ping_interval = 0\n"
	"\n"
	"[evidence]\n"
	"max_bundle = 64m\n"
	"\n"
	"[staff]\n"
	"allowed_origins = https://Helpline.Example.org, http://[::1]:9000\n"
	"\n"
	"[log]\n"
	"level = debug\n";

static void check_full(const struct hl_config *cfg)
{
	assert_string_equal(cfg->listen_host, "::1");
	assert_int_equal(cfg->listen_port, 9000);
	assert_string_equal(cfg->web_root, "/srv/helpline/web");
	assert_string_equal(cfg->state_dir, "/srv/helpline/state");
	assert_int_equal(cfg->max_connections, 1000000);
	assert_string_equal(cfg->db_path, "/srv/helpline/db/h.db");
	assert_int_equal(cfg->store_batch_max, 1);
	assert_int_equal(cfg->store_queue_max, 16);
	assert_int_equal(cfg->ws_max_message, 1048576);
	assert_int_equal(cfg->ws_outq_max, 3145728);
	assert_int_equal(cfg->ws_ping_interval, 0);
	assert_int_equal(cfg->evidence_max_bundle, 67108864);
	assert_int_equal(cfg->allowed_origins_set, 1);
	assert_int_equal(cfg->allowed_origins_count, 2);
	assert_string_equal(cfg->allowed_origins[0],
			    "https://helpline.example.org");
	assert_string_equal(cfg->allowed_origins[1], "http://[::1]:9000");
	assert_int_equal(cfg->log_level, HL_LOG_DEBUG);
}

static void test_full_string(void **state)
{
	struct hl_config cfg;

	(void)state;
	assert_int_equal(load(&cfg, full_file), 0);
	assert_string_equal(err, "");
	check_full(&cfg);
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), 0);
	/* An explicit list is kept as given. */
	assert_int_equal(cfg.allowed_origins_count, 2);
	check_full(&cfg);
}

static void test_full_file(void **state)
{
	struct hl_config cfg;
	char path[512];

	(void)state;
	write_tmp(path, sizeof(path), full_file, strlen(full_file));
	hl_config_defaults(&cfg);
	assert_int_equal(hl_config_load_file(&cfg, path, err, sizeof(err)), 0);
	check_full(&cfg);
	unlink(path);
}

/* ---- bad values, key by key ---- */

struct bad {
	const char *section, *key, *value, *why;
};

static const struct bad bad_values[] = {
	{"server", "listen", "", "expected HOST:PORT"},
	{"server", "listen", "garbage", "expected HOST:PORT, e.g. 127.0.0.1:8080"},
	{"server", "listen", "127.0.0.1", "expected HOST:PORT"},
	{"server", "listen", "127.0.0.1:", "PORT from 0 to 65535"},
	{"server", "listen", "127.0.0.1:65536", "PORT from 0 to 65535"},
	{"server", "listen", "127.0.0.1:99999999999999999999", "PORT from 0"},
	{"server", "listen", "127.0.0.1:-1", "PORT from 0 to 65535"},
	{"server", "listen", "127.0.0.1:+80", "PORT from 0 to 65535"},
	{"server", "listen", "127.0.0.1:80x", "PORT from 0 to 65535"},
	{"server", "listen", "[::1", "missing ']'"},
	{"server", "listen", "[::1]", "expected HOST:PORT"},
	{"server", "listen", "[::1]8080", "expected HOST:PORT"},
	{"server", "listen", "[]:8080", "IPv6"},
	{"server", "listen", "[1.2.3.4]:8080", "IPv6"},
	{"server", "listen", "::1:8080", "brackets"},
	{"server", "listen", "example.org:80", "IPv4"},
	{"server", "listen", "127.1:80", "IPv4"},
	{"server", "listen", ":8080", "expected HOST:PORT"},
	{"server", "web_root", "", "not an empty value"},
	{"server", "state_dir", "", "not an empty value"},
	{"store", "db", "", "not an empty value"},
	{"server", "max_connections", "0", "from 1 to 1000000"},
	{"server", "max_connections", "1000001", "from 1 to 1000000"},
	{"server", "max_connections", "many", "from 1 to 1000000"},
	{"server", "max_connections", "", "from 1 to 1000000"},
	{"server", "max_connections", "99999999999999999999", "from 1 to"},
	{"server", "max_connections", "-5", "from 1 to 1000000"},
	{"server", "max_connections", "+5", "from 1 to 1000000"},
	{"server", "max_connections", "0x10", "from 1 to 1000000"},
	{"server", "max_connections", "1e3", "from 1 to 1000000"},
	{"server", "max_connections", "10k", "from 1 to 1000000"},
	{"server", "max_connections", "5 6", "from 1 to 1000000"},
	{"store", "batch_max", "0", "from 1 to 100000"},
	{"store", "batch_max", "100001", "from 1 to 100000"},
	{"store", "batch_max", "x", "from 1 to 100000"},
	{"store", "queue_max", "15", "from 16 to 10000000"},
	{"store", "queue_max", "10000001", "from 16 to 10000000"},
	{"store", "queue_max", "", "from 16 to 10000000"},
	{"evidence", "max_bundle", "4095", "from 4096 to 67108864"},
	{"evidence", "max_bundle", "65m", "from 4096 to 67108864"},
	{"referral", "partner_url", "http://partner.example/in", "expected an https:// URL"},
	{"referral", "partner_url", "ftp://partner.example/", "expected an https:// URL"},
	{"referral", "partner_url", "https://", "no user, no fragment"},
	{"referral", "partner_url", "https://user@partner.example/", "no user, no fragment"},
	{"referral", "partner_url", "https://partner.example/a b", "printable ASCII without spaces"},
	{"referral", "partner_url", "http://127.0.0.10/", "expected an https:// URL"},
	{"referral", "partner_key", "abc", "43 characters"},
	{"referral", "partner_key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB", "43 characters"},
	{"referral", "partner_key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+", "43 characters"},
	{"referral", "partner_key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB", "43 characters"},
	{"referral", "attempts", "0", "from 1 to 100"},
	{"referral", "timeout", "601", "from 1 to 600"},
	{"referral", "backoff", "0", "from 1 to 86400"},
	{"ws", "max_message", "255", "from 256 to 1048576"},
	{"ws", "max_message", "1048577", "from 256 to 1048576"},
	{"ws", "max_message", "2m", "from 256 to 1048576"},
	{"ws", "max_message", "1g", "from 256 to 1048576"},
	{"ws", "max_message", "64kb", "from 256 to 1048576"},
	{"ws", "max_message", "k", "from 256 to 1048576"},
	{"ws", "max_message", "-1", "from 256 to 1048576"},
	{"ws", "max_message", "", "from 256 to 1048576"},
	{"ws", "max_message", "99999999999999999999", "from 256 to"},
	{"ws", "max_message", "9999999999999999k", "from 256 to 1048576"},
	{"server", "max_connections_per_address", "-1", "from 0 to 1000000"},
	{"server", "max_connections_per_address", "lots", "from 0 to 1000000"},
	{"server", "failed_attempts_per_address", "-1", "from 0 to 100000"},
	{"server", "failed_attempts_window", "0", "from 1 to 86400"},
	{"server", "uncounted_addresses", "", "such as"},
	{"server", "uncounted_addresses", "localhost", "IPv4 or IPv6 address"},
	{"server", "uncounted_addresses", "10.0.0.0/33", "prefix length 0..32"},
	{"server", "uncounted_addresses", "::1/200", "prefix length 0..128"},
	{"ws", "outq_max", "4095", "from 4096 to 67108864"},
	{"ws", "outq_max", "65m", "from 4096 to 67108864"},
	{"ws", "outq_max", "lots", "from 4096 to 67108864"},
	{"ws", "ping_interval", "-1", "from 0 to 3600"},
	{"ws", "ping_interval", "3601", "from 0 to 3600"},
	{"ws", "ping_interval", "30s", "from 0 to 3600"},
	{"staff", "allowed_origins", "", "one or more origins"},
	{"staff", "allowed_origins", ", ,", "one or more origins"},
	{"staff", "allowed_origins", "null", "opaque origins"},
	{"staff", "allowed_origins", "NULL", "never trusted"},
	{"staff", "allowed_origins", "*", "expected http://HOST[:PORT]"},
	{"staff", "allowed_origins", "ftp://x.org", "expected http://HOST"},
	{"staff", "allowed_origins", "helpline.org", "expected http://HOST"},
	{"staff", "allowed_origins", "http://", "expected http://HOST"},
	{"staff", "allowed_origins", "http://x.org/", "trailing '/'"},
	{"staff", "allowed_origins", "http://x.org/staff", "no path"},
	{"staff", "allowed_origins", "http://x.org:8080/", "trailing '/'"},
	{"staff", "allowed_origins", "http://x.org:0", "port from 1 to 65535"},
	{"staff", "allowed_origins", "http://x.org:65536", "port from 1"},
	{"staff", "allowed_origins", "http://x.org:", "port from 1 to 65535"},
	{"staff", "allowed_origins", "http://x.org:+80", "port from 1"},
	{"staff", "allowed_origins", "http://x_y.org", "expected a host"},
	{"staff", "allowed_origins", "http://user@x.org", "expected a host"},
	{"staff", "allowed_origins", "http://x..org", "expected a host"},
	{"staff", "allowed_origins", "http://x.org.", "expected a host"},
	{"staff", "allowed_origins", "http://-x.org", "expected a host"},
	{"staff", "allowed_origins", "http://127.1", "expected a host"},
	{"staff", "allowed_origins", "http://[::1", "IPv6 address"},
	{"staff", "allowed_origins", "http://[zz]", "IPv6 address"},
	{"staff", "allowed_origins", "http://a.org null", "never trusted"},
	{"log", "level", "verbose", "debug, info, warn, error, off"},
	{"log", "level", "", "debug, info, warn, error, off"},
	{"log", "level", "2", "debug, info, warn, error, off"},
};

static void test_bad_values_file(void **state)
{
	struct hl_config cfg;
	char text[512], loc[64];

	(void)state;
	for (size_t i = 0; i < HL_ARRAY_LEN(bad_values); i++) {
		const struct bad *b = &bad_values[i];
		snprintf(text, sizeof(text), "; x\n[%s]\n%s = %s\n", b->section,
			 b->key, b->value);
		if (load(&cfg, text) != HL_EINVAL)
			fail_msg("%s.%s = \"%s\" was accepted", b->section,
				 b->key, b->value);
		snprintf(loc, sizeof(loc), "config: t.ini:3: %s.%s: ",
			 b->section, b->key);
		assert_contains(err, loc);
		assert_contains(err, b->why);
		assert_contains(err, "(got \"");
	}
}

static void test_bad_values_set(void **state)
{
	struct hl_config cfg, before;
	char key[64], prefix[96];

	(void)state;
	for (size_t i = 0; i < HL_ARRAY_LEN(bad_values); i++) {
		const struct bad *b = &bad_values[i];
		hl_config_defaults(&cfg);
		memcpy(&before, &cfg, sizeof(cfg));
		snprintf(key, sizeof(key), "%s.%s", b->section, b->key);
		if (hl_config_set(&cfg, key, b->value, err, sizeof(err)) !=
		    HL_EINVAL)
			fail_msg("%s = \"%s\" was accepted", key, b->value);
		snprintf(prefix, sizeof(prefix), "config: %s: ", key);
		assert_int_equal(strncmp(err, prefix, strlen(prefix)), 0);
		assert_contains(err, b->why);
		/* A rejected value leaves the config untouched. */
		assert_memory_equal(&cfg, &before, sizeof(cfg));
	}
}

/* [referral]: a partner URL and key that are taken, and "" that clears them. */
static void test_referral_values(void **state)
{
	struct hl_config cfg;

	(void)state;
	hl_config_defaults(&cfg);
	assert_int_equal(hl_config_set(&cfg, "referral.partner_url",
				       "https://partner.example:8443/in/referrals",
				       err, sizeof(err)), 0);
	assert_string_equal(cfg.referral_partner_url,
			    "https://partner.example:8443/in/referrals");
	assert_int_equal(hl_config_set(&cfg, "referral.partner_key",
				       "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE",
				       err, sizeof(err)), 0);
	assert_int_equal(hl_config_set(&cfg, "referral.partner_url",
				       "http://127.0.0.1:9/r", err, sizeof(err)),
#ifdef HL_TEST_HOOKS
			 0
#else
			 HL_EINVAL
#endif
	);
	assert_int_equal(hl_config_set(&cfg, "referral.partner_url", "", err,
				       sizeof(err)), 0);
	assert_string_equal(cfg.referral_partner_url, "");
	assert_int_equal(hl_config_set(&cfg, "referral.partner_key", "", err,
				       sizeof(err)), 0);
	assert_string_equal(cfg.referral_partner_key, "");
}

/* Values the file cannot carry (inih strips them) but the command line can. */
static void test_bad_values_set_only(void **state)
{
	struct hl_config cfg;
	char big[HL_CONFIG_PATH_MAX + 1];

	(void)state;
	hl_config_defaults(&cfg);
	assert_int_equal(hl_config_set(&cfg, "server.max_connections", " 5",
				       err, sizeof(err)),
			 HL_EINVAL);
	assert_int_equal(hl_config_set(&cfg, "server.max_connections", "5 ",
				       err, sizeof(err)),
			 HL_EINVAL);
	assert_int_equal(hl_config_set(&cfg, "server.listen", " 127.0.0.1:80",
				       err, sizeof(err)),
			 HL_EINVAL);
	assert_int_equal(hl_config_set(&cfg, "ws.max_message", " 1k", err,
				       sizeof(err)),
			 HL_EINVAL);

	/* Too long: exactly PATH_MAX bytes does not fit with its NUL. */
	memset(big, 'a', sizeof(big));
	big[0] = '/';
	big[HL_CONFIG_PATH_MAX] = '\0';
	assert_int_equal(hl_config_set(&cfg, "server.web_root", big, err,
				       sizeof(err)),
			 HL_EINVAL);
	assert_contains(err, "config: server.web_root: ");
	assert_contains(err, "at most 1023 bytes");
	assert_contains(err, "...\")"); /* the echo is shortened */
	assert_string_equal(cfg.web_root, HL_DEFAULT_WEB_ROOT);
	big[HL_CONFIG_PATH_MAX - 1] = '\0';
	assert_int_equal(hl_config_set(&cfg, "server.web_root", big, err,
				       sizeof(err)),
			 0);
	assert_int_equal(strlen(cfg.web_root), HL_CONFIG_PATH_MAX - 1);

	/* Control characters are refused and escaped in the message. */
	assert_int_equal(hl_config_set(&cfg, "store.db", "/a\nb", err,
				       sizeof(err)),
			 HL_EINVAL);
	assert_contains(err, "control characters");
	assert_contains(err, "(got \"/a\\x0ab\")");
	assert_null(strchr(err, '\n'));
	assert_int_equal(hl_config_set(&cfg, "server.listen", "\x1b[31m:80",
				       err, sizeof(err)),
			 HL_EINVAL);
	assert_contains(err, "\\x1b[31m:80");
	assert_null(strchr(err, '\x1b'));
}

/* ---- structure of the file ---- */

static void test_unknown_key(void **state)
{
	struct hl_config cfg;

	(void)state;
	assert_int_equal(load(&cfg, "[server]\nlisten = 127.0.0.1:1\n"
				    "port = 80\n"),
			 HL_EINVAL);
	assert_string_equal(err, "config: t.ini:3: unknown key \"server.port\"");

	/* Keys are case-sensitive. */
	assert_int_equal(load(&cfg, "[server]\nListen = 127.0.0.1:1\n"),
			 HL_EINVAL);
	assert_string_equal(err,
			    "config: t.ini:2: unknown key \"server.Listen\"");
}

static void test_unknown_section(void **state)
{
	struct hl_config cfg;

	(void)state;
	assert_int_equal(load(&cfg, "\n[database]\npath = /x.db\n"), HL_EINVAL);
	assert_string_equal(err, "config: t.ini:3: unknown key \"database.path\" "
				 "(there is no section [database])");
	/* inih keeps spaces inside brackets: "[ server ]" is not [server]. */
	assert_int_equal(load(&cfg, "[ server ]\nlisten = 127.0.0.1:1\n"),
			 HL_EINVAL);
	assert_contains(err, "t.ini:2: unknown key \" server .listen\"");
	/* Control bytes in names are escaped. */
	assert_int_equal(load(&cfg, "[a\x1b]\nb = 1\n"), HL_EINVAL);
	assert_contains(err, "unknown key \"a\\x1b.b\"");
}

static void test_duplicate_key(void **state)
{
	struct hl_config cfg;

	(void)state;
	assert_int_equal(load(&cfg, "[ws]\nping_interval = 10\n\n"
				    "[log]\nlevel = warn\n"
				    "[ws]\nping_interval = 20\n"),
			 HL_EINVAL);
	assert_string_equal(err, "config: t.ini:7: duplicate key "
				 "\"ws.ping_interval\" (first set on line 2)");
	/* The same key in two loads is an override, not a duplicate. */
	hl_config_defaults(&cfg);
	assert_int_equal(hl_config_load_string(&cfg, "[ws]\nping_interval=1\n",
					       "a", err, sizeof(err)),
			 0);
	assert_int_equal(hl_config_load_string(&cfg, "[ws]\nping_interval=2\n",
					       "b", err, sizeof(err)),
			 0);
	assert_int_equal(cfg.ws_ping_interval, 2);
}

static void test_key_outside_section(void **state)
{
	struct hl_config cfg;

	(void)state;
	assert_int_equal(load(&cfg, "; top\nlisten = 127.0.0.1:1\n"), HL_EINVAL);
	assert_string_equal(err, "config: t.ini:2: key \"listen\" is outside "
				 "any section; put it under a [section] line");
}

static void test_comments_and_blank_lines(void **state)
{
	struct hl_config cfg;

	(void)state;
	assert_int_equal(load(&cfg, "\n   \n\t\n; comment\n# comment\n"
				    "  ; indented comment\n"
				    "[ws] ; comment after a section\n"
				    "ping_interval = 7 ; inline comment\n"
				    "max_message=2k;no space: not a comment\n"),
			 HL_EINVAL);
	/* "2k;no..." is the value: ';' starts a comment only after space. */
	assert_contains(err, "t.ini:9: ws.max_message: ");

	assert_int_equal(load(&cfg, "\n   \n\t\n; comment\n# comment\n"
				    "  # indented comment\n"
				    "[ws] ; comment after a section\n"
				    "ping_interval = 7 ; inline comment\n"
				    "max_message=2k\t; tab then ';'\n"
				    "outq_max : 8k\n"),
			 0);
	assert_int_equal(cfg.ws_ping_interval, 7);
	assert_int_equal(cfg.ws_max_message, 2048);
	assert_int_equal(cfg.ws_outq_max, 8192);

	/* CRLF line endings and a UTF-8 byte order mark are fine. */
	assert_int_equal(load(&cfg, "\xEF\xBB\xBF[log]\r\nlevel = error\r\n"),
			 0);
	assert_int_equal(cfg.log_level, HL_LOG_ERROR);

	/* An empty file changes nothing. */
	assert_int_equal(load(&cfg, ""), 0);
	assert_int_equal(cfg.listen_port, 8080);
}

static void test_inline_hash(void **state)
{
	struct hl_config cfg;

	(void)state;
	assert_int_equal(load(&cfg, "[server]\nweb_root = /srv/www # web\n"),
			 HL_EINVAL);
	assert_string_equal(err, "config: t.ini:2: server.web_root: '#' starts "
				 "a comment only at the start of a line; use "
				 "\" ;\" for a comment after a value");
	assert_string_equal(cfg.web_root, HL_DEFAULT_WEB_ROOT);
	/* A '#' inside a word is part of the value. */
	assert_int_equal(load(&cfg, "[server]\nweb_root = /srv/www#1\n"), 0);
	assert_string_equal(cfg.web_root, "/srv/www#1");
}

static void test_indented_line(void **state)
{
	struct hl_config cfg;

	(void)state;
	/* inih would join the indented line to ping_interval's value. */
	assert_int_equal(load(&cfg, "[ws]\nping_interval = 5\n  10\n"),
			 HL_EINVAL);
	assert_string_equal(err, "config: t.ini:3: line starts with whitespace, "
				 "which would join it to the previous value; "
				 "only staff.allowed_origins may continue on "
				 "indented lines");
	assert_int_equal(cfg.ws_ping_interval, 5);
	assert_int_equal(load(&cfg, "[ws]\n\tping_interval = 5\n"), HL_EINVAL);
	assert_contains(err, "t.ini:2: line starts with whitespace");
	assert_int_equal(load(&cfg, "[ws]\nping_interval = 5\n  [log]\n"),
			 HL_EINVAL);
	assert_contains(err, "t.ini:3: line starts with whitespace");
	/* A key or section after the list ends it. */
	assert_int_equal(load(&cfg, "[staff]\nallowed_origins = https://a.org\n"
				    "[log]\n  https://b.org\n"),
			 HL_EINVAL);
	assert_contains(err, "t.ini:4: line starts with whitespace");
}

static void test_origins_continuation(void **state)
{
	struct hl_config cfg;

	(void)state;
	assert_int_equal(load(&cfg, "[staff]\n"
				    "allowed_origins = https://a.org\n"
				    "  https://b.org, https://c.org ; two more\n"
				    "; a comment between\n"
				    "\n"
				    "\thttps://A.org https://d.org:8443\n"
				    "[log]\n"
				    "level = warn\n"),
			 0);
	assert_int_equal(cfg.allowed_origins_set, 1);
	assert_int_equal(cfg.allowed_origins_count, 4);
	assert_string_equal(cfg.allowed_origins[0], "https://a.org");
	assert_string_equal(cfg.allowed_origins[1], "https://b.org");
	assert_string_equal(cfg.allowed_origins[2], "https://c.org");
	assert_string_equal(cfg.allowed_origins[3], "https://d.org:8443");
	assert_int_equal(cfg.log_level, HL_LOG_WARN);

	/* A bad origin on a continuation line names that line. */
	assert_int_equal(load(&cfg, "[staff]\n"
				    "allowed_origins = https://a.org\n"
				    "  https://b.org/\n"),
			 HL_EINVAL);
	assert_contains(err, "config: t.ini:3: staff.allowed_origins: "
			     "\"https://b.org/\": remove the trailing '/'");
	assert_int_equal(load(&cfg, "[staff]\n"
				    "allowed_origins = https://a.org\n"
				    "  https://b.org # c\n"),
			 HL_EINVAL);
	assert_contains(err, "t.ini:3: staff.allowed_origins: '#' starts");

	/* More than 16 across lines is still refused. */
	assert_int_equal(load(&cfg, "[staff]\nallowed_origins = "
				    "https://a1.org https://a2.org https://a3.org "
				    "https://a4.org https://a5.org https://a6.org\n"
				    "  https://a7.org https://a8.org https://a9.org "
				    "https://a10.org https://a11.org https://a12.org\n"
				    "  https://a13.org https://a14.org https://a15.org "
				    "https://a16.org https://a17.org\n"),
			 HL_EINVAL);
	assert_contains(err, "t.ini:4: staff.allowed_origins: expected at "
			     "most 16 origins");

	/* A list key given twice is still a duplicate. */
	assert_int_equal(load(&cfg, "[staff]\nallowed_origins = https://a.org\n"
				    "allowed_origins = https://b.org\n"),
			 HL_EINVAL);
	assert_contains(err, "t.ini:3: duplicate key "
			     "\"staff.allowed_origins\" (first set on line 2)");
}

static void test_syntax_errors(void **state)
{
	struct hl_config cfg;

	(void)state;
	assert_int_equal(load(&cfg, "[log]\nlevel = warn\n[server\n"),
			 HL_EINVAL);
	assert_string_equal(err, "config: t.ini:3: syntax error: expected "
				 "[section], key = value or a comment");
	assert_int_equal(load(&cfg, "[log]\nlevel\n"), HL_EINVAL);
	assert_string_equal(err, "config: t.ini:2: syntax error: expected "
				 "[section], key = value or a comment");
	/* The first error wins, whether syntax or value. */
	assert_int_equal(load(&cfg, "[log]\nlevel\nlevel = loud\n"), HL_EINVAL);
	assert_contains(err, "t.ini:2: syntax error");
	assert_int_equal(load(&cfg, "[log]\nlevel = loud\nlevel\n"), HL_EINVAL);
	assert_contains(err, "t.ini:2: log.level: ");
}

static void test_long_line(void **state)
{
	struct hl_config cfg;
	char text[600];

	(void)state;
	/* inih reads at most 199 bytes a line; longer is refused, not cut. */
	memset(text, 0, sizeof(text));
	strcpy(text, "[server]\nweb_root = /");
	memset(text + strlen(text), 'a', 400);
	strcat(text, "\nlisten = 1.2.3.4:1\n");
	assert_int_equal(load(&cfg, text), HL_EINVAL);
	assert_string_equal(err, "config: t.ini:2: line is longer than 199 "
				 "bytes");
	assert_string_equal(cfg.web_root, HL_DEFAULT_WEB_ROOT);
	assert_int_equal(cfg.listen_port, 8080);

	/* 199 bytes is fine. */
	memset(text, 0, sizeof(text));
	strcpy(text, "[server]\nweb_root = /");
	memset(text + strlen(text), 'b', 199 - strlen("web_root = /"));
	strcat(text, "\n");
	assert_int_equal(load(&cfg, text), 0);
	assert_int_equal(strlen(cfg.web_root), 199 - strlen("web_root = "));
}

static void test_nul_byte(void **state)
{
	static const char text[] = "[server]\nweb_root = /a\0b\n";
	struct hl_config cfg;
	char path[512];

	(void)state;
	write_tmp(path, sizeof(path), text, sizeof(text) - 1);
	hl_config_defaults(&cfg);
	assert_int_equal(hl_config_load_file(&cfg, path, err, sizeof(err)),
			 HL_EINVAL);
	assert_contains(err, ":2: line contains a NUL byte");
	assert_string_equal(cfg.web_root, HL_DEFAULT_WEB_ROOT);
	unlink(path);
}

static void test_unreadable_file(void **state)
{
	struct hl_config cfg;
	char path[512];
	const char *dir = getenv("HL_TEST_TMP");

	(void)state;
	hl_config_defaults(&cfg);
	assert_int_equal(hl_config_load_file(&cfg, "/nonexistent/helpline.ini",
					     err, sizeof(err)),
			 HL_EIO);
	assert_string_equal(err, "config: cannot read /nonexistent/helpline.ini:"
				 " No such file or directory");

	/* A directory opens but cannot be read. */
	snprintf(path, sizeof(path), "%s", dir && *dir ? dir : "/tmp");
	mkdir(path, 0700);
	assert_int_equal(hl_config_load_file(&cfg, path, err, sizeof(err)),
			 HL_EIO);
	assert_contains(err, "config: cannot read ");
	assert_contains(err, "Is a directory");

	/* NULL err is allowed. */
	assert_int_equal(hl_config_load_file(&cfg, "/nonexistent", NULL, 0),
			 HL_EIO);
}

/* ---- command line ---- */

static void test_set_overrides_file(void **state)
{
	struct hl_config cfg;
	char db[HL_CONFIG_PATH_MAX];

	(void)state;
	assert_int_equal(load(&cfg, full_file), 0);
	assert_int_equal(hl_config_set(&cfg, "server.listen", "127.0.0.1:9100",
				       err, sizeof(err)),
			 0);
	assert_int_equal(hl_config_set(&cfg, "store.db", "/tmp/x.db", err,
				       sizeof(err)),
			 0);
	assert_int_equal(hl_config_set(&cfg, "server.web_root", "/w", err,
				       sizeof(err)),
			 0);
	assert_int_equal(hl_config_set(&cfg, "server.state_dir", "/s", err,
				       sizeof(err)),
			 0);
	assert_int_equal(hl_config_set(&cfg, "log.level", "WARN", err,
				       sizeof(err)),
			 0);
	/* Any key can be set, not only the flags'. */
	assert_int_equal(hl_config_set(&cfg, "ws.outq_max", "3M", err,
				       sizeof(err)),
			 0);
	assert_string_equal(cfg.listen_host, "127.0.0.1");
	assert_int_equal(cfg.listen_port, 9100);
	assert_string_equal(cfg.db_path, "/tmp/x.db");
	assert_string_equal(cfg.web_root, "/w");
	assert_string_equal(cfg.state_dir, "/s");
	assert_int_equal(cfg.log_level, HL_LOG_WARN);
	assert_int_equal(cfg.ws_outq_max, 3 * 1024 * 1024);
	/* Untouched keys keep the file's values. */
	assert_int_equal(cfg.max_connections, 1000000);
	assert_int_equal(cfg.store_queue_max, 16);
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), 0);
	assert_int_equal(hl_config_db_path(&cfg, db, sizeof(db)), 0);
	assert_string_equal(db, "/tmp/x.db");
	/* The file's explicit origins survive a new listen address. */
	assert_int_equal(cfg.allowed_origins_count, 2);
	assert_string_equal(cfg.allowed_origins[1], "http://[::1]:9000");
}

static void test_set_unknown_key(void **state)
{
	struct hl_config cfg;

	(void)state;
	hl_config_defaults(&cfg);
	assert_int_equal(hl_config_set(&cfg, "server.port", "1", err,
				       sizeof(err)),
			 HL_EINVAL);
	assert_string_equal(err, "config: unknown key \"server.port\"");
	assert_int_equal(hl_config_set(&cfg, "listen", "127.0.0.1:1", err,
				       sizeof(err)),
			 HL_EINVAL);
	assert_string_equal(err, "config: unknown key \"listen\"");
	assert_int_equal(hl_config_set(&cfg, ".listen", "127.0.0.1:1", err,
				       sizeof(err)),
			 HL_EINVAL);
	assert_int_equal(hl_config_set(&cfg, "server.", "x", err, sizeof(err)),
			 HL_EINVAL);
	assert_int_equal(hl_config_set(&cfg, "server.listen", NULL, err,
				       sizeof(err)),
			 HL_EINVAL);
	assert_int_equal(hl_config_set(&cfg, "server.listen", "x", NULL, 0),
			 HL_EINVAL);
	assert_int_equal(cfg.listen_port, 8080);
}

/* ---- listen ---- */

static void test_listen(void **state)
{
	static const struct {
		const char *in, *host;
		int port;
	} ok[] = {
		{"127.0.0.1:8080", "127.0.0.1", 8080},
		{"0.0.0.0:0", "0.0.0.0", 0},
		{"10.1.2.3:65535", "10.1.2.3", 65535},
		{"[::1]:8080", "::1", 8080},
		{"[0:0::1]:1", "::1", 1},
		{"[2001:DB8::A]:443", "2001:db8::a", 443},
		{"[::]:80", "::", 80},
		{"localhost:9000", "localhost", 9000},
		{"LocalHost:9000", "localhost", 9000},
		{"127.0.0.1:08080", "127.0.0.1", 8080},
	};
	struct hl_config cfg;

	(void)state;
	for (size_t i = 0; i < HL_ARRAY_LEN(ok); i++) {
		hl_config_defaults(&cfg);
		if (hl_config_set(&cfg, "server.listen", ok[i].in, err,
				  sizeof(err)) != 0)
			fail_msg("%s: %s", ok[i].in, err);
		assert_string_equal(cfg.listen_host, ok[i].host);
		assert_int_equal(cfg.listen_port, ok[i].port);
	}
	/* The brief's message shape. */
	assert_int_equal(load(&cfg, "[server]\nlisten = nonsense\n"), HL_EINVAL);
	assert_string_equal(err, "config: t.ini:2: server.listen: expected "
				 "HOST:PORT, e.g. 127.0.0.1:8080 (got "
				 "\"nonsense\")");
}

/* ---- origins ---- */

static void test_origins_parse(void **state)
{
	struct hl_config cfg;

	(void)state;
	hl_config_defaults(&cfg);
	assert_int_equal(
		hl_config_set(&cfg, "staff.allowed_origins",
			      "HTTPS://Staff.Example.ORG,http://10.0.0.1:8080 "
			      "\thttp://[0:0::1]:9000,,https://x.org:443 "
			      "http://y.org:80 https://staff.example.org "
			      "http://a-b.c-d.org:8443 https://y.org:80",
			      err, sizeof(err)),
		0);
	assert_int_equal(cfg.allowed_origins_set, 1);
	assert_int_equal(cfg.allowed_origins_count, 7);
	assert_string_equal(cfg.allowed_origins[0], "https://staff.example.org");
	assert_string_equal(cfg.allowed_origins[1], "http://10.0.0.1:8080");
	assert_string_equal(cfg.allowed_origins[2], "http://[::1]:9000");
	/* Default ports are dropped, as browsers send them. */
	assert_string_equal(cfg.allowed_origins[3], "https://x.org");
	assert_string_equal(cfg.allowed_origins[4], "http://y.org");
	assert_string_equal(cfg.allowed_origins[5], "http://a-b.c-d.org:8443");
	assert_string_equal(cfg.allowed_origins[6], "https://y.org:80");

	/* A new value replaces the list. */
	assert_int_equal(hl_config_set(&cfg, "staff.allowed_origins",
				       "https://only.org", err, sizeof(err)),
			 0);
	assert_int_equal(cfg.allowed_origins_count, 1);
	assert_string_equal(cfg.allowed_origins[0], "https://only.org");
	assert_string_equal(cfg.allowed_origins[1], "");
}

static void test_origins_limits(void **state)
{
	struct hl_config cfg;
	char list[2048] = "", one[64];
	char host[300];

	(void)state;
	hl_config_defaults(&cfg);
	for (int i = 1; i <= HL_CONFIG_MAX_ORIGINS; i++) {
		snprintf(one, sizeof(one), "https://h%d.org ", i);
		strcat(list, one);
	}
	/* Duplicates do not count against the limit. */
	strcat(list, "https://h1.org https://H2.org");
	assert_int_equal(hl_config_set(&cfg, "staff.allowed_origins", list,
				       err, sizeof(err)),
			 0);
	assert_int_equal(cfg.allowed_origins_count, HL_CONFIG_MAX_ORIGINS);
	assert_string_equal(cfg.allowed_origins[15], "https://h16.org");
	strcat(list, " https://h17.org");
	assert_int_equal(hl_config_set(&cfg, "staff.allowed_origins", list,
				       err, sizeof(err)),
			 HL_EINVAL);
	assert_contains(err, "expected at most 16 origins");
	assert_int_equal(cfg.allowed_origins_count, HL_CONFIG_MAX_ORIGINS);

	/* A label over 63 bytes is not a host name. */
	memset(host, 0, sizeof(host));
	strcpy(host, "https://");
	memset(host + 8, 'a', 64);
	strcat(host, ".org");
	assert_int_equal(hl_config_set(&cfg, "staff.allowed_origins", host,
				       err, sizeof(err)),
			 HL_EINVAL);
	assert_contains(err, "expected a host");
	host[8 + 63 - 1] = '.';
	assert_int_equal(hl_config_set(&cfg, "staff.allowed_origins", host,
				       err, sizeof(err)),
			 0);
}

static void test_origins_null(void **state)
{
	struct hl_config cfg;

	(void)state;
	assert_int_equal(load(&cfg, "[staff]\nallowed_origins = null\n"),
			 HL_EINVAL);
	assert_string_equal(err, "config: t.ini:2: staff.allowed_origins: "
				 "\"null\" is not allowed: sandboxed pages, files "
				 "and other opaque origins send it, and they are "
				 "never trusted (got \"null\")");
	assert_int_equal(cfg.allowed_origins_set, 0);
	assert_int_equal(cfg.allowed_origins_count, 0);
}

static void test_origins_defaults(void **state)
{
	struct hl_config cfg;

	(void)state;
	/* IPv4 loopback: itself plus localhost. */
	hl_config_defaults(&cfg);
	assert_int_equal(hl_config_set(&cfg, "server.listen", "127.0.0.1:9000",
				       err, sizeof(err)),
			 0);
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.allowed_origins_count, 2);
	assert_string_equal(cfg.allowed_origins[0], "http://127.0.0.1:9000");
	assert_string_equal(cfg.allowed_origins[1], "http://localhost:9000");

	/* localhost: deduplicated, no second "http://localhost:…". */
	hl_config_defaults(&cfg);
	assert_int_equal(hl_config_set(&cfg, "server.listen", "localhost:9001",
				       err, sizeof(err)),
			 0);
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.allowed_origins_count, 2);
	assert_string_equal(cfg.allowed_origins[0], "http://localhost:9001");
	assert_string_equal(cfg.allowed_origins[1], "http://127.0.0.1:9001");

	/* IPv6 loopback: bracketed, plus both twins. */
	hl_config_defaults(&cfg);
	assert_int_equal(hl_config_set(&cfg, "server.listen", "[::1]:9002",
				       err, sizeof(err)),
			 0);
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.allowed_origins_count, 3);
	assert_string_equal(cfg.allowed_origins[0], "http://[::1]:9002");
	assert_string_equal(cfg.allowed_origins[1], "http://localhost:9002");
	assert_string_equal(cfg.allowed_origins[2], "http://127.0.0.1:9002");

	/* Not loopback: only itself. */
	hl_config_defaults(&cfg);
	assert_int_equal(hl_config_set(&cfg, "server.listen", "10.0.0.5:80",
				       err, sizeof(err)),
			 0);
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.allowed_origins_count, 1);
	assert_string_equal(cfg.allowed_origins[0], "http://10.0.0.5");
	hl_config_defaults(&cfg);
	assert_int_equal(hl_config_set(&cfg, "server.listen",
				       "[2001:db8::1]:8443", err, sizeof(err)),
			 0);
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.allowed_origins_count, 1);
	assert_string_equal(cfg.allowed_origins[0], "http://[2001:db8::1]:8443");

	/* finish is idempotent. */
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.allowed_origins_count, 1);
}

static void test_origins_port_zero(void **state)
{
	struct hl_config cfg;

	(void)state;
	hl_config_defaults(&cfg);
	assert_int_equal(hl_config_set(&cfg, "server.listen", "127.0.0.1:0",
				       err, sizeof(err)),
			 0);
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.allowed_origins_count, 0);
	assert_int_equal(cfg.allowed_origins_set, 0);

	assert_int_equal(hl_config_default_origins(&cfg, 0), HL_EINVAL);
	assert_int_equal(hl_config_default_origins(&cfg, 65536), HL_EINVAL);
	assert_int_equal(cfg.allowed_origins_count, 0);
	assert_int_equal(hl_config_default_origins(&cfg, 43210), 0);
	assert_int_equal(cfg.allowed_origins_count, 2);
	assert_string_equal(cfg.allowed_origins[0], "http://127.0.0.1:43210");
	assert_string_equal(cfg.allowed_origins[1], "http://localhost:43210");
	/* Refilling replaces, never appends. */
	assert_int_equal(hl_config_default_origins(&cfg, 43211), 0);
	assert_int_equal(cfg.allowed_origins_count, 2);
	assert_string_equal(cfg.allowed_origins[0], "http://127.0.0.1:43211");
	assert_string_equal(cfg.allowed_origins[1], "http://localhost:43211");
	assert_string_equal(cfg.allowed_origins[2], "");

	/* An explicit list is never replaced. */
	assert_int_equal(hl_config_set(&cfg, "staff.allowed_origins",
				       "https://a.org", err, sizeof(err)),
			 0);
	assert_int_equal(hl_config_default_origins(&cfg, 5000), 0);
	assert_int_equal(cfg.allowed_origins_count, 1);
	assert_string_equal(cfg.allowed_origins[0], "https://a.org");
}

/* ---- sizes ---- */

static void test_size_suffixes(void **state)
{
	static const struct {
		const char *in;
		size_t out;
	} ok[] = {
		{"256", 256},     {"1k", 1024},       {"64K", 65536},
		{"1m", 1048576},  {"1M", 1048576},    {"1024k", 1048576},
		{"0256", 256},    {"1048576", 1048576},
	};
	struct hl_config cfg;

	(void)state;
	for (size_t i = 0; i < HL_ARRAY_LEN(ok); i++) {
		hl_config_defaults(&cfg);
		if (hl_config_set(&cfg, "ws.max_message", ok[i].in, err,
				  sizeof(err)) != 0)
			fail_msg("%s: %s", ok[i].in, err);
		assert_int_equal(cfg.ws_max_message, ok[i].out);
	}
	assert_int_equal(hl_config_set(&cfg, "ws.outq_max", "64m", err,
				       sizeof(err)),
			 0);
	assert_int_equal(cfg.ws_outq_max, 67108864);
	assert_int_equal(hl_config_set(&cfg, "ws.outq_max", "4k", err,
				       sizeof(err)),
			 0);
	assert_int_equal(cfg.ws_outq_max, 4096);
}

/* ---- db path and finish ---- */

static void test_db_path(void **state)
{
	struct hl_config cfg;
	char db[HL_CONFIG_PATH_MAX], small[8];
	char big[HL_CONFIG_PATH_MAX];

	(void)state;
	hl_config_defaults(&cfg);
	assert_int_equal(hl_config_set(&cfg, "server.state_dir", "/srv/h/",
				       err, sizeof(err)),
			 0);
	assert_int_equal(hl_config_db_path(&cfg, db, sizeof(db)), 0);
	assert_string_equal(db, "/srv/h/helpline.db");
	assert_int_equal(hl_config_set(&cfg, "server.state_dir", "var", err,
				       sizeof(err)),
			 0);
	assert_int_equal(hl_config_db_path(&cfg, db, sizeof(db)), 0);
	assert_string_equal(db, "var/helpline.db");
	assert_int_equal(hl_config_db_path(&cfg, small, sizeof(small)),
			 HL_ERANGE);
	assert_string_equal(small, "");
	assert_int_equal(hl_config_db_path(&cfg, db, 0), HL_EINVAL);
	assert_int_equal(hl_config_set(&cfg, "store.db", "/d/x.db", err,
				       sizeof(err)),
			 0);
	assert_int_equal(hl_config_db_path(&cfg, db, sizeof(db)), 0);
	assert_string_equal(db, "/d/x.db");

	/* A state_dir with no room for "/helpline.db" fails at finish. */
	hl_config_defaults(&cfg);
	memset(big, 'd', sizeof(big));
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(hl_config_set(&cfg, "server.state_dir", big, err,
				       sizeof(err)),
			 0);
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), HL_EINVAL);
	assert_string_equal(err, "config: server.state_dir is too long to "
				 "hold helpline.db (at most 1011 bytes)");
	/* ... unless store.db is given. */
	assert_int_equal(hl_config_set(&cfg, "store.db", "/x.db", err,
				       sizeof(err)),
			 0);
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), 0);
	cfg.db_path[0] = '\0';
	cfg.state_dir[0] = '\0';
	assert_int_equal(hl_config_db_path(&cfg, db, sizeof(db)), HL_EINVAL);
}

static void test_finish_checks(void **state)
{
	struct hl_config cfg;

	(void)state;
	hl_config_defaults(&cfg);
	cfg.web_root[0] = '\0';
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), HL_EINVAL);
	assert_string_equal(err, "config: server.web_root must not be empty");

	hl_config_defaults(&cfg);
	cfg.state_dir[0] = '\0';
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), HL_EINVAL);
	assert_string_equal(err, "config: server.state_dir must not be empty");

	/* Fields set directly in code are range-checked too. */
	hl_config_defaults(&cfg);
	cfg.ws_max_message = 100;
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), HL_EINVAL);
	assert_string_equal(err, "config: ws.max_message: 100 is outside 256 "
				 "to 1048576");
	hl_config_defaults(&cfg);
	cfg.store_queue_max = 0;
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), HL_EINVAL);
	assert_contains(err, "store.queue_max");
	hl_config_defaults(&cfg);
	cfg.listen_port = 70000;
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), HL_EINVAL);
	assert_contains(err, "server.listen");
	hl_config_defaults(&cfg);
	cfg.log_level = 9;
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), HL_EINVAL);
	assert_contains(err, "log.level");

	/* The largest reply (two messages' payloads) must fit a reader's
	 * queue. */
	hl_config_defaults(&cfg);
	cfg.ws_max_message = 1048576;
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), HL_EINVAL);
	assert_string_equal(err, "config: ws.outq_max (1048576) must be at least "
				 "2 x ws.max_message + 1024 (2098176), so that the "
				 "largest reply fits a reader's queue");
	cfg.ws_outq_max = 2098176;
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), 0);
	hl_config_defaults(&cfg);
	cfg.ws_outq_max = 4096;
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), HL_EINVAL);
	assert_contains(err, "ws.outq_max (4096)");
	cfg.ws_max_message = 1536;
	assert_int_equal(hl_config_finish(&cfg, err, sizeof(err)), 0);
}

static void test_log_levels(void **state)
{
	static const struct {
		const char *in;
		int level;
	} ok[] = {
		{"debug", HL_LOG_DEBUG}, {"info", HL_LOG_INFO},
		{"warn", HL_LOG_WARN},   {"error", HL_LOG_ERROR},
		{"off", HL_LOG_OFF},
	};
	struct hl_config cfg;

	(void)state;
	for (size_t i = 0; i < HL_ARRAY_LEN(ok); i++) {
		hl_config_defaults(&cfg);
		assert_int_equal(hl_config_set(&cfg, "log.level", ok[i].in, err,
					       sizeof(err)),
				 0);
		assert_int_equal(cfg.log_level, ok[i].level);
	}
}

/*
 * ops/helpline.ini.example lists every key, commented out, with its default:
 * uncommenting all of them must give exactly the defaults. Found through
 * HL_SCHEMA_DIR (<source>/schema), which ctest sets; skipped without it.
 */
static void test_example_file_matches_defaults(void **state)
{
	struct hl_config got, want;
	const char *schema = getenv("HL_SCHEMA_DIR");
	char path[1024], line[512], text[16384] = "";
	FILE *f;

	(void)state;
	if (!schema || !*schema)
		skip();
	snprintf(path, sizeof(path), "%s/../ops/helpline.ini.example", schema);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		/* "; key = value" is a commented-out key; other "; " lines
		 * are prose. */
		const char *l = line;
		size_t name = strspn(l + 2, "abcdefghijklmnopqrstuvwxyz_");
		if (strncmp(l, "; ", 2) == 0 && name > 0 &&
		    strncmp(l + 2 + name, " = ", 3) == 0)
			l += 2;
		assert_true(strlen(text) + strlen(l) < sizeof(text));
		strcat(text, l);
	}
	fclose(f);
	hl_config_defaults(&got);
	if (hl_config_load_string(&got, text, "example", err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(hl_config_finish(&got, err, sizeof(err)), 0);

	hl_config_defaults(&want);
	assert_int_equal(hl_config_finish(&want, err, sizeof(err)), 0);
	/* The example shows the derived values and an installed web root. */
	assert_string_equal(got.web_root, "/usr/share/helpline/client-web");
	memcpy(want.web_root, got.web_root, sizeof(want.web_root));
	assert_string_equal(got.db_path, "/var/lib/helpline/helpline.db");
	memcpy(want.db_path, got.db_path, sizeof(want.db_path));
	assert_string_equal(got.key_file, "/var/lib/helpline/helpline.key");
	memcpy(want.key_file, got.key_file, sizeof(want.key_file));
	assert_int_equal(got.allowed_origins_set, 1);
	want.allowed_origins_set = 1;
	assert_memory_equal(&got, &want, sizeof(got));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full_string),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_bad_values_file),
		cmocka_unit_test(test_bad_values_set),
		cmocka_unit_test(test_referral_values),
		cmocka_unit_test(test_bad_values_set_only),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_unknown_section),
		cmocka_unit_test(test_duplicate_key),
		cmocka_unit_test(test_key_outside_section),
		cmocka_unit_test(test_comments_and_blank_lines),
		cmocka_unit_test(test_inline_hash),
		cmocka_unit_test(test_indented_line),
		cmocka_unit_test(test_origins_continuation),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_unreadable_file),
		cmocka_unit_test(test_set_overrides_file),
		cmocka_unit_test(test_set_unknown_key),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_origins_parse),
		cmocka_unit_test(test_origins_limits),
		cmocka_unit_test(test_origins_null),
		cmocka_unit_test(test_origins_defaults),
		cmocka_unit_test(test_origins_port_zero),
		cmocka_unit_test(test_size_suffixes),
		cmocka_unit_test(test_db_path),
		cmocka_unit_test(test_finish_checks),
		cmocka_unit_test(test_log_levels),
		cmocka_unit_test(test_example_file_matches_defaults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
