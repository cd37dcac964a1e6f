/**
 * The role check: once per target, it also reads the server's connection limit, so that the target's pool never
 * asks for more than its share of it (`serverShare`).
 *
 * Once per target, the engine asks the server what the role its connections log in as may do, and
 * warns (a log line, and `PgEngine.targets`) when it is more than a tenant's role should be — superuser,
 * `CREATEROLE`, `BYPASSRLS`, `REPLICATION`, `CREATEDB`, membership of a predefined role that reaches outside the
 * database (files, programs, other sessions' backends, every table), or a database anyone may connect to.
 *
 * Why: every isolation the engine and the protections give sits on top of the server's own. A tenant whose role is
 * a superuser can undo all of it (read files, start programs, become any role); a database with `CONNECT` granted
 * to `PUBLIC` can be reached by every other tenant's role. The README's operator model says what to set up.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { runStatement, type Binding, type Sessions } from "./pgSessions.ts"

// One statement, read-only, on the catalog: what the current role is and may do.
const query = `select current_setting('max_connections')::int as max_connections,
  current_setting('superuser_reserved_connections')::int as superuser_reserved,
  r.rolsuper, r.rolcreaterole, r.rolbypassrls, r.rolreplication, r.rolcreatedb,
  has_database_privilege('public', current_database(), 'CONNECT') as public_connect,
  array(select p.rolname::text from pg_roles p
        where p.rolname in ('pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files',
                            'pg_signal_backend', 'pg_read_all_data', 'pg_write_all_data', 'pg_read_all_settings',
                            'pg_checkpoint', 'pg_signal_autovacuum_worker')
          and p.oid <> r.oid and pg_has_role(r.oid, p.oid, 'MEMBER')) as predefined
  from pg_roles r where r.rolname = current_user`

interface RoleRow {
  readonly max_connections: number
  readonly superuser_reserved: number
  readonly rolsuper: boolean
  readonly rolcreaterole: boolean
  readonly rolbypassrls: boolean
  readonly rolreplication: boolean
  readonly rolcreatedb: boolean
  readonly public_connect: boolean
  readonly predefined: ReadonlyArray<string> | null
}

/**
 * What is wrong with a role, in words (empty when nothing is).
 *
 * @since 0.1.0
 */
export const findings = (row: RoleRow): ReadonlyArray<string> => {
  const out: Array<string> = []
  if (row.rolsuper) out.push("the role is a superuser")
  if (row.rolcreaterole) out.push("the role has CREATEROLE")
  if (row.rolbypassrls) out.push("the role has BYPASSRLS")
  if (row.rolreplication) out.push("the role has REPLICATION")
  if (row.rolcreatedb) out.push("the role has CREATEDB")
  for (const role of row.predefined ?? []) out.push(`the role is a member of ${role}`)
  if (row.public_connect) out.push("CONNECT on the database is granted to PUBLIC")
  return out
}

/**
 * Checks the role of a new target's connections and logs a warning once when it is too strong; caps the target's
 * pool at `serverShare` of the server's connections for non-superusers.
 */
export const checkRole = (sessions: Sessions, b: Binding, serverShare: number): Effect.Effect<void> =>
  runStatement(sessions, b, query, (conn) => conn.query(query, [], false)).pipe(
    Effect.flatMap((result) => {
      const row = result.rows[0] as unknown as RoleRow | undefined
      if (row === undefined) return Effect.void
      const cap = Math.max(1, Math.floor((row.max_connections - row.superuser_reserved) * serverShare))
      if (Number.isFinite(cap)) {
        b.pool.serverCap = cap
        b.pool.resize()
      }
      const found = findings(row)
      b.pool.roleWarnings = found
      if (found.length === 0) return Effect.void
      return Effect.logWarning(
        `PgEngine: projects on ${b.target.label} connect with a role a tenant should not have: ${found.join("; ")}. ` +
          "See the operator model in @tenantpool/pg's README."
      ).pipe(Effect.annotateLogs({ target: b.target.label, project: b.project.id }))
    }),
    Effect.catchCause((cause) =>
      Effect.logDebug("PgEngine: the role check of a target failed", cause).pipe(
        Effect.annotateLogs({ target: b.target.label })
      )
    )
  )
