/**
 * The project registry: which tier a project is on and where its databases are. The in-memory registry is
 * for tests, demos and small deployments; the PostgreSQL-backed one lives in `@tenantpool/pg`. Any registry can
 * be wrapped with `cached`, which keeps lookups of live projects off the backing store and makes repeated lookups
 * of unknown ids cheap (negative cache with a TTL).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Redacted from "effect/Redacted"
import type * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"
import { type Engine, engines, TierName, tierNames } from "./Vocabulary.ts"

const isTierName = Schema.is(TierName)
import { InvalidConfig, type InvalidConnectionString, type InvalidProjectId, ProjectNotFound } from "./Errors.ts"
import * as Durations from "./Durations.ts"
import { isRecord, readFields } from "./internal/input.ts"
import * as ProjectId from "./ProjectId.ts"
import * as Target from "./Target.ts"

/**
 * A project's configuration.
 *
 * @category models
 * @since 0.1.0
 */
export interface ProjectConfig {
  readonly id: ProjectId.ProjectId
  readonly tier: TierName
  readonly targets: Readonly<Partial<Record<Engine, Target.Target>>>
}

/**
 * A registry change: a project was added, changed or removed.
 *
 * @category models
 * @since 0.1.0
 */
export type Change = (id: ProjectId.ProjectId) => void

/**
 * The registry service.
 *
 * @category services
 * @since 0.1.0
 */
export class ProjectRegistry extends Context.Service<
  ProjectRegistry,
  {
    readonly lookup: (id: ProjectId.ProjectId) => Effect.Effect<ProjectConfig, ProjectNotFound>
    /** Registers a listener for changes; returns a function that removes it. */
    readonly subscribe: (listener: Change) => () => void
  }
>()("@tenantpool/core/Registry/ProjectRegistry") {}

/**
 * Input of `register`: connection strings as given by the user (plain or `Redacted`).
 *
 * @category models
 * @since 0.1.0
 */
export interface ProjectInput {
  readonly id: string
  readonly tier: TierName
  readonly postgres?: string | Redacted.Redacted<string> | undefined
  readonly redis?: string | Redacted.Redacted<string> | undefined
  readonly mongodb?: string | Redacted.Redacted<string> | undefined
}

/**
 * Validates a project's input into a configuration (ids and connection strings).
 *
 * @category constructors
 * @since 0.1.0
 */
export const validate = (
  input: ProjectInput,
  options?: Target.ParseOptions | undefined
): Effect.Effect<ProjectConfig, InvalidProjectId | InvalidConnectionString | InvalidConfig> =>
  Effect.gen(function* () {
    if (!isRecord(input)) {
      return yield* new InvalidConfig({ field: "project", reason: "must be an object with id and tier" })
    }
    const read = readFields("project", input, inputFields)
    if (read instanceof InvalidConfig) return yield* read
    const fields = read as ProjectInput
    const id = yield* ProjectId.decode(fields.id)
    if (!isTierName(fields.tier)) {
      return yield* new InvalidConfig({ field: "tier", reason: `must be one of ${tierNames.join(", ")}` })
    }
    const targets: Partial<Record<Engine, Target.Target>> = {}
    for (const engine of engines) {
      const cs = fields[engine]
      if (cs !== undefined) targets[engine] = yield* Target.parse(engine, cs, options)
    }
    return { id, tier: fields.tier, targets }
  })

const inputFields = ["id", "tier", ...engines] as const satisfies ReadonlyArray<keyof ProjectInput>

// A configuration given to `put`, read once and checked: a valid id, a known tier, and targets made by
// `Target.parse` for their engine (anything else is refused before it is stored, not at the project's first call).
const readConfig = (config: unknown): ProjectConfig | InvalidConfig => {
  const read = readFields("project", config, ["id", "tier", "targets"])
  if (read instanceof InvalidConfig) return read
  if (!ProjectId.is(read.id)) return new InvalidConfig({ field: "id", reason: "must be a valid project id" })
  if (!isTierName(read.tier))
    return new InvalidConfig({ field: "tier", reason: `must be one of ${tierNames.join(", ")}` })
  const targets = readFields("targets", read.targets, engines)
  if (targets instanceof InvalidConfig) return targets
  for (const engine of engines) {
    const t = targets[engine]
    if (t !== undefined && !isTarget(engine, t)) {
      return new InvalidConfig({ field: `targets.${engine}`, reason: "must be a target made by Target.parse" })
    }
  }
  return { id: read.id, tier: read.tier, targets: targets as ProjectConfig["targets"] }
}

