/**
 * The SQL analyzer's deny lists: commands that are the operator's or bind state to a pooled session, and functions
 * no tenant tier may call. `SqlAnalyzer` builds its default policies from them.
 *
 * @internal
 */

// Commands that reach beyond the tenant's database (the server, its roles, other databases, files, extensions
// that bring such functions): the operator's, on every tenant tier.
export const serverWide = [
  "ALTER SYSTEM",
  "LOAD",
  "CHECKPOINT",
  "CREATE EXTENSION",
  "ALTER EXTENSION",
  "DROP EXTENSION",
  "CREATE FOREIGN SERVER",
  "ALTER FOREIGN SERVER",
  "CREATE FDW",
  "ALTER FDW",
  "CREATE USER MAPPING",
  "ALTER USER MAPPING",
  "IMPORT FOREIGN SCHEMA",
  "CREATE ROLE",
  "ALTER ROLE",
  "ALTER ROLE SET",
  "DROP ROLE",
  "GRANT ROLE",
  "REVOKE ROLE",
  "REASSIGN OWNED",
  "CREATE DATABASE",
  "ALTER DATABASE",
  "ALTER DATABASE SET",
  "ALTER DATABASE REFRESH COLL",
  "DROP DATABASE",
  "CREATE TABLE SPACE",
  "ALTER TABLE SPACE OPTIONS",
  "DROP TABLE SPACE",
  "CREATE SUBSCRIPTION",
  "ALTER SUBSCRIPTION",
  "DROP SUBSCRIPTION",
  "CREATE P LANG",
  "CREATE EVENT TRIG",
  "ALTER EVENT TRIG",
  "SECURITY LABEL",
  // Renames, owners, privileges, comments and drops of objects that are the server's, not the database's.
  ...["ALTER", "GRANT ON", "REVOKE ON", "COMMENT ON", "DROP"].flatMap((verb) =>
    [
      "DATABASE",
      "ROLE",
      "TABLESPACE",
      "PARAMETER ACL",
      "FOREIGN SERVER",
      "FDW",
      "LANGUAGE",
      "SUBSCRIPTION",
      "EVENT TRIGGER"
    ].map((object) => `${verb} ${object}`)
  )
]
// Role changes and session state a pooled session would carry to the next statement (possibly another project's).
export const everyTenant = [
  ...serverWide,
  "SET ROLE",
  "RESET ROLE",
  "SET SESSION AUTHORIZATION",
  "RESET SESSION AUTHORIZATION",
  "PREPARE",
  "EXECUTE",
  "DEALLOCATE",
  "DISCARD"
]
export const sessionBound = ["LISTEN", "UNLISTEN"]

/** Functions no tenant tier may call (see `SqlAnalyzer.dangerousFunctions`). @internal */
export const dangerousFunctions: ReadonlyArray<string> = [
  "dblink*",
  "pg_read_file",
  "pg_read_binary_file",
  "pg_ls_*",
  "pg_stat_file",
  "pg_file_*",
  "pg_logdir_ls",
  "lo_import",
  "lo_export",
  "pg_terminate_backend",
  "pg_cancel_backend",
  "pg_signal_backend",
  "pg_log_backend_memory_contexts",
  "pg_reload_conf",
  "pg_rotate_logfile",
  "pg_promote",
  "pg_switch_wal",
  "pg_create_restore_point",
  "pg_backup_start",
  "pg_backup_stop",
  "pg_start_backup",
  "pg_stop_backup",
  "pg_wal_replay_pause",
  "pg_wal_replay_resume",
  "pg_create_physical_replication_slot",
  "pg_create_logical_replication_slot",
  "pg_copy_physical_replication_slot",
  "pg_copy_logical_replication_slot",
  "pg_drop_replication_slot",
  "pg_replication_origin_*",
  "pg_logical_slot_*",
  "pg_logical_emit_message",
  "pg_import_system_collations",
  "pg_stat_reset*",
  "query_to_xml*",
  "query_to_xmlschema",
  "cursor_to_xml*",
  "ts_stat",
  "pg_advisory_lock",
  "pg_advisory_lock_shared",
  "pg_try_advisory_lock",
  "pg_try_advisory_lock_shared",
  "pg_advisory_unlock",
  "pg_advisory_unlock_shared",
  "pg_advisory_unlock_all",
  "pg_stat_get_activity",
  "pg_stat_get_backend_activity"
]
