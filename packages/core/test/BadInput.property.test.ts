/**
 * Bad input to every public function of `@tenantpool/core` (issue #14 items 1 and 7):
 * fast-check properties over hostile arguments (`@tenantpool/testing/Hostile`). Each asserts that the call ends in a
 * success or a typed failure of the library's vocabulary — never a defect, an interruption, a hang or a synchronous
 * throw escaping the Effect —, that the failure names the argument when the function takes several, that nothing
 * was created (no project registered, no runtime, no binding), and that no canary secret appears in the error's
 * message, its JSON, its cause or the logs. No server is needed: core talks to none.
 *
 * Inventory (the public surface users call; 44 functions and methods):
 * - ProjectId: `decode`, `make` (throws `InvalidProjectId` by design), `is`.
 * - Target: `parse`, `parseSync` (throws `InvalidConnectionString` by design).
 * - Durations: `millis`, `millisOrError`.
 * - Tier: `override`, `make`, `layer`; `Tiers.get`, `Tiers.all`, `Tiers.update`, `Tiers.onChange`.
 * - BreakerPolicy: `make`.
 * - Registry: `validate`, `makeMemory`, `layerMemory`, `cached`; `MemoryRegistry.register`, `.put`, `.remove`,
 *   `.size`; `ProjectRegistry.lookup`, `.subscribe`.
 * - Tenancy: `make`, `layer`, `layerMemory` (options), `withProject`, `layerProject`; `Tenancy.register`,
 *   `.withProject`, `.acquireProject`, `.checkHealth`, `.closeIdleConnections`, `.breakerState`, `.connections`,
 *   `.events`, `.recentEvents`, `.stats`.
 * - Protections: `layer`, `unprotected`, `check`.
 * - Errors: `isGuardError`, `isUnavailable`, `retryAfterMillis`. Events: `specName`. Engine: `isWrite`.
 *   Vocabulary: `higherTier`.
 *
 * The bugs these properties found in core (14) are fixed; each property that found one says what it was.
 * Seeded: `TENANTPOOL_PROPERTY_SEED=<n>` replays another run; fast-check prints the seed of a failure.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as fc from "fast-check"
import * as Canary from "@tenantpool/testing/Canary"
import * as H from "@tenantpool/testing/Hostile"
import * as BreakerPolicy from "../src/BreakerPolicy.ts"
import * as Durations from "../src/Durations.ts"
import * as Errors from "../src/Errors.ts"
import * as ProjectId from "../src/ProjectId.ts"
import * as Protections from "../src/Protections.ts"
import * as Registry from "../src/Registry.ts"
import * as Target from "../src/Target.ts"
import * as Tenancy from "../src/Tenancy.ts"
import * as Tier from "../src/Tier.ts"
import { engines, tierNames } from "../src/Vocabulary.ts"
import * as Fake from "./fixtures/FakeEngine.ts"

const canary = Canary.make()
const c = canary.secret

/** The errors of core's vocabulary. */
const coreTags = [
  "InvalidProjectId",
  "InvalidConnectionString",
  "InvalidConfig",
  "ProjectNotFound",
  "EngineNotConfigured",
  "NoCurrentProject",
  "Overloaded",
  "CircuitOpen",
  "Timeout",
  "UnknownOutcome",
  "ShuttingDown",
  "RateLimited",
  "QueryRejected"
] as const

const expectation = (names?: string | ReadonlyArray<string>, echoes: ReadonlyArray<string> = []): H.Expectation => ({
  tags: coreTags,
  names,
  forms: canary.forms,
  logs: canary.logs,
  echoes
})

// Valid values, mixed in so that later arguments are reached.
const engine = fc.constantFrom(...engines)
const tier = fc.constantFrom(...tierNames)
const validId = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,20}[a-z0-9]$/)
const url = fc.constantFrom(
  "postgres://app@localhost:5432/app",
  "redis://localhost:6379/0",
  "mongodb://localhost:27017/app",
  `redis://:${encodeURIComponent(c)}@localhost:6379/1`
)
const duration = fc.constantFrom<unknown>("1 second", "5 minutes", 250, Effect.succeed(1))

