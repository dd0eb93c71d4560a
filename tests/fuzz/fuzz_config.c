/* fuzz_config.c: libFuzzer driver for the INI config parser: any text must
 * either load into a config that passes its own range checks, or fail with
 * a message; never crash, hang or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hl_config cfg;
	char err[512];
	char *text;
	int rc;

	if (size > 65536)
		return 0;
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	hl_config_defaults(&cfg);
	err[0] = '\0';
	rc = hl_config_load_string(&cfg, text, "fuzz", err, sizeof(err));
	if (rc != 0 && err[0] == '\0')
		abort(); /* every failure must say why */
	if (rc == 0 && hl_config_finish(&cfg, err, sizeof(err)) == 0) {
		if (cfg.listen_port < 0 || cfg.listen_port > 65535 ||
		    cfg.ws_max_message < 256 || cfg.max_connections < 1)
			abort();
	}
	free(text);
	return 0;
}
