\set ON_ERROR_STOP on
-- 003_add_multi_database_support.sql: per-project engine targets, metrics, the connection audit log, the health
-- view and the helper functions.
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -1 -f migrations/003_add_multi_database_support.sql
--
-- Needs 001 and 002. Idempotent. Objects are created as tenantpool_owner; only the TimescaleDB extension is
-- created as the runner, since extensions need more than an owner role has.
--
-- What tenantpool_app may do here:
--   platform.databases                 SELECT, INSERT, UPDATE, DELETE (the registry of connection targets)
--   platform.database_metrics          SELECT; rows arrive through record_database_metric(s)
--   platform.database_connection_logs  SELECT; rows arrive through log_database_event(s); never UPDATE or DELETE
--   platform.database_health_overview  SELECT
--   helper functions                   EXECUTE (each is SECURITY DEFINER or INVOKER as noted)

\ir 001_platform_schema.sql
\ir 002_projects.sql
-- TimescaleDB, when this server has it: the package must be installed AND preloaded
-- (shared_preload_libraries), or CREATE EXTENSION fails. Otherwise the metrics table stays a plain table.
DO $timescaledb$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'timescaledb') THEN
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'timescaledb')
     AND pg_catalog.current_setting('shared_preload_libraries') ~ '(^|[\s,])timescaledb($|[\s,])' THEN
    BEGIN
      CREATE EXTENSION IF NOT EXISTS timescaledb;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'timescaledb is available but % may not create it: metrics stay in a plain table', current_user;
    END;
  ELSE
    RAISE NOTICE 'timescaledb is not available here: platform.database_metrics will be a plain table';
  END IF;
END
$timescaledb$;

SET ROLE tenantpool_owner;

-- ---------------------------------------------------------------------------------------------------------------
-- Validation. Each assert_* raises invalid_parameter_value with the offending value quoted (inert) and returns
-- the value otherwise, so the set-based batch inserts validate in their SELECT list.
-- ---------------------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION platform.assert_database_type(p_database_type text)
  RETURNS text
  LANGUAGE plpgsql
  IMMUTABLE
  PARALLEL SAFE
  SET search_path = pg_catalog, platform, pg_temp
AS $$
BEGIN
  IF p_database_type IS NULL OR p_database_type NOT IN ('postgres', 'redis', 'mongodb') THEN
    RAISE EXCEPTION 'invalid database type %', pg_catalog.quote_nullable(pg_catalog.left(p_database_type, 80))
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use one of postgres, redis, mongodb.';
  END IF;
  RETURN p_database_type;
END
$$;