// A call that throws its typed error by design (`ProjectId.make`, `Target.parseSync`), as an outcome.
const thrown = (f: () => unknown): Effect.Effect<H.Outcome> =>
  Effect.sync(() => {
    try {
      return { _tag: "Success", value: f() }
    } catch (e) {
      return e instanceof Errors.InvalidProjectId || e instanceof Errors.InvalidConnectionString
        ? { _tag: "Failure", error: e, pretty: String(e) }
        : { _tag: "Threw", thrown: e }
    }
  })

// A call that returns a plain value (a predicate, an accessor), as an outcome.
const plain = (f: () => unknown): Effect.Effect<H.Outcome> =>
  Effect.sync(() => {
    try {
      return { _tag: "Success", value: f() }
    } catch (e) {
      return { _tag: "Threw", thrown: e }
    }
  })

const check = (
  call: string,
  outcome: H.Outcome,
  names?: string | ReadonlyArray<string>,
  echoes?: ReadonlyArray<string>
) => Effect.sync(() => H.expect(call, outcome, expectation(names, echoes)))

// A success of a validating constructor must have produced well-typed values, not accepted a wrong type.
const assertPolicy = (policy: BreakerPolicy.BreakerPolicy) => {
  for (const [name, value] of Object.entries(policy)) {
    if (name === "activeProbe") assert.isBoolean(value, name)
    else assert.isTrue(typeof value === "number" && Number.isFinite(value), `${name} is a finite number`)
  }
}

