/* addrlimit.c: per-address connection counts under a daily-rotating keyed
 * hash, in an open-addressing table (linear probing, backward-shift
 * deletion) sized for the global connection cap. */
#include "addrlimit.h"
#include "common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(crypto_shorthash_KEYBYTES == 16, "hl_addrlimit.key size");

/* ---- networks ---------------------------------------------------------- */

static int parse_one(const char *item, struct hl_net *n, char *why,
		     size_t whylen)
{
	char host[64];
	const char *slash = strchr(item, '/');
	size_t hlen = slash ? (size_t)(slash - item) : strlen(item);
	int max;

	if (hlen == 0 || hlen >= sizeof(host)) {
		hl_set_err(why, whylen, "expected an address or prefix such as "
			   "127.0.0.0/8 or ::1");
		return -1;
	}
	memcpy(host, item, hlen);
	host[hlen] = '\0';
	memset(n, 0, sizeof(*n));
	if (inet_pton(AF_INET, host, n->addr) == 1) {
		n->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, n->addr) == 1) {
		n->family = AF_INET6;
		max = 128;
	} else {
		hl_set_err(why, whylen, "expected an IPv4 or IPv6 address, not "
			   "\"%.40s\"", host);
		return -1;
	}
	n->prefix = (uint8_t)max;
	if (slash) {
		char *end;
		long p = strtol(slash + 1, &end, 10);

		if (slash[1] < '0' || slash[1] > '9' || *end || p < 0 ||
		    p > max) {
			hl_set_err(why, whylen, "expected a prefix length "
				   "0..%d after \"/\"", max);
			return -1;
		}
		n->prefix = (uint8_t)p;
	}
	/* Host bits are cleared, so 10.1.2.3/16 means 10.1.0.0/16. */
	for (int bit = n->prefix; bit < max; bit++)
		n->addr[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
	return 0;
}

int hl_nets_parse(const char *text, struct hl_nets *out, char *why,
		  size_t whylen)
{
	struct hl_nets nets = {0};
	const char *p = text;

	while (*p == ' ' || *p == '\t')
		p++;
	if (strcmp(p, "none") == 0) {
		*out = nets;
		return 0;
	}
	for (;;) {
		char item[80];
		size_t len;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		len = strcspn(p, " \t,");
		if (len >= sizeof(item)) {
			hl_set_err(why, whylen, "expected an address or prefix "
				   "such as 127.0.0.0/8 or ::1");
			return -1;
		}
		if (nets.count >= HL_NETS_MAX) {
			hl_set_err(why, whylen, "expected at most %d networks",
				   HL_NETS_MAX);
			return -1;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		if (parse_one(item, &nets.net[nets.count], why, whylen) != 0)
			return -1;
		nets.count++;
		p += len;
	}
	if (nets.count == 0) {
		hl_set_err(why, whylen, "expected addresses or prefixes such as "
			   "\"127.0.0.0/8, ::1\", or \"none\"");
		return -1;
	}
	*out = nets;
	return 0;
}

/* The address of sa as family + 4 or 16 bytes, IPv4-mapped IPv6 turned
 * into IPv4. Returns the family, or 0 for anything else. */
static int addr_of(const struct sockaddr *sa, uint8_t addr[16])
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					   0xff, 0xff};

	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		memcpy(addr, &in->sin_addr, 4);
		return AF_INET;
	}
	if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		if (memcmp(in6->sin6_addr.s6_addr, mapped, 12) == 0) {
			memcpy(addr, in6->sin6_addr.s6_addr + 12, 4);
			return AF_INET;
		}
		memcpy(addr, in6->sin6_addr.s6_addr, 16);
		return AF_INET6;
	}
	return 0;
}

static bool net_contains(const struct hl_net *n, int family,
			 const uint8_t addr[16])
{
	int full = n->prefix / 8, rest = n->prefix % 8;

	if (n->family != family)
		return false;
	if (memcmp(n->addr, addr, (size_t)full) != 0)
		return false;
	if (rest) {
		uint8_t m = (uint8_t)(0xffu << (8 - rest));

		if ((n->addr[full] & m) != (addr[full] & m))
			return false;
	}
	return true;
}

bool hl_nets_contain(const struct hl_nets *nets, const struct sockaddr *sa)
{
	uint8_t addr[16];
	int family = addr_of(sa, addr);

	for (int i = 0; family && i < nets->count; i++)
		if (net_contains(&nets->net[i], family, addr))
			return true;
	return false;
}

/* ---- the tables -------------------------------------------------------- */

/* Slots (a power of two, from min up to cap) for 4 * max_connections tags:
 * at most 2 * max_connections at once, the table at most half full. */
static uint32_t table_slots(int max_connections, uint32_t min, uint32_t cap)
{
	uint32_t slots = min;

	while (slots < 4u * (uint32_t)(max_connections > 0 ? max_connections : 1) &&
	       slots < cap)
		slots <<= 1;
	return slots;
}