REVOKE ALL ON FUNCTION platform.assert_database_type(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION platform.is_valid_metric_name(p_metric_name text)
  RETURNS boolean
  LANGUAGE sql
  IMMUTABLE
  PARALLEL SAFE
  SET search_path = pg_catalog, platform, pg_temp
AS $$
  SELECT p_metric_name IS NOT NULL AND p_metric_name ~ '^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$'
$$;

REVOKE ALL ON FUNCTION platform.is_valid_metric_name(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION platform.is_valid_event_type(p_event_type text)
  RETURNS boolean
  LANGUAGE sql
  IMMUTABLE
  PARALLEL SAFE
  SET search_path = pg_catalog, platform, pg_temp
AS $$
  SELECT p_event_type IS NOT NULL AND p_event_type ~ '^[a-z][a-z0-9_]{0,62}$'
$$;

REVOKE ALL ON FUNCTION platform.is_valid_event_type(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION platform.assert_metric(
  p_metric_name text,
  p_value double precision,
  p_labels jsonb,
  p_time timestamptz
)
  RETURNS void
  LANGUAGE plpgsql
  STABLE
  SET search_path = pg_catalog, platform, pg_temp
AS $$
BEGIN
  IF NOT platform.is_valid_metric_name(p_metric_name) THEN
    RAISE EXCEPTION 'invalid metric name %', pg_catalog.quote_nullable(pg_catalog.left(p_metric_name, 80))
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A metric name is 1 to 200 characters of a-z, A-Z, 0-9, "_" and ":", not starting with a digit.';
  END IF;
  IF p_value IS NULL OR p_value = 'NaN'::float8 OR p_value IN ('Infinity'::float8, '-Infinity'::float8) THEN
    RAISE EXCEPTION 'metric % has no finite value (%)', p_metric_name, p_value
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_labels IS NULL OR pg_catalog.jsonb_typeof(p_labels) <> 'object'
     OR pg_catalog.octet_length(p_labels::text) > 4096 THEN
    RAISE EXCEPTION 'labels of metric % must be a JSON object of at most 4096 bytes', p_metric_name
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_time IS NULL OR p_time > pg_catalog.now() + interval '5 minutes'
     OR p_time < pg_catalog.now() - platform.database_metrics_retention() THEN
    RAISE EXCEPTION 'time % of metric % is outside the accepted window (retention to now + 5 minutes)', p_time, p_metric_name
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;

REVOKE ALL ON FUNCTION platform.assert_metric(text, double precision, jsonb, timestamptz) FROM PUBLIC;

-- Masks passwords in URL userinfo (scheme://user:secret@) and in key=value strings (password=secret), so a
-- driver error that quotes a connection string does not put the secret into the audit log.
CREATE OR REPLACE FUNCTION platform.redact_secrets(p_text text)
  RETURNS text
  LANGUAGE sql
  IMMUTABLE
  PARALLEL SAFE
  SET search_path = pg_catalog, platform, pg_temp
AS $$
  SELECT pg_catalog.regexp_replace(
    pg_catalog.regexp_replace(p_text, '(://[^/:@\s"\\]*:)[^@\s/"\\]*@', '\1***@', 'g'),
    '((password|passwd|pwd)\s*=\s*)(''[^''\\]*''|[^\s"&;\\]+)', '\1***', 'gi'
  )
$$;

REVOKE ALL ON FUNCTION platform.redact_secrets(text) FROM PUBLIC;

-- Retention lives in one place; the cleanup functions and the audit-log guard both read it.
CREATE OR REPLACE FUNCTION platform.database_metrics_retention()
  RETURNS interval
  LANGUAGE sql
  IMMUTABLE
  PARALLEL SAFE
  SET search_path = pg_catalog, platform, pg_temp
AS $$
  SELECT interval '30 days'
$$;

REVOKE ALL ON FUNCTION platform.database_metrics_retention() FROM PUBLIC;

GRANT EXECUTE ON FUNCTION platform.database_metrics_retention() TO tenantpool_app;

CREATE OR REPLACE FUNCTION platform.database_logs_retention()
  RETURNS interval
  LANGUAGE sql
  IMMUTABLE
  PARALLEL SAFE
  SET search_path = pg_catalog, platform, pg_temp
AS $$
  SELECT interval '90 days'
$$;

REVOKE ALL ON FUNCTION platform.database_logs_retention() FROM PUBLIC;

GRANT EXECUTE ON FUNCTION platform.database_logs_retention() TO tenantpool_app;

-- ---------------------------------------------------------------------------------------------------------------
-- platform.databases: one row per project and engine. The connection string is never stored in plain text:
-- either AES-256-GCM ciphertext made by the application (key from its Config, named by connection_key_id), or a
-- reference to an external secret store. host/port/database_name are non-secret copies for display.
-- ---------------------------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS platform.databases (
  project_id text NOT NULL REFERENCES platform.projects (id) ON DELETE CASCADE,
  database_type text NOT NULL
    CONSTRAINT databases_type_known CHECK (database_type IN ('postgres', 'redis', 'mongodb')),
  connection_ciphertext bytea,
  connection_nonce bytea,
  connection_key_id text,
  secret_ref text,
  host text CONSTRAINT databases_host_length CHECK (pg_catalog.char_length(host) <= 255),
  port integer CONSTRAINT databases_port_range CHECK (port BETWEEN 1 AND 65535),
  database_name text CONSTRAINT databases_database_name_length CHECK (pg_catalog.char_length(database_name) <= 255),
  status text NOT NULL DEFAULT 'active'
    CONSTRAINT databases_status_known CHECK (status IN ('active', 'suspended', 'error')),
  health_status text NOT NULL DEFAULT 'unknown'
    CONSTRAINT databases_health_known CHECK (health_status IN ('healthy', 'degraded', 'unhealthy', 'unknown')),
  last_health_check timestamptz,
  version bigint NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  CONSTRAINT databases_project_engine_key PRIMARY KEY (project_id, database_type),
  -- Exactly one source for the secret: all three ciphertext columns, or the external reference.
  CONSTRAINT databases_one_secret_source CHECK (
    (connection_ciphertext IS NOT NULL AND connection_nonce IS NOT NULL AND connection_key_id IS NOT NULL
      AND secret_ref IS NULL)
    OR (connection_ciphertext IS NULL AND connection_nonce IS NULL AND connection_key_id IS NULL
      AND secret_ref IS NOT NULL)
  ),
  -- GCM: a 96-bit nonce, and the ciphertext carries its 16-byte tag, so it is longer than 16 bytes.
  CONSTRAINT databases_nonce_96_bits CHECK (pg_catalog.octet_length(connection_nonce) = 12),
  CONSTRAINT databases_ciphertext_has_tag CHECK (pg_catalog.octet_length(connection_ciphertext) > 16),
  CONSTRAINT databases_key_id_format CHECK (connection_key_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
  -- A reference names a secret; it is not the secret. Refuse anything that looks like a connection string.
  CONSTRAINT databases_secret_ref_not_a_url CHECK (
    pg_catalog.char_length(secret_ref) BETWEEN 1 AND 512
    AND secret_ref !~* '^\s*(postgres(ql)?|redis|rediss|mongodb(\+srv)?)://'
    AND secret_ref !~* 'password\s*='
  )
);

COMMENT ON TABLE platform.databases IS
  'Each project''s engine targets. Connection strings only as application-encrypted ciphertext or a secret reference.';
COMMENT ON COLUMN platform.databases.connection_ciphertext IS
  'AES-256-GCM(key connection_key_id, nonce connection_nonce, aad "<project_id>/<database_type>") of the UTF-8 connection string, followed by the 16-byte tag.';
COMMENT ON COLUMN platform.databases.connection_nonce IS 'The 12-byte GCM nonce; random per encryption.';
COMMENT ON COLUMN platform.databases.connection_key_id IS 'Names the key in the application''s Config; the key itself is never stored here.';
COMMENT ON COLUMN platform.databases.secret_ref IS 'Alternative to the ciphertext: a reference the application resolves in an external secret store.';
COMMENT ON COLUMN platform.databases.version IS 'Incremented when the target (secret, host, port, database, status) changes; not by health updates.';

-- Bumps version and updated_at only when the connection target changes, so caches keyed on version are not
-- invalidated by every health check.
CREATE OR REPLACE FUNCTION platform.touch_database_target()
  RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, platform, pg_temp
AS $$
BEGIN
  NEW.created_at := OLD.created_at;
  IF (NEW.connection_ciphertext, NEW.connection_nonce, NEW.connection_key_id, NEW.secret_ref,
      NEW.host, NEW.port, NEW.database_name, NEW.status)
     IS DISTINCT FROM
     (OLD.connection_ciphertext, OLD.connection_nonce, OLD.connection_key_id, OLD.secret_ref,
      OLD.host, OLD.port, OLD.database_name, OLD.status) THEN
    NEW.version := OLD.version + 1;
    NEW.updated_at := pg_catalog.now();
  ELSE
    NEW.version := OLD.version;
    NEW.updated_at := OLD.updated_at;
  END IF;
  RETURN NEW;
END
$$;

REVOKE ALL ON FUNCTION platform.touch_database_target() FROM PUBLIC;

DO $triggers$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_trigger
    WHERE tgrelid = 'platform.databases'::pg_catalog.regclass AND tgname = 'databases_touch_target'
  ) THEN
    CREATE TRIGGER databases_touch_target
      BEFORE UPDATE ON platform.databases
      FOR EACH ROW EXECUTE FUNCTION platform.touch_database_target();
  END IF;
END
$triggers$;

REVOKE ALL ON platform.databases FROM PUBLIC;

GRANT SELECT, INSERT, UPDATE, DELETE ON platform.databases TO tenantpool_app;

-- ---------------------------------------------------------------------------------------------------------------
-- platform.database_metrics: time series. No primary key and no foreign keys, so it can become a TimescaleDB
-- hypertable or a declaratively partitioned table without rewriting the helpers.
-- ---------------------------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS platform.database_metrics (
  time timestamptz NOT NULL DEFAULT pg_catalog.now(),
  project_id text NOT NULL CONSTRAINT database_metrics_project_id_format CHECK (platform.is_valid_project_id(project_id)),
  database_type text NOT NULL
    CONSTRAINT database_metrics_type_known CHECK (database_type IN ('postgres', 'redis', 'mongodb')),
  metric_name text NOT NULL
    CONSTRAINT database_metrics_name_format CHECK (platform.is_valid_metric_name(metric_name)),
  value double precision NOT NULL,
  labels jsonb NOT NULL DEFAULT '{}'::jsonb
    CONSTRAINT database_metrics_labels_object CHECK (pg_catalog.jsonb_typeof(labels) = 'object')
);

COMMENT ON TABLE platform.database_metrics IS
  'Metric samples per project and engine; a TimescaleDB hypertable when the extension is installed.';

-- The hypertable path: only when the extension exists in this database (see the DO block at the top).
-- 1-day chunks; our own indexes below are propagated to every chunk, so no default indexes are made.
DO $hypertable$
DECLARE
  timescaledb_schema name;
BEGIN
  SELECT n.nspname INTO timescaledb_schema
  FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
  WHERE e.extname = 'timescaledb';
  IF timescaledb_schema IS NULL THEN
    RAISE NOTICE 'platform.database_metrics is a plain table (indexed on (project_id, time DESC), BRIN on time)';
    RETURN;
  END IF;
  EXECUTE pg_catalog.format(
    'SELECT %I.create_hypertable(%L::regclass, %L::name, chunk_time_interval => %L::interval, '
      'create_default_indexes => false, if_not_exists => true, migrate_data => true)',
    timescaledb_schema, 'platform.database_metrics', 'time', '1 day'
  );
END
$hypertable$;

CREATE INDEX IF NOT EXISTS database_metrics_project_time_idx
  ON platform.database_metrics (project_id, time DESC);

CREATE INDEX IF NOT EXISTS database_metrics_time_brin
  ON platform.database_metrics USING brin (time);

REVOKE ALL ON platform.database_metrics FROM PUBLIC;

REVOKE ALL ON platform.database_metrics FROM tenantpool_app;

GRANT SELECT ON platform.database_metrics TO tenantpool_app;

-- ---------------------------------------------------------------------------------------------------------------
-- platform.database_connection_logs: append-only audit. The application inserts through log_database_event(s)
-- and holds only SELECT; a trigger refuses UPDATE, TRUNCATE and any DELETE other than the retention cleanup.
-- ---------------------------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS platform.database_connection_logs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  time timestamptz NOT NULL DEFAULT pg_catalog.now(),
  project_id text NOT NULL
    CONSTRAINT database_connection_logs_project_id_format CHECK (platform.is_valid_project_id(project_id)),
  database_type text NOT NULL
    CONSTRAINT database_connection_logs_type_known CHECK (database_type IN ('postgres', 'redis', 'mongodb')),
  event_type text NOT NULL
    CONSTRAINT database_connection_logs_event_type_format CHECK (platform.is_valid_event_type(event_type)),
  severity text NOT NULL DEFAULT 'info'
    CONSTRAINT database_connection_logs_severity_known CHECK (severity IN ('info', 'warning', 'error')),
  message text CONSTRAINT database_connection_logs_message_length CHECK (pg_catalog.char_length(message) <= 4000),
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb
    CONSTRAINT database_connection_logs_metadata_object CHECK (pg_catalog.jsonb_typeof(metadata) = 'object')
);

COMMENT ON TABLE platform.database_connection_logs IS
  'Append-only audit of connection events. Rows leave only through platform.cleanup_old_database_logs() after 90 days.';

CREATE INDEX IF NOT EXISTS database_connection_logs_project_time_idx
  ON platform.database_connection_logs (project_id, database_type, time DESC);

CREATE INDEX IF NOT EXISTS database_connection_logs_time_brin
  ON platform.database_connection_logs USING brin (time);

-- A DELETE passes only when all three hold: the cleanup function set tenantpool.audit_cleanup (transaction-local,
-- see cleanup_old_database_logs), the deleting user is the table's owner (true only inside that
-- SECURITY DEFINER function, since the application is not a member of the owner role), and the row is past
-- retention. UPDATE and TRUNCATE never pass. Privileges already deny the application; this also stops the owner
-- and anyone granted extra privileges later.
CREATE OR REPLACE FUNCTION platform.guard_connection_logs()
  RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, platform, pg_temp
AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF pg_catalog.current_setting('tenantpool.audit_cleanup', true) = 'on'
       AND current_user = (SELECT pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID)
       AND OLD.time < pg_catalog.now() - platform.database_logs_retention() THEN
      RETURN OLD;
    END IF;
  END IF;
  RAISE EXCEPTION 'platform.database_connection_logs is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'Rows older than the retention are removed only by platform.cleanup_old_database_logs().';
END
$$;

REVOKE ALL ON FUNCTION platform.guard_connection_logs() FROM PUBLIC;

DO $triggers$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_trigger
    WHERE tgrelid = 'platform.database_connection_logs'::pg_catalog.regclass
      AND tgname = 'database_connection_logs_append_only'
  ) THEN
    CREATE TRIGGER database_connection_logs_append_only
      BEFORE UPDATE OR DELETE ON platform.database_connection_logs
      FOR EACH ROW EXECUTE FUNCTION platform.guard_connection_logs();
  END IF;
  IF NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_trigger
    WHERE tgrelid = 'platform.database_connection_logs'::pg_catalog.regclass
      AND tgname = 'database_connection_logs_no_truncate'
  ) THEN
    CREATE TRIGGER database_connection_logs_no_truncate
      BEFORE TRUNCATE ON platform.database_connection_logs
      FOR EACH STATEMENT EXECUTE FUNCTION platform.guard_connection_logs();
  END IF;
