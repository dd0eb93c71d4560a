-- 0008_event_client_id: a retried request (the same sender and client_id)
-- is now recognised by the store writer's memory of each conversation's
-- client ids (service/dedupe.c: loaded from the conversation's events the
-- first time it is needed, every candidate checked against the stored
-- event) instead of by the unique index event_client_id. With many
-- conversations busy at once the index cost every group commit a dirty
-- page per conversation and sender, about as much WAL as the events
-- themselves (docs/performance.md, "What changed").
DROP INDEX event_client_id;
