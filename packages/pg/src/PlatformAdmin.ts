/**
 * Writes to the project registry in the `platform` schema: projects and their tiers, each project's (encrypted)
 * connection strings, removals, and key rotation.
 *
 * A connection string is parsed (so a bad one is refused before it is stored), encrypted under the key ring's
 * primary key with AES-256-GCM bound to its row (`project_id/database_type`), and stored with its host, port and
 * database name in clear for operators; the plaintext is never logged, never part of an error and never returned.
 * Every write announces the project to `PlatformRegistry` at once, so this process serves the new configuration
 * without waiting for a poll; other processes see it at their next poll.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as SqlClient from "effect/sql/SqlClient"
import type { Engine } from "@tenantpool/core/Engine"
import { InvalidConfig, type InvalidConnectionString, type InvalidProjectId } from "@tenantpool/core/Errors"
import * as ProjectId from "@tenantpool/core/ProjectId"
import * as Target from "@tenantpool/core/Target"
import type { TierName } from "@tenantpool/core/Tier"
import { engines } from "@tenantpool/core/Vocabulary"
import { decrypt, encrypt, generateKey as generateRingKey, type KeyRing } from "./internal/crypto.ts"
import { failure, keyRingOf, PlatformStoreError } from "./internal/platform.ts"
import { PlatformRegistry } from "./PlatformRegistry.ts"

/**
 * Options of the admin.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** The key ring (see `PlatformRegistry.Options`): the first key encrypts, `rotateKeys` moves rows to it. */
  readonly keys: Redacted.Redacted<string>
  /** TLS policy a connection string must satisfy to be stored (see `Target.ParseOptions`). */
  readonly tlsPolicy?: Target.ParseOptions["tlsPolicy"] | undefined
}

/**
 * A project and its tier, for `registerProject`.
 *
 * @category models
 * @since 0.1.0
 */
export interface ProjectInput {
  readonly id: string
  readonly tier: TierName
}

/**
 * A project's connection string for an engine, for `putDatabase`.
 *
 * @category models
 * @since 0.1.0
 */
export interface DatabaseInput {
  readonly projectId: string
  readonly engine: Engine
  readonly connectionString: string | Redacted.Redacted<string>
  readonly status?: "active" | "suspended" | "error" | undefined
}

/**
 * The writes to the registry.
 *
 * @category services
 * @since 0.1.0
 */
export class PlatformAdmin extends Context.Service<
  PlatformAdmin,
  {
    /** Creates a project or changes its tier. */
    readonly registerProject: (
      input: ProjectInput
    ) => Effect.Effect<void, PlatformStoreError | InvalidProjectId | InvalidConfig>
    /** Stores a project's connection string for an engine, encrypted under the primary key. */
    readonly putDatabase: (
      input: DatabaseInput
    ) => Effect.Effect<void, PlatformStoreError | InvalidProjectId | InvalidConnectionString | InvalidConfig>
    /** Removes a project's database for an engine; true when there was one. */
    readonly removeDatabase: (
      projectId: string,
      engine: Engine
    ) => Effect.Effect<boolean, PlatformStoreError | InvalidProjectId | InvalidConfig>
    /** Removes a project and its databases; true when there was one. */
    readonly removeProject: (projectId: string) => Effect.Effect<boolean, PlatformStoreError | InvalidProjectId>
    /** Re-encrypts every connection string not under the primary key; returns how many. */
    readonly rotateKeys: Effect.Effect<number, PlatformStoreError>
  }
>()("@tenantpool/pg/PlatformAdmin") {}

/**
 * A fresh random key in the key-ring format (`<id>:<base64 of 32 bytes>`), for set-up scripts and tests. Throws
 * `InvalidConfig` for an id that is not a key id (letters, digits, `._:-`, 1–128 characters).
 *
 * @category constructors
 * @since 0.1.0
 */
export const generateKey = (id: string): Redacted.Redacted<string> => generateRingKey(id)

interface State {
  readonly sql: SqlClient.SqlClient
  readonly ring: KeyRing
  readonly parseOptions: Target.ParseOptions
  readonly announce: (id: string) => Effect.Effect<void>
}

// An input object read once into a plain copy: not an object, or a getter or proxy that throws, is an InvalidConfig
// naming the field (the thrown value, which may carry the input, is not repeated).
const readInput = <A>(field: string, input: unknown, names: ReadonlyArray<string>): Effect.Effect<A, InvalidConfig> =>
  Effect.suspend(() => {
    if (typeof input !== "object" || input === null) {
      return Effect.fail(new InvalidConfig({ field, reason: "must be an object" }))
    }
    const copy: Record<string, unknown> = {}
    for (const name of names) {
      try {
        copy[name] = (input as Record<string, unknown>)[name]
      } catch {
        return Effect.fail(new InvalidConfig({ field: `${field}.${name}`, reason: "could not be read" }))
      }
    }
    return Effect.succeed(copy as A)
  })

const isEngine = (u: unknown): u is Engine => typeof u === "string" && (engines as ReadonlyArray<string>).includes(u)

const registerProject = (state: State, raw: ProjectInput) =>
  Effect.gen(function* () {
    const input = yield* readInput<ProjectInput>("project", raw, ["id", "tier"])
    const id = yield* ProjectId.decode(input.id)
    yield* state.sql`insert into platform.projects (id, tier) values (${id}, ${input.tier})
                     on conflict (id) do update set tier = excluded.tier`.pipe(
      Effect.mapError(failure("register project", id))
    )
    yield* state.announce(id)
  })