END
$triggers$;

REVOKE ALL ON platform.database_connection_logs FROM PUBLIC;

REVOKE ALL ON platform.database_connection_logs FROM tenantpool_app;

GRANT SELECT ON platform.database_connection_logs TO tenantpool_app;

-- ---------------------------------------------------------------------------------------------------------------
-- Helper functions. SECURITY DEFINER ones run as tenantpool_owner: search_path is pinned with pg_temp last, every
-- platform name is schema-qualified, EXECUTE is revoked from PUBLIC and granted to tenantpool_app.
-- ---------------------------------------------------------------------------------------------------------------

-- Records one sample. p_time defaults to now(); buffered writers pass the time they measured.
CREATE OR REPLACE FUNCTION platform.record_database_metric(
  p_project_id text,
  p_database_type text,
  p_metric_name text,
  p_value double precision,
  p_labels jsonb DEFAULT '{}'::jsonb,
  p_time timestamptz DEFAULT NULL
)
  RETURNS void
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = pg_catalog, platform, pg_temp
AS $$
BEGIN
  PERFORM platform.assert_project_id(p_project_id);
  PERFORM platform.assert_database_type(p_database_type);
  PERFORM platform.assert_metric(p_metric_name, p_value, p_labels, coalesce(p_time, pg_catalog.now()));
  INSERT INTO platform.database_metrics (time, project_id, database_type, metric_name, value, labels)
  VALUES (coalesce(p_time, pg_catalog.now()), p_project_id, p_database_type, p_metric_name, p_value, p_labels);
