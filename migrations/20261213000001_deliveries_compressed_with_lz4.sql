-- A delivery's JSON is compressed when its row passes 2 KB, as Bitbucket
-- Cloud's pushes (about 7 KB) and real pull-request events of both
-- products (2.5 KB and up) do: by default with pglz, which took about a sixth
-- of a single-row insert of a Cloud push. pgbench, single rows of the
-- payload alone, three interleaved rounds, inserts/s, median: a Cloud push,
-- 1 client 2,590 with pglz against 3,050 with lz4, 8 clients 4,770-5,030
-- against 5,550-6,590; a Data Center pull-request event, 1 client 3,890
-- against 4,660. So a delivery's JSON is compressed with lz4 from now on.
--
-- Only values written from now on: those stored keep pglz and read as
-- before, so this rewrites nothing and an older process is unaffected.
-- A server that cannot (PostgreSQL 13, which README.md still supports, or
-- one built without lz4) keeps pglz: dynamic SQL, so that 13 does not
-- refuse the statement's syntax before it runs.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'ALTER TABLE webhook_deliveries ALTER COLUMN body SET COMPRESSION lz4,
                                                ALTER COLUMN event SET COMPRESSION lz4,
                                                ALTER COLUMN headers SET COMPRESSION lz4';
    END IF;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available on this server: deliveries stay compressed with pglz';
END
$$;