/* The slot holding tag in tags (mask + 1 slots, linear probing), or the
 * empty slot where it would go. */
static uint32_t probe(const uint64_t *tags, uint32_t mask, uint64_t tag)
{
	uint32_t i = (uint32_t)tag & mask;

	while (tags[i] && tags[i] != tag)
		i = (i + 1) & mask;
	return i;
}

int hl_addrlimit_init(struct hl_addrlimit *a, int limit, int max_connections,
		      const struct hl_nets *uncounted)
{
	uint32_t slots;

	memset(a, 0, sizeof(*a));
	a->limit = limit > 0 ? limit : 0;
	a->key_day = -1;
	if (uncounted)
		a->uncounted = *uncounted;
	if (!a->limit)
		return HL_OK;
	/* At most max_connections distinct tags at once (twice that around
	 * a key change). */
	slots = table_slots(max_connections, 64, 1u << 26);
	a->tags = calloc(slots, sizeof(*a->tags));
	a->counts = calloc(slots, sizeof(*a->counts));
	if (!a->tags || !a->counts) {
		hl_addrlimit_free(a);
		return HL_ENOMEM;
	}
	a->mask = slots - 1;
	return HL_OK;
}

/* Frees the failure table and turns the budget off. */
static void drop_failures(struct hl_addrlimit *a)
{
	free(a->fail_tags);
	free(a->fail_full_at);
	a->fail_tags = NULL;
	a->fail_full_at = NULL;
	a->fail_used = a->fail_mask = 0;
	a->fail_limit = 0;
}

void hl_addrlimit_free(struct hl_addrlimit *a)
{
	sodium_memzero(a->key, sizeof(a->key));
	free(a->tags);
	free(a->counts);
	a->tags = NULL;
	a->counts = NULL;
	a->used = a->mask = 0;
	drop_failures(a);
}

/* The tag of sa under today's key (a new key at the first use of each UTC
 * day); 0 when sa is not counted. */
static uint64_t tag_of(struct hl_addrlimit *a, const struct sockaddr *sa,
		       int64_t now_s)
{
	uint8_t addr[17];
	int family, len;
	int64_t day = now_s >= 0 ? now_s / 86400 : -1 - (-1 - now_s) / 86400;
	uint64_t tag;

	if ((!a->limit || !a->tags) && (!a->fail_limit || !a->fail_tags))
		return 0;
	family = addr_of(sa, addr + 1);
	if (!family || hl_nets_contain(&a->uncounted, sa))
		return 0;
	if (day != a->key_day) {
		/* Yesterday's key is overwritten: its tags can no longer be
		 * matched to an address by anyone. */
		randombytes_buf(a->key, sizeof(a->key));
		a->key_day = day;
		/* The failure budget is kept under today's tags only. */
		if (a->fail_tags) {
			memset(a->fail_tags, 0,
			       ((size_t)a->fail_mask + 1) * sizeof(*a->fail_tags));
			a->fail_used = 0;
		}
	}
	addr[0] = (uint8_t)family;
	len = family == AF_INET ? 1 + 4 : 1 + 8; /* IPv6: the /64 */
	crypto_shorthash((unsigned char *)&tag, addr, (unsigned long long)len,
			 a->key);
	sodium_memzero(addr, sizeof(addr));
	return tag ? tag : 1;
}

static uint32_t slot_of(const struct hl_addrlimit *a, uint64_t tag)
{
	return probe(a->tags, a->mask, tag);
}

bool hl_addrlimit_allows(struct hl_addrlimit *a, const struct sockaddr *sa,
			 int64_t now_s)
{
	uint64_t tag = tag_of(a, sa, now_s);

	if (!tag || !a->limit || !a->tags)
		return true;
	return a->counts[slot_of(a, tag)] < (uint32_t)a->limit;
}

uint64_t hl_addrlimit_acquire(struct hl_addrlimit *a, const struct sockaddr *sa,
			      int64_t now_s)
{
	uint64_t tag = tag_of(a, sa, now_s);
	uint32_t i;

	if (!tag || !a->limit || !a->tags)
		return tag; /* not capped: the tag is for the failure budget */
	i = slot_of(a, tag);
	if (!a->tags[i]) {
		if (a->used >= a->mask) /* full: never with max_connections held */
			return 0;
		a->tags[i] = tag;
		a->used++;
	}
	a->counts[i]++;
	return tag;
}

