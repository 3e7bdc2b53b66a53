-- The events feed orders events by `tx`, the writing transaction's id, and
-- reads only those below the oldest transaction still running. Transaction
-- ids belong to a cluster: `bitgate restore` onto another one (a new
-- machine, a fresh embedded cluster) brought events whose ids were above
-- every id of the new cluster, so they read as not yet committed, and a
-- platform's cursor from before sorted after every new event, which it
-- then never saw.
--
-- So `tx` is a position in the feed: the transaction's id plus the feed's
-- offset, `feed_offset()`. It is 0 until a restore, which raises it above
-- every position the backed-up installation can have given (see
-- core/src/db/backup.rs). `tx` keeps its type and its values: nothing is
-- rewritten, and positions given before stay valid cursors.

-- A restore of a backup older than this migration creates the offset before
-- the migration runs; it is kept. Plans fold the offset in as a constant:
-- only a restore replaces it, which re-creates everything planned with it.
DO $$
BEGIN
    IF to_regprocedure('feed_offset()') IS NULL THEN
        CREATE FUNCTION feed_offset() RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 0::bigint';
    END IF;
END
$$;

-- Where an event written by the current transaction stands.
CREATE FUNCTION feed_position() RETURNS xid8 LANGUAGE sql STABLE AS $$
    SELECT (pg_current_xact_id()::text::bigint + feed_offset())::text::xid8
$$;

-- Every position below this one is final: no transaction still running can
-- write an event there.
CREATE FUNCTION feed_horizon() RETURNS xid8 LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::bigint + feed_offset())::text::xid8
$$;

ALTER TABLE events ALTER COLUMN tx SET DEFAULT feed_position();