END
$$;

REVOKE ALL ON FUNCTION platform.record_database_metric(text, text, text, double precision, jsonb, timestamptz) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION platform.record_database_metric(text, text, text, double precision, jsonb, timestamptz)
  TO tenantpool_app;

-- Records a batch in one statement: a JSON array of objects
-- {"project_id", "database_type", "metric_name", "value", "labels"?, "time"?}. All or nothing; returns the count.
CREATE OR REPLACE FUNCTION platform.record_database_metrics(p_metrics jsonb)
  RETURNS integer
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = pg_catalog, platform, pg_temp
AS $$
DECLARE
  inserted integer;
BEGIN
  IF p_metrics IS NULL OR pg_catalog.jsonb_typeof(p_metrics) <> 'array' THEN
    RAISE EXCEPTION 'record_database_metrics expects a JSON array of metric objects'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF pg_catalog.jsonb_array_length(p_metrics) > 10000 THEN
    RAISE EXCEPTION 'a metric batch holds at most 10000 samples, got %', pg_catalog.jsonb_array_length(p_metrics)
      USING ERRCODE = 'program_limit_exceeded';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(p_metrics) AS e(item)
             WHERE pg_catalog.jsonb_typeof(e.item) <> 'object') THEN
    RAISE EXCEPTION 'every element of a metric batch must be a JSON object'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM platform.assert_project_id(m.project_id),
          platform.assert_database_type(m.database_type),
          platform.assert_metric(m.metric_name, m.value, coalesce(m.labels, '{}'::jsonb),
                                 coalesce(m.time, pg_catalog.now()))
  FROM pg_catalog.jsonb_to_recordset(p_metrics)
    AS m(project_id text, database_type text, metric_name text, value double precision, labels jsonb, time timestamptz);
  INSERT INTO platform.database_metrics (time, project_id, database_type, metric_name, value, labels)
  SELECT coalesce(m.time, pg_catalog.now()), m.project_id, m.database_type, m.metric_name, m.value,
         coalesce(m.labels, '{}'::jsonb)
  FROM pg_catalog.jsonb_to_recordset(p_metrics)
    AS m(project_id text, database_type text, metric_name text, value double precision, labels jsonb, time timestamptz);
  GET DIAGNOSTICS inserted = ROW_COUNT;
  RETURN inserted;