describe("core bad input: values", () => {
  it.live("ProjectId.decode and is: an InvalidProjectId or a valid id, whatever the input", () =>
    H.check(
      [H.orValid(c, validId)],
      (s) =>
        Effect.gen(function* () {
          const input = s.make()
          const outcome = yield* H.run(() => ProjectId.decode(input))
          yield* check("ProjectId.decode", outcome)
          const is = yield* plain(() => ProjectId.is(input))
          yield* check("ProjectId.is", is)
          if (outcome._tag === "Success") assert.isTrue(is._tag === "Success" && is.value === true)
        }),
      300
    )
  )

  it.live("ProjectId.make throws only InvalidProjectId", () =>
    H.check(
      [H.anything(c)],
      (s) =>
        Effect.flatMap(
          thrown(() => ProjectId.make(s.make() as string)),
          (o) => check("ProjectId.make", o)
        ),
      300
    )
  )

  // Was a bug (core, ProjectId.ts `preview`): an invalid id that is short and printable is echoed in InvalidProjectId's
  // message and `input`, so a connection string passed where an id goes (arguments swapped, e.g.
  // `RedisClient.layer(url, { connectionString: id })`) prints its password. Core now must not echo an invalid id that
  // could be a secret (for instance: only ids made of the allowed characters, or none at all).
  it.live("ProjectId.decode does not echo an invalid id that holds a secret", () =>
    Effect.gen(function* () {
      for (const input of [c, `redis://:${c}@h:1/0`.slice(0, 63), "redis://:hunter2-CANARY@localhost:6379/0"]) {
        const outcome = yield* H.run(() => ProjectId.decode(input))
        H.expect("ProjectId.decode", outcome, {
          ...expectation(undefined, []),
          forms: [...canary.forms, "hunter2-CANARY"]
        })
      }
    })
  )

  // Was a bug (core, Target.ts `parse`/`parseSync`): the engine argument is not validated (`schemes[engine].join` throws
  // a TypeError for an unknown engine: a defect from `parse`), and a hostile connection string or options object
  // (a proxy, throwing getters: `Redacted.isRedacted` and `options.tlsPolicy` read them) escapes as a defect.
  // Core now must check `engine` (InvalidConnectionString or InvalidConfig naming `engine`) and turn anything thrown
  // while reading the input into InvalidConnectionString naming the field.
  it.live("Target.parse: an InvalidConnectionString naming the field, never a defect", () =>
    H.check(
      [
        H.orValid(c, engine, 3),
        H.orValid(c, url, 2),
        H.options(c, { tlsPolicy: fc.constantFrom("any", "verify-remote") })
      ],
      (e, s, o) =>
        Effect.gen(function* () {
          const outcome = yield* H.run(() => Target.parse(e.make() as any, s.make() as any, o.make() as any))
          yield* check("Target.parse", outcome)
        }),
      300
    )
  )

  it.live("Target.parse: a connection string, for a valid engine and no options, is parsed or refused by field", () =>
    H.check(
      [engine, H.orValid(c, url, 1, { readable: true })],
      (e, s) =>
        Effect.gen(function* () {
          const input = s.make()
          const outcome = yield* H.run(() => Target.parse(e, input as any))
          yield* check("Target.parse", outcome)
          const sync = yield* thrown(() => Target.parseSync(e, input as any))
          yield* check("Target.parseSync", sync)
          if (outcome._tag === "Success") {
            const t = outcome.value as Target.Target
            assert.isTrue(Redacted.isRedacted(t.url))
            assert.deepStrictEqual(canary.leaks(`${t.label} ${t.key} ${JSON.stringify(t)}`), [])
          }
        }),
      300
    )
  )

  it.live("Durations.millis: InvalidConfig naming the option, or finite positive milliseconds", () =>
    H.check(
      [H.orValid(c, duration), fc.boolean()],
      (s, allowZero) =>
        Effect.gen(function* () {
          const input = s.make()
          const outcome = yield* H.run(() => Durations.millis("the.option", input as any, "1 second", { allowZero }))
          yield* check("Durations.millis", outcome, "the.option")
          if (outcome._tag === "Success") {
            const ms = outcome.value as number
            assert.isTrue(Number.isFinite(ms) && (ms > 0 || (allowZero && ms === 0)), `millis ${ms}`)
          }
          const sync = yield* plain(() => Durations.millisOrError("the.option", input as any, "1 second"))
          yield* check("Durations.millisOrError", sync)
          if (sync._tag === "Success" && sync.value instanceof Errors.InvalidConfig) {
            assert.include(sync.value.message, "the.option")
          }
        }),
      300
    )
  )

  // Was a bug (core, Tier.ts `override` and `Tiers.update`): a patch that is not an object (`null`, a proxy, throwing
  // getters) throws synchronously out of `override` and `update` (they read `patch.timeout` before returning an
  // Effect); `update` with an unknown tier name throws a TypeError (`states.get(name)!.limits`); a Duration.Input
  // that `Duration.fromInput` throws on escapes too. Core now must return InvalidConfig naming the tier or field.
  it.live("Tier.override and Tiers.update: InvalidConfig naming the field, never a throw", () =>
    Effect.gen(function* () {
      const tiers = yield* Tier.make()
      yield* H.check(
        [H.orValid(c, tier, 2), tierPatch],
        (t, p) =>
          Effect.gen(function* () {
            const name = t.make() as Tier.TierName
            const before = JSON.stringify(tiers.all())
            const o1 = yield* H.run(() => Tier.override(name, Tier.defaults.FREE, p.make() as any))
            yield* check("Tier.override", o1)
            const o2 = yield* H.run(() => tiers.update(name, p.make() as any))
            yield* check("Tiers.update", o2)
            if (o2._tag !== "Success") assert.strictEqual(JSON.stringify(tiers.all()), before, "nothing changed")
          }),
        300
      )
    })
  )

  it.live("Tier.override with a valid tier: InvalidConfig naming the field, or limits that validate", () =>
    H.check(
      [tier, objectPatch],
      (t, p) =>
        Effect.gen(function* () {
          const outcome = yield* H.run(() => Tier.override(t, Tier.defaults[t], p.make() as any))
          yield* check("Tier.override", outcome, t)
          if (outcome._tag === "Success") {
            const limits = outcome.value as Tier.TierLimits
            for (const [k, v] of Object.entries(limits)) {
              if (k !== "priority") assert.isTrue(typeof v === "number" && Number.isFinite(v), `${k} finite`)
            }
          }
        }),
      300
    )
  )

  // Was a bug (core, Tier.ts `make` / `layer`): the same unguarded reads as `override`: an override that is not an object
  // (`{ STARTER: null }`, a proxy) is a defect of the layer instead of InvalidConfig naming `STARTER`.
  it.live("Tier.make and Tier.layer: InvalidConfig naming the tier, never a defect", () =>
    H.check(
      [H.options(c, Object.fromEntries(tierNames.map((n) => [n, fc.record({ maxConcurrent: fc.nat(600) })])))],
      (o) =>
        Effect.gen(function* () {
          yield* check("Tier.make", yield* H.run(() => Tier.make(o.make() as any)))
          yield* check("Tier.layer", yield* H.run(() => Tier.layer(o.make() as any)))
        }),
      200
    )
  )

  // Was a bug (core, BreakerPolicy.ts `make`): an unknown engine is a defect (`defaults[engine]` is undefined; the
  // TypeError is not an InvalidConfig, so `make` dies), a patch with throwing getters is a defect, and wrong types
  // are accepted: `errorThreshold: "0.5"`, `backoffFactor: "2"` or `Infinity`, `activeProbe: "no"` pass the checks
  // (`"0.5" > 0` is true) and reach the breaker as strings. Core now must check the engine and every field's type.
  it.live("BreakerPolicy.make: InvalidConfig naming the field, or a policy of well-typed values", () =>
    H.check(
      [H.orValid(c, engine, 3), breakerPatch],
      (e, p) =>
        Effect.gen(function* () {
          const outcome = yield* H.run(() => BreakerPolicy.make(e.make() as any, p.make() as any))
          yield* check("BreakerPolicy.make", outcome)
          if (outcome._tag === "Success") assertPolicy(outcome.value as BreakerPolicy.BreakerPolicy)
        }),
      300
    )
  )

  // Was a bug (core, Errors.ts `isGuardError`): the predicate takes `unknown` but throws on a proxy or an object whose
  // `_tag` getter throws (it reads `_tag` unguarded); engines call it on whatever a driver rejected with.
  it.live("Errors.isGuardError never throws", () =>
    H.check(
      [H.anything(c)],
      (s) =>
        Effect.flatMap(
          plain(() => Errors.isGuardError(s.make())),
          (o) => check("isGuardError", o)
        ),
      300
    )
  )
})