const putDatabase = (state: State, raw: DatabaseInput) =>
  Effect.gen(function* () {
    const input = yield* readInput<DatabaseInput>("database", raw, [
      "projectId",
      "engine",
      "connectionString",
      "status"
    ])
    const id = yield* ProjectId.decode(input.projectId)
    const secret =
      typeof input.connectionString === "string" ? Redacted.make(input.connectionString) : input.connectionString
    const target = yield* Target.parse(input.engine, secret, state.parseOptions)
    const sealed = encrypt(state.ring, id, input.engine, secret)
    const host = target.hosts
      .map((h) => h.host)
      .join(",")
      .slice(0, 255)
    yield* state.sql`
      insert into platform.databases (project_id, database_type, connection_ciphertext, connection_nonce,
                                      connection_key_id, secret_ref, host, port, database_name, status)
      values (${id}, ${input.engine}, ${sealed.ciphertext}, ${sealed.nonce}, ${sealed.keyId}, null,
              ${host}, ${target.port}, ${target.database.slice(0, 255)}, ${input.status ?? "active"})
      on conflict (project_id, database_type) do update set
        connection_ciphertext = excluded.connection_ciphertext,
        connection_nonce = excluded.connection_nonce,
        connection_key_id = excluded.connection_key_id,
        secret_ref = null,
        host = excluded.host,
        port = excluded.port,
        database_name = excluded.database_name,
        status = excluded.status`.pipe(Effect.mapError(failure(`store ${input.engine} database`, id)))
    yield* state.announce(id)
  })

const removeDatabase = (state: State, projectId: string, engine: Engine) =>
  Effect.gen(function* () {
    const id = yield* ProjectId.decode(projectId)
    if (!isEngine(engine))
      return yield* new InvalidConfig({ field: "engine", reason: "must be postgres, redis or mongodb" })
    const rows = yield* state.sql`delete from platform.databases where project_id = ${id} and database_type = ${engine}
                                  returning project_id`.pipe(Effect.mapError(failure(`remove ${engine} database`, id)))
    yield* state.announce(id)
    return rows.length > 0
  })

const removeProject = (state: State, projectId: string) =>
  Effect.gen(function* () {
    const id = yield* ProjectId.decode(projectId)
    const rows = yield* state.sql`delete from platform.projects where id = ${id} returning id`.pipe(
      Effect.mapError(failure("remove project", id))
    )
    yield* state.announce(id)
    return rows.length > 0
  })

interface SealedRow {
  readonly project_id: string
  readonly database_type: string
  readonly connection_ciphertext: Uint8Array
  readonly connection_nonce: Uint8Array
  readonly connection_key_id: string
}

/** Re-encrypts one row under the primary key, only if nobody changed it meanwhile; true when it did. */
const rotateRow = (state: State, row: SealedRow) =>
  Effect.gen(function* () {
    const plain = decrypt(state.ring, row.project_id, row.database_type, {
      ciphertext: row.connection_ciphertext,
      nonce: row.connection_nonce,
      keyId: row.connection_key_id
    })
    if (typeof plain === "string") {
      return yield* new PlatformStoreError({
        operation: "rotate keys",
        reason: `the ${row.database_type} connection does not decrypt under key "${row.connection_key_id}" (${plain})`,
        projectId: row.project_id
      })
    }
    const sealed = encrypt(state.ring, row.project_id, row.database_type, plain)
    const updated = yield* state.sql`
      update platform.databases
      set connection_ciphertext = ${sealed.ciphertext}, connection_nonce = ${sealed.nonce},
          connection_key_id = ${sealed.keyId}
      where project_id = ${row.project_id} and database_type = ${row.database_type}
        and connection_key_id = ${row.connection_key_id} and connection_nonce = ${row.connection_nonce}
      returning project_id`.pipe(Effect.mapError(failure("rotate keys", row.project_id)))
    if (updated.length === 0) return false
    yield* state.announce(row.project_id)
    return true
  })

const rotateKeys = (state: State) =>
  Effect.gen(function* () {
    const rows = yield* state.sql<SealedRow>`
      select project_id, database_type, connection_ciphertext, connection_nonce, connection_key_id
      from platform.databases
      where connection_key_id is not null and connection_key_id <> ${state.ring.primary}`.pipe(
      Effect.mapError(failure("rotate keys"))
    )
    let count = 0
    for (const row of rows) if (yield* rotateRow(state, row)) count++
    return count
  })

/**
 * Builds the admin on the platform database's SQL handle; its writes are announced to the `PlatformRegistry` in
 * context. A key ring that is not one is an `InvalidConfig`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function* (
  sql: SqlClient.SqlClient,
  options: Options
): Effect.fn.Return<PlatformAdmin["Service"], InvalidConfig, PlatformRegistry> {
  const registry = yield* PlatformRegistry
  const state: State = {
    sql,
    ring: yield* keyRingOf(options.keys),
    parseOptions: options.tlsPolicy === undefined ? {} : { tlsPolicy: options.tlsPolicy },
    announce: registry.announce
  }
  return PlatformAdmin.of({
    registerProject: (input) => registerProject(state, input),
    putDatabase: (input) => putDatabase(state, input),
    removeDatabase: (projectId, engine) => removeDatabase(state, projectId, engine),
    removeProject: (projectId) => removeProject(state, projectId),
    rotateKeys: rotateKeys(state)
  })
})
