\set ON_ERROR_STOP on
-- 002_projects.sql: the project registry (id and tier) that the pools are sized from.
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -1 -f migrations/002_projects.sql
--
-- Needs 001. Idempotent. Objects are created as tenantpool_owner, so they belong to it.

SET ROLE tenantpool_owner;

-- One definition of a valid project id, shared by every CHECK constraint and helper. It is the one of
-- @tenantpool/core's ProjectId, so any id the library accepts can be stored.
CREATE OR REPLACE FUNCTION platform.is_valid_project_id(p_project_id text)
  RETURNS boolean
  LANGUAGE sql
  IMMUTABLE
  PARALLEL SAFE
  SET search_path = pg_catalog, platform, pg_temp
AS $$
  SELECT p_project_id IS NOT NULL
     AND pg_catalog.char_length(p_project_id) <= 63
     AND p_project_id ~ '^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$'
$$;

REVOKE ALL ON FUNCTION platform.is_valid_project_id(text) FROM PUBLIC;

-- CHECK constraints call it with the privileges of whoever writes the row.
GRANT EXECUTE ON FUNCTION platform.is_valid_project_id(text) TO tenantpool_app;

COMMENT ON FUNCTION platform.is_valid_project_id(text) IS
  'True for 1 to 63 characters of a-z, 0-9, "-" and "_", starting and ending with a letter or digit.';

-- Raises a clear error for an invalid project id and returns it otherwise, so set-based inserts can validate
-- in their SELECT list.
CREATE OR REPLACE FUNCTION platform.assert_project_id(p_project_id text)
  RETURNS text
  LANGUAGE plpgsql
  IMMUTABLE
  PARALLEL SAFE
  SET search_path = pg_catalog, platform, pg_temp
AS $$
BEGIN
  IF NOT platform.is_valid_project_id(p_project_id) THEN
    RAISE EXCEPTION 'invalid project id %', pg_catalog.quote_nullable(pg_catalog.left(p_project_id, 80))
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A project id is 1 to 63 characters of a-z, 0-9, "-" and "_", starting and ending with a letter or digit.';
  END IF;
  RETURN p_project_id;
END
$$;

REVOKE ALL ON FUNCTION platform.assert_project_id(text) FROM PUBLIC;

-- SECURITY INVOKER helpers (get_database_stats) validate with it as the caller.
GRANT EXECUTE ON FUNCTION platform.assert_project_id(text) TO tenantpool_app;

-- Keeps updated_at honest whatever the writer sends.
CREATE OR REPLACE FUNCTION platform.set_updated_at()
  RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, platform, pg_temp
AS $$
BEGIN
  NEW.created_at := OLD.created_at;
  NEW.updated_at := pg_catalog.now();
  RETURN NEW;
END
$$;

REVOKE ALL ON FUNCTION platform.set_updated_at() FROM PUBLIC;

CREATE TABLE IF NOT EXISTS platform.projects (
  id text PRIMARY KEY
    CONSTRAINT projects_id_format CHECK (platform.is_valid_project_id(id)),
  tier text NOT NULL DEFAULT 'FREE'
    CONSTRAINT projects_tier_known CHECK (tier IN ('FREE', 'STARTER', 'PRO', 'ENTERPRISE')),
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE platform.projects IS 'Projects (tenants) and the tier that sizes their pools and limits.';

DO $triggers$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_trigger
    WHERE tgrelid = 'platform.projects'::pg_catalog.regclass AND tgname = 'projects_set_updated_at'
  ) THEN
    CREATE TRIGGER projects_set_updated_at
      BEFORE UPDATE ON platform.projects
      FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
  END IF;
END
$triggers$;

REVOKE ALL ON platform.projects FROM PUBLIC;

GRANT SELECT, INSERT, UPDATE, DELETE ON platform.projects TO tenantpool_app;

RESET ROLE;
\set tenantpool_migration '002_projects.sql 5d05d13c08e97f8aeb3f7e2546cb5548d438770a3b91902fddd9de3d129e5bb3'
\ir psql/record.sql