END
$$;

REVOKE ALL ON FUNCTION platform.record_database_metrics(jsonb) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION platform.record_database_metrics(jsonb) TO tenantpool_app;

-- Appends one audit event and returns its id. The time is the server's (an audit log does not take the writer's
-- word for it); message and metadata pass through redact_secrets; messages are cut at 4000 characters.
CREATE OR REPLACE FUNCTION platform.log_database_event(
  p_project_id text,
  p_database_type text,
  p_event_type text,
  p_message text DEFAULT NULL,
  p_metadata jsonb DEFAULT '{}'::jsonb,
  p_severity text DEFAULT 'info'
)
  RETURNS bigint
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = pg_catalog, platform, pg_temp
AS $$
DECLARE
  new_id bigint;
BEGIN
  PERFORM platform.assert_project_id(p_project_id);
  PERFORM platform.assert_database_type(p_database_type);
  IF NOT platform.is_valid_event_type(p_event_type) THEN
    RAISE EXCEPTION 'invalid event type %', pg_catalog.quote_nullable(pg_catalog.left(p_event_type, 80))
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'An event type is 1 to 63 characters of a-z, 0-9 and "_", starting with a letter.';
  END IF;
  IF p_severity IS NULL OR p_severity NOT IN ('info', 'warning', 'error') THEN
    RAISE EXCEPTION 'invalid severity %', pg_catalog.quote_nullable(pg_catalog.left(p_severity, 80))
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use one of info, warning, error.';
  END IF;
  IF p_metadata IS NULL OR pg_catalog.jsonb_typeof(p_metadata) <> 'object'
     OR pg_catalog.octet_length(p_metadata::text) > 16384 THEN
    RAISE EXCEPTION 'event metadata must be a JSON object of at most 16384 bytes'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO platform.database_connection_logs (project_id, database_type, event_type, severity, message, metadata)
  VALUES (
    p_project_id,
    p_database_type,
    p_event_type,
    p_severity,
    pg_catalog.left(platform.redact_secrets(p_message), 4000),
    platform.redact_secrets(p_metadata::text)::jsonb
  )
  RETURNING id INTO new_id;
  RETURN new_id;