const isTarget = (engine: Engine, t: unknown): t is Target.Target => {
  try {
    if (!isRecord(t)) return false
    const u = t as Partial<Target.Target>
    return (
      u.engine === engine &&
      typeof u.key === "string" &&
      typeof u.database === "string" &&
      typeof u.label === "string" &&
      Redacted.isRedacted(u.url) &&
      Array.isArray(u.hosts)
    )
  } catch {
    return false
  }
}

/**
 * The in-memory registry, with methods to change it.
 *
 * @category services
 * @since 0.1.0
 */
export class MemoryRegistry extends Context.Service<
  MemoryRegistry,
  {
    readonly register: (
      input: ProjectInput
    ) => Effect.Effect<ProjectConfig, InvalidProjectId | InvalidConnectionString | InvalidConfig>
    /** Stores a configuration made by `validate` (or another registry); its tier is checked again. */
    readonly put: (config: ProjectConfig) => Effect.Effect<void, InvalidConfig>
    readonly remove: (id: ProjectId.ProjectId) => Effect.Effect<boolean>
    readonly size: Effect.Effect<number>
  }
>()("@tenantpool/core/Registry/MemoryRegistry") {}

/**
 * Makes an in-memory registry. Targets are interned by key, so thousands of projects on one server share one
 * target object (this keeps a registered project at a few hundred bytes).
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeMemory = (options?: Target.ParseOptions | undefined) =>
  Effect.sync(() => {
    const projects = new Map<string, ProjectConfig>()
    const interned = new Map<string, { target: Target.Target; refs: number }>()
    const siblings = new Map<string, Target.Target>()
    const listeners = new Set<Change>()
    const notify = (id: ProjectId.ProjectId) => {
      for (const l of listeners) l(id)
    }
    // Interned by key and database: MongoDB projects share a key (one client per server) but not a database.
    const internKey = (t: Target.Target) => `${t.key}\u0000${t.database}`
    const intern = (config: ProjectConfig): ProjectConfig => {
      const targets: Partial<Record<Engine, Target.Target>> = {}
      for (const engine of engines) {
        const t = config.targets[engine]
        if (t === undefined) continue
        const entry = interned.get(internKey(t))
        if (entry !== undefined) {
          entry.refs++
          targets[engine] = entry.target
          continue
        }
        // Same server, another database (MongoDB): share everything but the database-specific fields.
        const sibling = siblings.get(t.key)
        const shared =
          sibling === undefined
            ? t
            : {
                ...t,
                key: sibling.key,
                hosts: sibling.hosts,
                host: sibling.host,
                password: sibling.password,
                params: sibling.params
              }
        if (sibling === undefined) siblings.set(t.key, t)
        interned.set(internKey(t), { target: shared, refs: 1 })
        targets[engine] = shared
      }
      return { id: config.id, tier: config.tier, targets }
    }
    const unintern = (config: ProjectConfig) => {
      for (const engine of engines) {
        const t = config.targets[engine]
        if (t === undefined) continue
        const entry = interned.get(internKey(t))
        if (entry !== undefined && --entry.refs === 0) {
          interned.delete(internKey(t))
          if (siblings.get(t.key) === entry.target) siblings.delete(t.key)
        }
      }
    }
    const put = (input: ProjectConfig): Effect.Effect<void, InvalidConfig> => {
      const config = readConfig(input)
      return config instanceof InvalidConfig
        ? Effect.fail(config)
        : Effect.sync(() => {
            const previous = projects.get(config.id)
            projects.set(config.id, intern(config))
            if (previous !== undefined) unintern(previous)
            notify(config.id)
          })
    }
    const registry = ProjectRegistry.of({
      lookup: (id) => {
        if (typeof id !== "string") return notFound(id)
        const config = projects.get(id)
        return config === undefined ? Effect.fail(new ProjectNotFound({ projectId: id })) : Effect.succeed(config)
      },
      subscribe: (listener) => {
        listeners.add(listener)
        return () => listeners.delete(listener)
      }
    })
    const memory = MemoryRegistry.of({
      register: (input) => Effect.tap(validate(input, options), put),
      put,
      remove: (id) =>
        Effect.sync(() => {
          const previous = projects.get(id)
          if (previous === undefined) return false
          projects.delete(id)
          unintern(previous)
          notify(id)
          return true
        }),
      size: Effect.sync(() => projects.size)
    })
    return { registry, memory }
  })

/**
 * The in-memory registry as a layer (provides both the registry and its mutators).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerMemory = (options?: Target.ParseOptions | undefined): Layer.Layer<ProjectRegistry | MemoryRegistry> =>
  Layer.effectContext(
    Effect.map(makeMemory(options), ({ memory, registry }) =>
      Context.make(ProjectRegistry, registry).pipe(Context.add(MemoryRegistry, memory))
    )
  )

/**
 * Options of `cached`.
 *
 * @category models
 * @since 0.1.0
 */
