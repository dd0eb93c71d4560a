/* dispatch.h: owns the table of client message types: for each, the handler
 * that runs it, the roles that may send it and whether hello must come
 * first. Handlers see typed messages and sessions, never the wire. */
#ifndef HL_DISPATCH_H
#define HL_DISPATCH_H

#include "protocol.h"
#include "session.h"

/*
 * Runs the handler for a decoded message after checking role and state.
 * A type the role may not send is refused: on a staff connection with an
 * error reply "forbidden"; on a contact connection by closing it with 1008,
 * since a young person's client never sends staff types (DESIGN.md §9).
 */
void hl_dispatch(struct hl_session *s, const struct hl_msg *m);

#endif
