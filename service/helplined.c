/* helplined.c: the daemon's entry point: command line, configuration, run. */
#include "common.h"
#include "config.h"
#include "log.h"
#include "pwhash.h"
#include "server.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: helplined [OPTIONS]\n"
		"Helpline's chat service: serves client-web/ and the WebSocket\n"
		"protocols helpline.contact.v1 and helpline.staff.v1 on /ws.\n"
		"\n"
		"Options (each overrides the config file's key in brackets):\n"
		"  --config FILE      read settings from an INI file\n"
		"  --listen HOST:PORT address to listen on [server.listen]\n"
		"                     (default 127.0.0.1:8080)\n"
		"  --db PATH          SQLite database file [store.db]\n"
		"                     (default STATE_DIR/helpline.db)\n"
		"  --state-dir DIR    state directory [server.state_dir]\n"
		"                     (default /var/lib/helpline)\n"
		"  --web-root DIR     static files to serve [server.web_root]\n"
		"  --log-level LEVEL  debug, info, warn, error, off [log.level]\n"
		"  --help             show this help and exit\n"
		"  --version          show the version and exit\n"
		"\n"
		"SIGINT or SIGTERM shut down cleanly (clients get close 1001).\n"
		"SIGHUP re-reads and checks the config file and logs whether a\n"
		"restart is needed to apply it (nothing changes while running).\n"
		"Under systemd (Type=notify) it reports READY=1, STATUS=,\n"
		"WATCHDOG=1 and STOPPING=1 on $NOTIFY_SOCKET.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"listen", required_argument, NULL, 'l'},
		{"db", required_argument, NULL, 'd'},
		{"state-dir", required_argument, NULL, 's'},
		{"web-root", required_argument, NULL, 'w'},
		{"log-level", required_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	/* Command-line settings, applied after the config file. */
	struct hl_server_override set[16];
	int nset = 0, c, rc;
	const char *config_file = NULL;
	struct hl_config cfg;
	struct hl_server *srv;
	char err[512];

	/* Internal: an Argon2id worker this daemon started (pwhash.h). */
	if (argc == 2 && strcmp(argv[1], "--pwhash-worker") == 0)
		return hl_pwhash_worker_main();
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		const char *key = NULL;

		switch (c) {
		case 'c': config_file = optarg; continue;
		case 'l': key = "server.listen"; break;
		case 'd': key = "store.db"; break;
		case 's': key = "server.state_dir"; break;
		case 'w': key = "server.web_root"; break;
		case 'L': key = "log.level"; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("helplined %s\n", HL_VERSION); return 0;
		default: usage(stderr); return 2;
		}
		if (nset == (int)HL_ARRAY_LEN(set)) {
			fprintf(stderr, "helplined: too many options\n");
			return 2;
		}
		set[nset].key = key;
		set[nset].value = optarg;
		nset++;
	}
	if (optind < argc) {
		fprintf(stderr, "helplined: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	hl_config_defaults(&cfg);
	if (config_file &&
	    hl_config_load_file(&cfg, config_file, err, sizeof(err)) != 0) {
		fprintf(stderr, "helplined: %s\n", err);
		return 2;
	}
	for (int i = 0; i < nset; i++) {
		if (hl_config_set(&cfg, set[i].key, set[i].value, err,
				  sizeof(err)) != 0) {
			fprintf(stderr, "helplined: %s\n", err);
			return 2;
		}
	}
	if (hl_config_finish(&cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "helplined: %s\n", err);
		return 2;
	}
	hl_log_set_level((enum hl_log_level)cfg.log_level);
	hl_log_set_json(cfg.log_format == HL_LOG_FORMAT_JSON);

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return 1;
	srv->config_file = config_file;
	srv->overrides = set;
	srv->noverrides = nset;
	rc = hl_server_init(srv, &cfg);
	if (rc == 0)
		rc = hl_server_run(srv);
	else
		rc = 1;
	hl_server_free(srv);
	free(srv);
	return rc;
}