export interface CacheOptions {
  /** How long a found project is served from the cache (default 30 seconds). */
  readonly ttl?: Duration.Input | undefined
  /** How long an unknown id is remembered as unknown (default 10 seconds). */
  readonly negativeTtl?: Duration.Input | undefined
  /** Most entries kept; the oldest are dropped beyond it (default 100,000). */
  readonly capacity?: number | undefined
}

/**
 * Wraps a registry with a positive and a negative cache. Concurrent lookups of the same id share one call to the
 * backing registry; a change notification drops the id from the cache at once. Scoped: it stops listening to the
 * backing registry when its scope closes.
 *
 * @category constructors
 * @since 0.1.0
 */
export const cached = (
  underlying: ProjectRegistry["Service"],
  options?: CacheOptions | undefined
): Effect.Effect<ProjectRegistry["Service"], InvalidConfig, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Clock.Clock
    const read = readFields("cache", options, ["ttl", "negativeTtl", "capacity"], { optional: true })
    if (read instanceof InvalidConfig) return yield* read
    const ttl = yield* Durations.millis("cache.ttl", read.ttl as CacheOptions["ttl"], "30 seconds")
    const negativeTtl = yield* Durations.millis(
      "cache.negativeTtl",
      read.negativeTtl as CacheOptions["negativeTtl"],
      "10 seconds",
      { allowZero: true }
    )
    const capacity = (read.capacity ?? 100_000) as number
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      return yield* new InvalidConfig({ field: "cache.capacity", reason: "must be a positive integer" })
    }
    // Map iteration order is insertion order: re-inserting on refresh keeps the oldest first for eviction.
    const entries = new Map<string, { readonly until: number; readonly value: ProjectConfig | undefined }>()
    const inflight = new Map<string, Effect.Effect<ProjectConfig, ProjectNotFound>>()
    const listeners = new Set<Change>()
    const unsubscribe = underlying.subscribe((id) => {
      entries.delete(id)
      for (const l of listeners) l(id)
    })
    yield* Effect.addFinalizer(() => Effect.sync(unsubscribe))
    const store = (id: string, value: ProjectConfig | undefined) => {
      entries.delete(id)
      if (entries.size >= capacity) entries.delete(entries.keys().next().value!)
      entries.set(id, { until: clock.currentTimeMillisUnsafe() + (value === undefined ? negativeTtl : ttl), value })
    }
    return ProjectRegistry.of({
      lookup: (id) => {
        if (typeof id !== "string") return notFound(id)
        const hit = entries.get(id)
        if (hit !== undefined && hit.until > clock.currentTimeMillisUnsafe()) {
          return hit.value === undefined
            ? Effect.fail(new ProjectNotFound({ projectId: id }))
            : Effect.succeed(hit.value)
        }
        const pending = inflight.get(id)
        if (pending !== undefined) return pending
        const load = underlying.lookup(id).pipe(
          Effect.tap((config) => Effect.sync(() => store(id, config))),
          Effect.tapError(() => Effect.sync(() => store(id, undefined))),
          Effect.ensuring(Effect.sync(() => inflight.delete(id)))
        )
        const shared = shareOne(load)
        inflight.set(id, shared)
        return shared
      },
      subscribe: (listener) => {
        listeners.add(listener)
        return () => listeners.delete(listener)
      }
    })
  })

// The failure of a lookup of a value that is not a string (a custom caller's): not found, never a throw, and never
// the value itself in the error.
const notFound = (_: unknown): Effect.Effect<never, ProjectNotFound> =>
  Effect.fail(new ProjectNotFound({ projectId: "<not a string>" }))

// Memoizes an effect so that concurrent callers share one run (and its result).
const shareOne = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> => Effect.runSync(Effect.cached(effect))