const tierPatch = H.options(c, {
  minPool: fc.nat(10),
  maxPool: fc.integer({ min: 1, max: 100 }),
  maxConcurrent: fc.integer({ min: 1, max: 500 }),
  maxQueue: fc.nat(500),
  timeout: duration,
  priority: fc.constantFrom("low", "medium", "high", "critical"),
  idleTimeout: duration
})

// A patch that is an object (its fields valid, absent or hostile): what `override` validates field by field.
const objectPatch = fc
  .tuple(
    ...["minPool", "maxPool", "maxConcurrent", "maxQueue", "timeout", "priority", "idleTimeout"].map((name) =>
      fc.option(
        H.orValid(
          c,
          name === "priority"
            ? fc.constantFrom("low", "high")
            : name.endsWith("imeout")
              ? fc.constantFrom("1 second", 500)
              : fc.integer({ min: 1, max: 50 })
        ).map((s) => [name, s] as const),
        { nil: undefined }
      )
    )
  )
  .map((fields) => {
    const present = fields.filter((f) => f !== undefined)
    return H.sample(`{ ${present.map(([n, s]) => `${n}: ${s.label}`).join(", ")} }`, () =>
      Object.fromEntries(present.map(([n, s]) => [n, s.make()]))
    )
  })

const breakerPatch = H.options(c, {
  attemptTimeout: duration,
  errorThreshold: fc.double({ min: 0.01, max: 1, noNaN: true }),
  resetTimeout: duration,
  maxResetTimeout: fc.constant("10 minutes"),
  backoffFactor: fc.double({ min: 1, max: 4, noNaN: true }),
  volumeThreshold: fc.integer({ min: 1, max: 50 }),
  window: duration,
  buckets: fc.integer({ min: 1, max: 60 }),
  halfOpenProbes: fc.integer({ min: 1, max: 5 }),
  activeProbe: fc.boolean(),
  probeInterval: duration
})

