-- psql/record.sql: records, for psql, the migration that includes it, in the history the migrator (PgMigrations in
-- @tenantpool/pg) keeps, so that psql and the migrator agree on what is applied. Not a migration itself (the
-- migrator reads only NNN_name.sql files at the top of the directory). Each migration ends with its stamp:
--
--   \set tenantpool_migration '003_add_multi_database_support.sql <sha256>'
--   \ir psql/record.sql
--
-- <sha256> is the migrator's checksum of the file: SHA-256 of its text without the lines that begin with a
-- backslash (psql's), so the stamp can name the checksum of the file it is in. The migrator refuses a file whose
-- stamp is stale; `npm run migrations:stamp` rewrites the stamps. A file recorded with another checksum stops the
-- run here, as it stops the migrator. psql cannot count a file's statements or time it, so its rows say 0 for both
-- and `applied_by` ends in " (psql)".

CREATE TABLE IF NOT EXISTS public.tenantpool_migrations (
  id bigint PRIMARY KEY,
  name text NOT NULL,
  checksum text NOT NULL,
  statements integer NOT NULL,
  duration_ms integer NOT NULL,
  applied_by text NOT NULL DEFAULT current_user,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- psql substitutes :'tenantpool_migration' here but not inside the DO block's dollar quotes; a session setting
-- carries it across.
SET tenantpool.migration = :'tenantpool_migration';

DO $record$
DECLARE
  stamp text[] := pg_catalog.regexp_match(
    pg_catalog.current_setting('tenantpool.migration'),
    '^(\d+)_([A-Za-z0-9][A-Za-z0-9_.-]*)\.sql ([0-9a-f]{64})$'
  );
  recorded text;
BEGIN
  IF stamp IS NULL THEN
    RAISE EXCEPTION 'tenantpool_migration must be ''<NNN_name.sql> <sha256>'', got %',
      pg_catalog.quote_literal(pg_catalog.current_setting('tenantpool.migration'));
  END IF;
  SELECT m.checksum INTO recorded FROM public.tenantpool_migrations m WHERE m.id = stamp[1]::bigint;
  IF NOT FOUND THEN
    INSERT INTO public.tenantpool_migrations (id, name, checksum, statements, duration_ms, applied_by)
    VALUES (stamp[1]::bigint, stamp[2], stamp[3], 0, 0, current_user || ' (psql)');
  ELSIF recorded <> stamp[3] THEN
    RAISE EXCEPTION 'migration %_%.sql was applied with other contents (sha256 %... then, %... now)',
      stamp[1], stamp[2], pg_catalog.left(recorded, 12), pg_catalog.left(stamp[3], 12)
      USING HINT = 'Restore the applied version and put the change into a new migration file.';
  END IF;
END
$record$;

RESET tenantpool.migration;
