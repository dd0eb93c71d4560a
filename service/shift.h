/* shift.h: owns staff shifts: clocking in and out (stored), who is on
 * shift, and the rule that a counsellor cannot clock out holding chats
 * (they hand them over with chat.transfer first). */
#ifndef HL_SHIFT_H
#define HL_SHIFT_H

#include "protocol.h"

struct hl_session;

void hl_shift_start(struct hl_session *s, const struct hl_msg *m);
void hl_shift_end(struct hl_session *s, const struct hl_msg *m);

#endif