const projectInput = H.options(c, {
  id: validId,
  tier,
  postgres: fc.constantFrom("postgres://app@localhost:5432/app"),
  redis: fc.constantFrom("redis://localhost:6379/0", `redis://:${encodeURIComponent(c)}@localhost:6379/1`),
  mongodb: fc.constantFrom("mongodb://localhost:27017/app")
})

// The services a Tenancy property needs, with a fake engine registered for redis.
const withTenancy = <A, E>(
  f: (s: {
    readonly tenancy: Tenancy.Tenancy["Service"]
    readonly memory: Registry.MemoryRegistry["Service"]
  }) => Effect.Effect<A, E>
) =>
  Effect.gen(function* () {
    const tenancy = yield* Tenancy.Tenancy
    const memory = yield* Registry.MemoryRegistry
    yield* tenancy.register(Fake.adapter(Fake.makeServer()))
    return yield* f({ tenancy, memory })
  }).pipe(
    Effect.provide(
      Layer.mergeAll(Tenancy.layerMemory({ healthCheckInterval: 0, shutdownTimeout: 0 }), canary.captureLogs)
    )
  )

describe("core bad input: registries", () => {
  // Was a bug (core, Registry.ts `validate`): a project input whose getters throw (or a proxy) is a defect: `validate`
  // reads `input.id`, `input.tier` and the engines' fields inside Effect.gen without guarding them. Core now must turn
  // a value that cannot be read into InvalidConfig naming the field.
  it.live("MemoryRegistry.register: a typed error naming the field, and nothing registered", () =>
    withTenancy(({ memory }) =>
      H.check(
        [projectInput],
        (p) =>
          Effect.gen(function* () {
            const before = yield* memory.size
            const outcome = yield* H.run(() => memory.register(p.make() as any))
            yield* check("MemoryRegistry.register", outcome)
            if (outcome._tag !== "Success") assert.strictEqual(yield* memory.size, before, "nothing registered")
            else yield* memory.remove((outcome.value as Registry.ProjectConfig).id)
          }),
        300
      )
    )
  )

  it.live("MemoryRegistry.register of plain-object input: a typed error naming the field, nothing registered", () =>
    withTenancy(({ memory }) =>
      H.check(
        [plainProjectInput],
        (p) =>
          Effect.gen(function* () {
            const before = yield* memory.size
            const input = p.make() as Record<string, unknown>
            const outcome = yield* H.run(() => memory.register(input as any))
            yield* check("MemoryRegistry.register", outcome)
            if (outcome._tag !== "Success") assert.strictEqual(yield* memory.size, before, "nothing registered")
            else yield* memory.remove((outcome.value as Registry.ProjectConfig).id)
          }),
        300
      )
    )
  )

  // Was a bug (core, Registry.ts `put`): `put` checks only the tier. `put(null)` throws synchronously (`config.tier`), a
  // config whose `targets` is not an object is a defect (`intern` reads `config.targets[engine]`), and an invalid
  // id or a target that is not a parsed Target is stored as it is (issue #14 item 1: "Registries validate tiers and
  // targets on write"); the bad target then fails later, at the project's first call. Core now must validate the id and
  // each target (InvalidConfig / InvalidProjectId naming the field) and store nothing otherwise.
  it.live("MemoryRegistry.put: a typed error naming the field, and nothing stored", () =>
    withTenancy(({ memory }) =>
      H.check(
        [H.options(c, { id: validId, tier, targets: fc.constant({}) })],
        (p) =>
          Effect.gen(function* () {
            const before = yield* memory.size
            const input = p.make() as any
            const outcome = yield* H.run(() => memory.put(input))
            yield* check("MemoryRegistry.put", outcome)
            const stored = (yield* memory.size) - before
            if (outcome._tag === "Success" && stored > 0) {
              assert.isTrue(ProjectId.is(input.id), "only a valid id is stored")
              yield* memory.remove(input.id)
            }
          }),
        300
      )
    )
  )

  it.live("MemoryRegistry.remove: false for anything that is not a registered id, never a throw", () =>
    Effect.gen(function* () {
      const { memory } = yield* Registry.makeMemory()
      yield* H.check(
        [H.anything(c)],
        (s) =>
          Effect.flatMap(
            H.run(() => memory.remove(s.make() as any)),
            (o) => check("MemoryRegistry.remove", o)
          ),
        300
      )
    })
  )

  // `lookup` takes a validated (branded) ProjectId: its ProjectNotFound names the id by design.
  it.live("ProjectRegistry.lookup of any string: ProjectNotFound, never a throw", () =>
    Effect.gen(function* () {
      const { registry } = yield* Registry.makeMemory()
      yield* H.check(
        [
          fc.oneof(
            H.strings(c),
            validId.map((v) => H.text(v))
          )
        ],
        (s) =>
          Effect.flatMap(
            H.run(() => registry.lookup(s.make() as any)),
            (o) => check("ProjectRegistry.lookup", o, undefined, ["ProjectNotFound"])
          ),
        300
      )
    })
  )

  // Was a bug (core, Registry.ts `makeMemory` and `cached`, `lookup`): an id that is not a string (`123`, `null`, `[""]`)
  // throws synchronously: `new ProjectNotFound({ projectId })` validates its field and throws before an Effect is
  // returned. `lookup` is typed to take a branded ProjectId, but it is the one registry call a custom caller makes;
  // core now returns the failure as an Effect (or fail with InvalidProjectId).
  it.live("ProjectRegistry.lookup of a non-string: a typed failure, never a throw", () =>
    Effect.gen(function* () {
      const { registry } = yield* Registry.makeMemory()
      yield* H.check(
        [fc.oneof(H.primitives(c), H.objects(c, { readable: true }))],
        (s) =>
          Effect.flatMap(
            H.run(() => registry.lookup(s.make() as any)),
            (o) => check("ProjectRegistry.lookup", o, undefined, ["ProjectNotFound"])
          ),
        200
      )
    })
  )

  // Was a bug (core, Registry.ts `cached`): its options are not validated: a `ttl` or `negativeTtl` that is not a
  // duration is a defect (`Duration.fromInputUnsafe` throws inside the Effect), and a `capacity` of NaN, -1 or
  // "10" is accepted (NaN disables eviction: the negative cache grows without bound, RELIABILITY S10). Core now must
  // fail with InvalidConfig naming the option (the return type then gains InvalidConfig).
  it.live("Registry.cached: InvalidConfig naming the option, never a defect or a bad capacity", () =>
    Effect.gen(function* () {
      const { registry } = yield* Registry.makeMemory()
      yield* H.check(
        [H.options(c, { ttl: duration, negativeTtl: duration, capacity: fc.integer({ min: 1, max: 1000 }) })],
        (o) =>
          Effect.gen(function* () {
            const options = o.make() as any
            const outcome = yield* H.run(() => Effect.scoped(Registry.cached(registry, options)))
            yield* check("Registry.cached", outcome)
            if (outcome._tag === "Success" && typeof options === "object" && options !== null) {
              const cap: unknown = options.capacity
              assert.isTrue(cap === undefined || (Number.isSafeInteger(cap) && (cap as number) > 0), "capacity")
            }
          }),
        200
      )
    })
  )
})