END
$$;

REVOKE ALL ON FUNCTION platform.log_database_event(text, text, text, text, jsonb, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION platform.log_database_event(text, text, text, text, jsonb, text) TO tenantpool_app;

-- Appends a batch: a JSON array of objects
-- {"project_id", "database_type", "event_type", "message"?, "metadata"?, "severity"?}. All or nothing.
CREATE OR REPLACE FUNCTION platform.log_database_events(p_events jsonb)
  RETURNS integer
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = pg_catalog, platform, pg_temp
AS $$
DECLARE
  event record;
  logged integer := 0;
BEGIN
  IF p_events IS NULL OR pg_catalog.jsonb_typeof(p_events) <> 'array' THEN
    RAISE EXCEPTION 'log_database_events expects a JSON array of event objects'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF pg_catalog.jsonb_array_length(p_events) > 10000 THEN
    RAISE EXCEPTION 'an event batch holds at most 10000 events, got %', pg_catalog.jsonb_array_length(p_events)
      USING ERRCODE = 'program_limit_exceeded';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(p_events) AS e(item)
             WHERE pg_catalog.jsonb_typeof(e.item) <> 'object') THEN
    RAISE EXCEPTION 'every element of an event batch must be a JSON object'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR event IN
    SELECT *
    FROM pg_catalog.jsonb_to_recordset(p_events)
      AS e(project_id text, database_type text, event_type text, message text, metadata jsonb, severity text)
  LOOP
    PERFORM platform.log_database_event(
      event.project_id,
      event.database_type,
      event.event_type,
      event.message,
      coalesce(event.metadata, '{}'::jsonb),
      coalesce(event.severity, 'info')
    );
    logged := logged + 1;
  END LOOP;
  RETURN logged;
END
$$;

REVOKE ALL ON FUNCTION platform.log_database_events(jsonb) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION platform.log_database_events(jsonb) TO tenantpool_app;

