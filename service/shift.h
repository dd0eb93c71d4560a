/* shift.h: owns staff shifts: clocking in and out (stored), who is on
 * shift, and the rule that a counsellor cannot clock out holding chats
 * (they hand them over with chat.transfer first). */
#ifndef HL_SHIFT_H
#define HL_SHIFT_H

#include "protocol.h"

struct hl_server;
struct hl_session;

/* Marks who is on shift from the stored open shifts (start-up, after the
 * accounts are loaded; runs the loop until done). 0 or an HL_E* status. */
int hl_shifts_load(struct hl_server *srv);

void hl_shift_start(struct hl_session *s, const struct hl_msg *m);
void hl_shift_end(struct hl_session *s, const struct hl_msg *m);

#endif
