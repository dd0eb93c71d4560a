/* wire.h: the hottest outgoing messages written straight as JSON text.
 *
 * Every relayed chat message costs its sender a chat.ack and each other
 * party a chat.event. Building those as jansson trees and serialising them
 * was the largest user-space cost of the relay (docs/performance.md), so
 * they are written here directly, byte for byte what hl_proto_encode
 * writes for the same object (key order, compact separators, base64url
 * without padding; tests/unit/test_wire.c compares the two). Strings that
 * would need escaping are not handled: then 0 is returned and the caller
 * builds the tree as before. */
#ifndef HL_WIRE_H
#define HL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The size of a buffer big enough for any reply below carrying a payload
 * of len bytes (ids and strings of at most 64 bytes each). */
size_t hl_wire_max(size_t len);

/*
 * {"type":TYPE,"id":ID,"seq":SEQ,"at":AT,"chain":B64(chain)} — without
 * "id" when id is NULL or empty, without "chain" when chain is NULL, and
 * with "duplicate":true when duplicate. chain is 32 bytes. Returns the
 * length written to buf (cap bytes, NUL-terminated), or 0 when it does not
 * fit or a string needs escaping.
 */
size_t hl_wire_ack(char *buf, size_t cap, const char *type, const char *id,
		   int64_t seq, int64_t at, const unsigned char *chain,
		   bool duplicate);

/*
 * {"type":"chat.event","conversation":"CONV","seq":SEQ,"at":AT,
 *  "kind":KIND,"from":FROM,"payload":B64(payload),"chain":B64(chain)} —
 * without "payload" when len is 0, without "chain" when chain is NULL.
 * payload_b64, when not NULL, is the payload's base64url text (canonical,
 * as hl_proto_b64_decode accepts it), written as is instead of encoding
 * the len bytes: only its length is checked (0 when it is not that of len
 * bytes), never its characters. Returns as hl_wire_ack.
 */
size_t hl_wire_event(char *buf, size_t cap, int64_t conv_id, int64_t seq,
		     int64_t at, const char *kind, const char *from,
		     const void *payload, size_t len, const char *payload_b64,
		     const unsigned char *chain);

#endif