void hl_addrlimit_release(struct hl_addrlimit *a, uint64_t tag)
{
	uint32_t i, j;

	if (!tag || !a->tags)
		return;
	i = slot_of(a, tag);
	if (a->tags[i] != tag || a->counts[i] == 0)
		return;
	if (--a->counts[i])
		return;
	/* Backward-shift deletion keeps every probe sequence unbroken. */
	a->tags[i] = 0;
	a->used--;
	for (j = (i + 1) & a->mask; a->tags[j]; j = (j + 1) & a->mask) {
		uint32_t home = (uint32_t)a->tags[j] & a->mask;

		/* Move j into the hole at i unless its home lies in (i, j]. */
		if (((j - home) & a->mask) >= ((j - i) & a->mask)) {
			a->tags[i] = a->tags[j];
			a->counts[i] = a->counts[j];
			a->tags[j] = 0;
			a->counts[j] = 0;
			i = j;
		}
	}
}

uint32_t hl_addrlimit_count(struct hl_addrlimit *a, const struct sockaddr *sa,
			    int64_t now_s)
{
	uint64_t tag = tag_of(a, sa, now_s);

	return tag && a->tags ? a->counts[slot_of(a, tag)] : 0;
}

/* ---- the failed-attempt budget ----------------------------------------- */

int hl_addrlimit_set_failures(struct hl_addrlimit *a, int failures,
			      int window_s, int max_connections)
{
	uint32_t slots;

	drop_failures(a);
	a->fail_limit = failures > 0 && window_s > 0 ? failures : 0;
	a->fail_window_ms = (int64_t)window_s * 1000;
	if (!a->fail_limit)
		return HL_OK;
	/* Entries outlive their connections by up to a window: room for
	 * twice max_connections addresses. */
	slots = table_slots(max_connections, 1024, 1u << 24);
	a->fail_tags = calloc(slots, sizeof(*a->fail_tags));
	a->fail_full_at = calloc(slots, sizeof(*a->fail_full_at));
	if (!a->fail_tags || !a->fail_full_at) {
		drop_failures(a);
		return HL_ENOMEM;
	}
	a->fail_mask = slots - 1;
	return HL_OK;
}

static uint32_t fail_slot(const struct hl_addrlimit *a, uint64_t tag)
{
	return probe(a->fail_tags, a->fail_mask, tag);
}

/* The time one failure adds to an entry. */
static int64_t fail_step(const struct hl_addrlimit *a)
{
	int64_t step = a->fail_window_ms / a->fail_limit;

	return step > 0 ? step : 1;
}

int64_t hl_addrlimit_barred_ms(struct hl_addrlimit *a, uint64_t tag,
			       int64_t now_ms)
{
	uint32_t i;
	int64_t wait;

	if (!tag || !a->fail_limit || !a->fail_tags)
		return 0;
	i = fail_slot(a, tag);
	if (!a->fail_tags[i])
		return 0;
	/* One more failure must keep full_at within a window of now. */
	wait = a->fail_full_at[i] + fail_step(a) - a->fail_window_ms - now_ms;
	return wait > 0 ? wait : 0;
}

/* Drops the entries whose budget is whole again (at most once a second:
 * the table is rebuilt). */
static void fail_sweep(struct hl_addrlimit *a, int64_t now_ms)
{
	uint32_t slots = a->fail_mask + 1;
	uint64_t *tags;
	int64_t *full;

	if (now_ms - a->fail_swept_ms < 1000 && now_ms >= a->fail_swept_ms)
		return;
	a->fail_swept_ms = now_ms;
	tags = malloc(slots * sizeof(*tags));
	full = malloc(slots * sizeof(*full));
	if (!tags || !full) {
		free(tags);
		free(full);
		return;
	}
	memcpy(tags, a->fail_tags, slots * sizeof(*tags));
	memcpy(full, a->fail_full_at, slots * sizeof(*full));
	memset(a->fail_tags, 0, slots * sizeof(*tags));
	a->fail_used = 0;
	for (uint32_t k = 0; k < slots; k++) {
		uint32_t i;

		if (!tags[k] || full[k] <= now_ms)
			continue;
		i = fail_slot(a, tags[k]);
		a->fail_tags[i] = tags[k];
		a->fail_full_at[i] = full[k];
		a->fail_used++;
	}
	free(tags);
	free(full);
}

bool hl_addrlimit_failed(struct hl_addrlimit *a, uint64_t tag, int64_t now_ms)
{
	uint32_t i;

	if (!tag || !a->fail_limit || !a->fail_tags)
		return true;
	i = fail_slot(a, tag);
	if (!a->fail_tags[i]) {
		if (a->fail_used * 2 >= a->fail_mask) {
			fail_sweep(a, now_ms);
			i = fail_slot(a, tag);
		}
		if (a->fail_used * 2 >= a->fail_mask) {
			/* Full of live entries: only an attacker with more
			 * addresses than connections gets here; the
			 * per-connection limit still holds. */
			a->fail_untracked++;
			return false;
		}
		a->fail_tags[i] = tag;
		a->fail_full_at[i] = now_ms;
		a->fail_used++;
	}
	if (a->fail_full_at[i] < now_ms)
		a->fail_full_at[i] = now_ms;
	a->fail_full_at[i] += fail_step(a);
	return true;
}