-- Stores a health-check result. Returns true when the health status changed, and then also appends a
-- health_changed event (severity error for unhealthy, warning for degraded). Fails with no_data_found when the
-- project has no target of that type.
CREATE OR REPLACE FUNCTION platform.update_database_health(
  p_project_id text,
  p_database_type text,
  p_health_status text,
  p_details jsonb DEFAULT '{}'::jsonb
)
  RETURNS boolean
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = pg_catalog, platform, pg_temp
AS $$
DECLARE
  previous text;
BEGIN
  PERFORM platform.assert_project_id(p_project_id);
  PERFORM platform.assert_database_type(p_database_type);
  IF p_health_status IS NULL OR p_health_status NOT IN ('healthy', 'degraded', 'unhealthy', 'unknown') THEN
    RAISE EXCEPTION 'invalid health status %', pg_catalog.quote_nullable(pg_catalog.left(p_health_status, 80))
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use one of healthy, degraded, unhealthy, unknown.';
  END IF;
  IF p_details IS NULL OR pg_catalog.jsonb_typeof(p_details) <> 'object' THEN
    RAISE EXCEPTION 'health details must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT d.health_status INTO previous
  FROM platform.databases d
  WHERE d.project_id = p_project_id AND d.database_type = p_database_type
  FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'project % has no % database', p_project_id, p_database_type
      USING ERRCODE = 'no_data_found';
  END IF;
  UPDATE platform.databases d
  SET health_status = p_health_status, last_health_check = pg_catalog.now()
  WHERE d.project_id = p_project_id AND d.database_type = p_database_type;
  IF previous IS DISTINCT FROM p_health_status THEN
    PERFORM platform.log_database_event(
      p_project_id,
      p_database_type,
      'health_changed',
      pg_catalog.format('health %s -> %s', previous, p_health_status),
      p_details || pg_catalog.jsonb_build_object('from', previous, 'to', p_health_status),
      CASE p_health_status WHEN 'unhealthy' THEN 'error' WHEN 'degraded' THEN 'warning' ELSE 'info' END
    );
    RETURN true;
  END IF;
  RETURN false;
END
$$;

REVOKE ALL ON FUNCTION platform.update_database_health(text, text, text, jsonb) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION platform.update_database_health(text, text, text, jsonb) TO tenantpool_app;

-- Per engine and metric over the last p_interval: samples, average, min, max, p95 and the latest value.
-- SECURITY INVOKER: it only reads what the caller may read anyway.
CREATE OR REPLACE FUNCTION platform.get_database_stats(p_project_id text, p_interval interval DEFAULT interval '1 hour')
  RETURNS TABLE (
    database_type text,
    metric_name text,
    samples bigint,
    avg_value double precision,
    min_value double precision,
    max_value double precision,
    p95_value double precision,
    last_value double precision,
    last_time timestamptz
  )
  LANGUAGE plpgsql
  STABLE
  SET search_path = pg_catalog, platform, pg_temp
AS $$
#variable_conflict use_column
BEGIN
  PERFORM platform.assert_project_id(p_project_id);
  IF p_interval IS NULL OR p_interval <= interval '0' THEN
    RAISE EXCEPTION 'the stats interval must be positive, got %', p_interval
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN QUERY
    SELECT m.database_type,
           m.metric_name,
           pg_catalog.count(*),
           pg_catalog.avg(m.value),
           pg_catalog.min(m.value),
           pg_catalog.max(m.value),
           pg_catalog.percentile_cont(0.95) WITHIN GROUP (ORDER BY m.value),
           (pg_catalog.array_agg(m.value ORDER BY m.time DESC))[1],
           pg_catalog.max(m.time)
    FROM platform.database_metrics m
    WHERE m.project_id = p_project_id
      AND m.time > pg_catalog.now() - p_interval
    GROUP BY m.database_type, m.metric_name
    ORDER BY m.database_type, m.metric_name;
END
$$;

REVOKE ALL ON FUNCTION platform.get_database_stats(text, interval) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION platform.get_database_stats(text, interval) TO tenantpool_app;

-- Deletes samples older than 30 days; returns how many. Takes no arguments, so no caller can widen it.
CREATE OR REPLACE FUNCTION platform.cleanup_old_database_metrics()
  RETURNS bigint
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = pg_catalog, platform, pg_temp
AS $$
DECLARE
  deleted bigint;
BEGIN
  DELETE FROM platform.database_metrics m
  WHERE m.time < pg_catalog.now() - platform.database_metrics_retention();
  GET DIAGNOSTICS deleted = ROW_COUNT;
  RETURN deleted;
END
$$;

REVOKE ALL ON FUNCTION platform.cleanup_old_database_metrics() FROM PUBLIC;

