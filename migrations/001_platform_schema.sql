\set ON_ERROR_STOP on
-- 001_platform_schema.sql: the `platform` schema and the two roles that own and use it.
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -1 -f migrations/001_platform_schema.sql
--
-- Run as a superuser, or as a role with CREATEROLE that may create schemas in this database.
-- Idempotent: every statement can run again.
--
-- Roles (cluster-wide, NOLOGIN, created only when absent):
--   tenantpool_owner  owns every object in `platform`. The SECURITY DEFINER helpers run as this role, so it
--                     is never a superuser and nobody logs in as it. Migrations create objects as it
--                     (SET ROLE tenantpool_owner), so the runner becomes a member of it.
--   tenantpool_app    the application's group role. The deployer grants it to the service's login user
--                     (GRANT tenantpool_app TO my_service_user). It reads the registry, and writes metrics and
--                     audit rows only through the helper functions.

DO $roles$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'tenantpool_owner') THEN
    BEGIN
      CREATE ROLE tenantpool_owner NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      -- Roles are shared by every database of the cluster: another database's migration won the race.
      NULL;
    END;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'tenantpool_app') THEN
    BEGIN
      CREATE ROLE tenantpool_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
  END IF;
  -- Roles that already existed were made by someone else: refuse ones that would void the design.
  IF EXISTS (
    SELECT 1 FROM pg_catalog.pg_roles
    WHERE rolname IN ('tenantpool_owner', 'tenantpool_app') AND (rolsuper OR rolbypassrls)
  ) THEN
    RAISE EXCEPTION 'tenantpool_owner and tenantpool_app must not be superusers or bypass row security'
      USING HINT = 'ALTER ROLE ... NOSUPERUSER NOBYPASSRLS, then run this migration again.';
  END IF;
END
$roles$;

-- The runner creates the later objects as tenantpool_owner (SET ROLE), which needs membership.
DO $membership$
BEGIN
  IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
     AND NOT pg_catalog.pg_has_role(current_user, 'tenantpool_owner', 'MEMBER') THEN
    EXECUTE pg_catalog.format('GRANT tenantpool_owner TO %I', current_user);
  END IF;
END
$membership$;

CREATE SCHEMA IF NOT EXISTS platform AUTHORIZATION tenantpool_owner;

ALTER SCHEMA platform OWNER TO tenantpool_owner;

REVOKE ALL ON SCHEMA platform FROM PUBLIC;

GRANT USAGE ON SCHEMA platform TO tenantpool_app;

-- PostgreSQL grants EXECUTE on every new function to PUBLIC; not for the owner's functions. Each function in
-- the later files still revokes PUBLIC explicitly, so an audit can read it in the file.
ALTER DEFAULT PRIVILEGES FOR ROLE tenantpool_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

COMMENT ON SCHEMA platform IS
  'tenantpool: project registry, per-engine connection targets, metrics and connection audit.';
\set tenantpool_migration '001_platform_schema.sql e7c6567041bd97aa8ab25540245cbe14788a926c6acc2fba93893dd7e1f4895c'
\ir psql/record.sql