// Project input objects with plain (non-throwing) fields: the hostile values are strings, numbers, symbols, nested
// objects... but reading a field never throws.
const plainLeaf = fc.oneof(H.primitives(c), H.strings(c))
const plainProjectInput = fc
  .record({
    id: fc.option(
      H.orValid(c, validId).filter((s) => !/proxy|getter|throws/.test(s.label)),
      { nil: undefined }
    ),
    tier: fc.option(
      fc.oneof(
        tier.map((t) => H.sample(t, () => t)),
        plainLeaf
      ),
      { nil: undefined }
    ),
    redis: fc.option(
      fc.oneof(
        url.map((u) => H.sample(u, () => u)),
        plainLeaf
      ),
      { nil: undefined }
    ),
    postgres: fc.option(plainLeaf, { nil: undefined }),
    mongodb: fc.option(plainLeaf, { nil: undefined })
  })
  .map((r) => {
    const present = Object.entries(r).filter(([, s]) => s !== undefined) as Array<[string, H.Sample]>
    return H.sample(`{ ${present.map(([k, s]) => `${k}: ${s.label}`).join(", ")} }`, () =>
      Object.fromEntries(present.map(([k, s]) => [k, s.make()]))
    )
  })

describe("core bad input: the tenancy service", () => {
  it.live("withProject, acquireProject, layerProject: InvalidProjectId or ProjectNotFound, no runtime created", () =>
    withTenancy(({ tenancy }) =>
      H.check(
        [H.orValid(c, validId)],
        (s) =>
          Effect.gen(function* () {
            const id = s.make() as string
            yield* check("Tenancy.withProject", yield* H.run(() => tenancy.withProject(id)(Effect.void)))
            yield* check("Tenancy.acquireProject", yield* H.run(() => Effect.scoped(tenancy.acquireProject(id))))
            yield* check("Tenancy.layerProject", yield* H.run(() => Tenancy.layerProject(id)))
            yield* check("Tenancy.withProject (module)", yield* H.run(() => Tenancy.withProject(id)(Effect.void)))
            const stats = yield* tenancy.stats
            assert.strictEqual(stats.liveProjects, 0, "no runtime created")
          }),
        300
      )
    )
  )

  // Was a bug (core, internal/health.ts `checkHealth`): an engine that is not one of the three reaches
  // `new EngineNotConfigured({ engine })`, whose schema rejects it: the constructor throws and the call dies
  // (and `engineIndex[engine]` of "__proto__"/"constructor" reads Object.prototype). Core now must check `engine`
  // first (InvalidConfig naming `engine`).
  it.live("checkHealth: a typed error naming the argument, no runtime created", () =>
    withTenancy(({ memory, tenancy }) =>
      Effect.gen(function* () {
        yield* memory.register({ id: "health-one", tier: "FREE", redis: "redis://localhost:6379/0" })
        yield* H.check(
          [H.orValid(c, fc.constant("health-one")), H.orValid(c, engine, 2)],
          (i, e) =>
            Effect.gen(function* () {
              const outcome = yield* H.run(() => tenancy.checkHealth(i.make() as any, e.make() as any))
              yield* check("Tenancy.checkHealth", outcome)
            }),
          300
        )
      })
    )
  )

  it.live("checkHealth of a hostile id with a valid engine: InvalidProjectId or ProjectNotFound", () =>
    withTenancy(({ tenancy }) =>
      H.check(
        [H.anything(c), engine],
        (i, e) =>
          Effect.gen(function* () {
            const outcome = yield* H.run(() => tenancy.checkHealth(i.make() as any, e))
            yield* check("Tenancy.checkHealth", outcome)
            assert.strictEqual((yield* tenancy.stats).liveProjects, 0, "no runtime created")
          }),
        300
      )
    )
  )

  // Was a bug (core, Tenancy.ts `closeIdleConnections`): options that are a proxy or have a throwing `idleFor` getter
  // throw synchronously (`opts?.idleFor` is read before an Effect is returned), and a non-object (`"x"`, `42`) is
  // silently taken as "no options" (and closes every idle project at its tier's timeout). Core now must read the
  // options inside the Effect and fail with InvalidConfig naming `options` / `idleFor`.
  it.live("closeIdleConnections: InvalidConfig naming idleFor, never a throw", () =>
    withTenancy(({ tenancy }) =>
      H.check(
        [H.options(c, { idleFor: duration })],
        (o) =>
          Effect.gen(function* () {
            const outcome = yield* H.run(() => tenancy.closeIdleConnections(o.make() as any))
            yield* check("Tenancy.closeIdleConnections", outcome)
          }),
        300
      )
    )
  )

  it.live("breakerState, connections, recentEvents, stats: never fail, whatever the id and engine", () =>
    withTenancy(({ tenancy }) =>
      H.check(
        [H.anything(c), H.anything(c)],
        (i, e) =>
          Effect.gen(function* () {
            const outcome = yield* H.run(() => tenancy.breakerState(i.make() as any, e.make() as any))
            yield* check("Tenancy.breakerState", outcome)
            assert.strictEqual(outcome._tag, "Success")
            assert.deepStrictEqual(yield* tenancy.connections, [])
          }),
        300
      )
    )
  )

  // Was a bug (core, internal/guard.ts `registerEngine`): the adapter is not validated. A hostile adapter (null, a proxy,
  // an unknown `engine`) is a defect or a synchronous throw (`adapter.engine` is read before an Effect exists);
  // and an adapter with engine "__proto__" is registered at `g.engines[undefined]`. Core now must check the adapter
  // (an object, a known engine, functions for bind/classify/ping/targetCapacity) and fail with InvalidConfig.
  it.live("Tenancy.register: InvalidConfig naming the adapter's field, never a defect", () =>
    withTenancy(({ tenancy }) =>
      H.check(
        [
          H.options(c, {
            engine,
            bind: fc.constant(() => Effect.never),
            classify: fc.constant(() => ({ infrastructure: false, errorType: "x", sent: false })),
            ping: fc.constant(() => Effect.void),
            targetCapacity: fc.constant(() => 1)
          })
        ],
        (a) =>
          Effect.gen(function* () {
            const outcome = yield* H.run(() => tenancy.register(a.make() as any))
            yield* check("Tenancy.register", outcome)
          }),
        200
      )
    )
  )

  // Was a bug (core, Tenancy.ts `settingsOf` / `make`): options other than the durations are not validated: `spans:
  // "sometimes"`, `metrics.maxProjectSeries: NaN or -1`, `recentEvents: NaN, -1 or "x"` (the ring buffer is made with
  // it), `retry: 42` (not a Schedule: a defect at the first retry) are accepted; `metrics: null` and a proxy throw.
  // Core now must fail the layer with InvalidConfig naming the option.
  it.live("Tenancy.make: InvalidConfig naming the option, or a service that works", () =>
    H.check(
      [
        H.options(c, {
          spans: fc.constantFrom("auto", "always", "never"),
          recentEvents: fc.integer({ min: 1, max: 200 }),
          healthCheckInterval: duration,
          healthCheckTimeout: duration,
          sweepInterval: duration,
          shutdownTimeout: duration,
          retry: fc.constant(Schedule.recurs(1)),
          metrics: fc.record({ projectLabel: fc.boolean(), maxProjectSeries: fc.integer({ min: 1, max: 10 }) })
        })
      ],
      (o) =>
        Effect.gen(function* () {
          const options = o.make() as any
          const outcome = yield* H.run(() =>
            Effect.gen(function* () {
              const tenancy = yield* Tenancy.Tenancy
              yield* tenancy.recentEvents
              return options
            }).pipe(Effect.provide(Tenancy.layerMemory(options)))
          )
          yield* check("Tenancy.layerMemory", outcome)
          if (outcome._tag === "Success" && typeof options === "object" && options !== null) {
            const { spans, recentEvents, metrics } = options
            assert.isTrue(spans === undefined || ["auto", "always", "never"].includes(spans), "spans")
            assert.isTrue(recentEvents === undefined || (Number.isSafeInteger(recentEvents) && recentEvents > 0))
            const series = metrics?.maxProjectSeries
            assert.isTrue(series === undefined || (Number.isSafeInteger(series) && series > 0), "maxProjectSeries")
          }
        }),
      150
    )
  )

  it.live("Protections.check outside a project or with no protections installed: passes", () =>
    H.check(
      [H.anything(c), H.anything(c), H.anything(c)],
      (e, o, d) =>
        Effect.gen(function* () {
          const outcome = yield* H.run(() => Protections.check(e.make() as any, o.make() as any, d.make() as any))
          yield* check("Protections.check", outcome)
        }),
      200
    )
  )
})