GRANT EXECUTE ON FUNCTION platform.cleanup_old_database_metrics() TO tenantpool_app;

-- Deletes audit rows older than 90 days; returns how many. It turns the transaction-local setting
-- tenantpool.audit_cleanup on around its DELETE only, which the append-only guard requires. (A SET clause on the
-- function would be neater, but PostgreSQL 15 reserves SET clauses with custom settings to superusers.) If the
-- DELETE fails, the aborted (sub)transaction discards the setting too.
CREATE OR REPLACE FUNCTION platform.cleanup_old_database_logs()
  RETURNS bigint
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = pg_catalog, platform, pg_temp
AS $$
DECLARE
  deleted bigint;
BEGIN
  PERFORM pg_catalog.set_config('tenantpool.audit_cleanup', 'on', true);
  DELETE FROM platform.database_connection_logs l
  WHERE l.time < pg_catalog.now() - platform.database_logs_retention();
  GET DIAGNOSTICS deleted = ROW_COUNT;
  PERFORM pg_catalog.set_config('tenantpool.audit_cleanup', 'off', true);
  RETURN deleted;
END
$$;

REVOKE ALL ON FUNCTION platform.cleanup_old_database_logs() FROM PUBLIC;

GRANT EXECUTE ON FUNCTION platform.cleanup_old_database_logs() TO tenantpool_app;

-- ---------------------------------------------------------------------------------------------------------------
-- The health view: per project and engine, the stored status and health, then the last hour of events and
-- metrics, and the latest event. No secret columns.
-- ---------------------------------------------------------------------------------------------------------------

CREATE OR REPLACE VIEW platform.database_health_overview AS
SELECT
  d.project_id,
  p.tier,
  d.database_type,
  d.status,
  d.health_status,
  d.last_health_check,
  d.host,
  d.port,
  d.database_name,
  d.version,
  ev.events_last_hour,
  ev.errors_last_hour,
  ev.warnings_last_hour,
  mt.metric_samples_last_hour,
  mt.metric_averages_last_hour,
  mt.last_metric_time,
  le.event_type AS last_event_type,
  le.severity AS last_event_severity,
  le.message AS last_event_message,
  le.time AS last_event_time
FROM platform.databases d
JOIN platform.projects p ON p.id = d.project_id
CROSS JOIN LATERAL (
  SELECT pg_catalog.count(*) AS events_last_hour,
         pg_catalog.count(*) FILTER (WHERE l.severity = 'error') AS errors_last_hour,
         pg_catalog.count(*) FILTER (WHERE l.severity = 'warning') AS warnings_last_hour
  FROM platform.database_connection_logs l
  WHERE l.project_id = d.project_id AND l.database_type = d.database_type
    AND l.time > pg_catalog.now() - interval '1 hour'
) ev
CROSS JOIN LATERAL (
  SELECT coalesce(pg_catalog.sum(a.samples), 0)::bigint AS metric_samples_last_hour,
         coalesce(pg_catalog.jsonb_object_agg(a.metric_name, a.avg_value), '{}'::jsonb)
           AS metric_averages_last_hour,
         pg_catalog.max(a.last_time) AS last_metric_time
  FROM (
    SELECT m.metric_name, pg_catalog.count(*) AS samples, pg_catalog.avg(m.value) AS avg_value,
           pg_catalog.max(m.time) AS last_time
    FROM platform.database_metrics m
    WHERE m.project_id = d.project_id AND m.database_type = d.database_type
      AND m.time > pg_catalog.now() - interval '1 hour'
    GROUP BY m.metric_name
  ) a
) mt
LEFT JOIN LATERAL (
  SELECT l.event_type, l.severity, l.message, l.time
  FROM platform.database_connection_logs l
  WHERE l.project_id = d.project_id AND l.database_type = d.database_type
  ORDER BY l.time DESC, l.id DESC
  LIMIT 1
) le ON true;

COMMENT ON VIEW platform.database_health_overview IS
  'Per project and engine: status, health, last check, event and error counts and metric averages over the last hour, and the latest event.';

REVOKE ALL ON platform.database_health_overview FROM PUBLIC;

GRANT SELECT ON platform.database_health_overview TO tenantpool_app;

RESET ROLE;
\set tenantpool_migration '003_add_multi_database_support.sql 5f49b44d1209c3d768d563beac6147c9a0b1d4ac5a9bae7a15e9c66eeffe7384'
\ir psql/record.sql
