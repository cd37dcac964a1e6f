/**
 * The spec's "Enhanced API Layer with Protections", assembled: the rate limiter, the SQL analyzer with the cost
 * estimator, the Redis command policy and the MongoDB analyzer, whichever of them are provided, behind core's
 * `Protections` hook, so the guard checks every call that carries a detail before admitting it.
 *
 * Order of a check: the rate limit first (cheapest, and a flood should not cost parsing), then the analyzer of the
 * call's engine. A passing call whose checks are all answered from memory (token bucket, cached analysis, cached
 * estimate) gets `undefined`: no Effect is allocated. Every rejection is counted in
 * `tenantpool_protection_rejections_total{database_type, tier, rule}` and published as an event, every flag in
 * `tenantpool_protection_flags_total` and as an event.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import type { Engine } from "@tenantpool/core/Engine"
import type { InvalidConfig } from "@tenantpool/core/Errors"
import { type ProtectionError, QueryRejected, type QueryRule } from "@tenantpool/core/Errors"
import { type ProtectionDetail, Protections, type ProtectionsShape } from "@tenantpool/core/Protections"
import type { TierName } from "@tenantpool/core/Tier"
import type * as Finding from "./Finding.ts"
import { MongoAnalyzer } from "./MongoAnalyzer.ts"
import * as MongoAnalyzerModule from "./MongoAnalyzer.ts"
import { PgCostEstimator } from "./PgCostEstimator.ts"
import * as PgCostEstimatorModule from "./PgCostEstimator.ts"
import * as ProtectionMetrics from "./ProtectionMetrics.ts"
import { RateLimit } from "./RateLimit.ts"
import * as RateLimitModule from "./RateLimit.ts"
import { RedisCommandPolicy } from "./RedisCommandPolicy.ts"
import * as RedisCommandPolicyModule from "./RedisCommandPolicy.ts"
import { SqlAnalyzer } from "./SqlAnalyzer.ts"
import * as SqlAnalyzerModule from "./SqlAnalyzer.ts"

/**
 * A rejection or a flag, as published.
 *
 * @category models
 * @since 0.1.0
 */
export interface ProtectionEvent {
  readonly _tag: "Rejected" | "Flagged"
  /** Clock time, milliseconds. */
  readonly at: number
  readonly projectId: string
  readonly engine: Engine
  readonly tier: TierName
  readonly operation: string
  readonly rule: QueryRule | "rate-limit"
  readonly detail: string
}

/**
 * The assembled protections.
 *
 * @category services
 * @since 0.1.0
 */
export class ApiProtections extends Context.Service<
  ApiProtections,
  ProtectionsShape & {
    /** Every rejection and flag from now on. */
    readonly events: Stream.Stream<ProtectionEvent>
    /** The most recent rejections and flags (up to 100), oldest first. */
    readonly recentEvents: Effect.Effect<ReadonlyArray<ProtectionEvent>>
  }
>()("@tenantpool/protections/ApiProtections") {}

/**
 * Builds the protections from the parts provided (each optional).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.gen(function* () {
  const rate = Option.getOrUndefined(yield* Effect.serviceOption(RateLimit))
  const sql = Option.getOrUndefined(yield* Effect.serviceOption(SqlAnalyzer))
  const cost = Option.getOrUndefined(yield* Effect.serviceOption(PgCostEstimator))
  const redis = Option.getOrUndefined(yield* Effect.serviceOption(RedisCommandPolicy))
  const mongo = Option.getOrUndefined(yield* Effect.serviceOption(MongoAnalyzer))
  const clock = yield* Clock.Clock
  const context = yield* Effect.context<never>()
  const pubsub = yield* PubSub.sliding<ProtectionEvent>(1024)
  const recent: Array<ProtectionEvent> = []
  const counters = new Map<string, Metric.Metric<number, unknown>>()

  const record = (
    kind: "Rejected" | "Flagged",
    project: ProjectHandle,
    engine: Engine,
    operation: string,
    rule: QueryRule | "rate-limit",
    detail: string
  ) => {
    const tier = project.tierName
    const key = `${kind}:${engine}:${tier}:${rule}`
    let counter = counters.get(key)
    if (counter === undefined) {
      const metric = kind === "Rejected" ? ProtectionMetrics.rejectionsTotal : ProtectionMetrics.flagsTotal
      counter = Metric.withAttributes(metric, { database_type: engine, tier, rule })
      counters.set(key, counter)
    }
    counter.updateUnsafe(1, context)
    const event: ProtectionEvent = {
      _tag: kind,
      at: clock.currentTimeMillisUnsafe(),
      projectId: project.id,
      engine,
      tier,
      operation,
      rule,
      detail
    }
    recent.push(event)
    if (recent.length > 100) recent.shift()
    PubSub.publishUnsafe(pubsub, event)
  }

  const settleFinding = (
    project: ProjectHandle,
    engine: Engine,
    operation: string,
    finding: Finding.Finding
  ): Effect.Effect<void, QueryRejected> | undefined => {
    record(
      finding.action === "reject" ? "Rejected" : "Flagged",
      project,
      engine,
      operation,
      finding.rule,
      finding.detail
    )
    if (finding.action === "flag") return undefined
    return Effect.fail(
      new QueryRejected({
        projectId: project.id,
        engine,
        tier: project.tierName,
        rule: finding.rule,
        detail: finding.detail,
        fingerprint: finding.fingerprint
      })
    )
  }

  const settle = (
    project: ProjectHandle,
    engine: Engine,
    operation: string,
    inspection: Finding.Inspection
  ): Effect.Effect<void, QueryRejected> | undefined => {
    if (inspection === undefined) return undefined
    if (!Effect.isEffect(inspection)) return settleFinding(project, engine, operation, inspection)
    return Effect.flatMap(inspection, (finding) =>
      finding === undefined ? Effect.void : (settleFinding(project, engine, operation, finding) ?? Effect.void)
    )
  }

  const analyze = sql?.analyze ?? cost?.analyze
  const inspectQuery = (
    project: ProjectHandle,
    engine: Engine,
    operation: string,
    detail: ProtectionDetail
  ): Finding.Inspection => {
    switch (engine) {
      case "postgres": {
        const statement = detail.statement
        if (statement === undefined || analyze === undefined) return undefined
        const analysis = analyze(statement)
        const finding = sql?.inspect(project, analysis)
        if (finding !== undefined) return finding
        return cost?.inspect(project, analysis, detail.params ?? [])
      }
      case "redis":
        return detail.command === undefined ? undefined : redis?.inspect(project, detail.command)
      case "mongodb":
        return mongo?.inspect(project, operation, detail)
    }
  }

  const check = (
    project: ProjectHandle,
    engine: Engine,
    operation: string,
    detail: ProtectionDetail
  ): Effect.Effect<void, ProtectionError> | undefined => {
    const limited = rate?.check(project, engine)
    if (limited === undefined)
      return settle(project, engine, operation, inspectQuery(project, engine, operation, detail))
    return limited.pipe(
      Effect.tapError((error) =>
        Effect.sync(() => record("Rejected", project, engine, operation, "rate-limit", error.message))
      ),
      Effect.flatMap(
        () => settle(project, engine, operation, inspectQuery(project, engine, operation, detail)) ?? Effect.void
      )
    )
  }

  return ApiProtections.of({
    check,
    events: Stream.fromPubSub(pubsub),
    recentEvents: Effect.sync(() => recent.slice())
  })
})

/**
 * The protections as a layer: provides `ApiProtections` and installs them in core's `Protections` reference for
 * everything the layer is provided to. Provide the parts (`RateLimit`, `SqlAnalyzer`, `PgCostEstimator`,
 * `RedisCommandPolicy`, `MongoAnalyzer`) to it; missing parts are skipped.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer: Layer.Layer<ApiProtections> = Layer.effectContext(
  Effect.map(make, (protections) =>
    Context.make(ApiProtections, protections).pipe(Context.add(Protections, protections))
  )
)

/**
 * Options of `layerWith`: each part's options, or `false` to leave it out.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** In-process rate limits (use `RateLimit.layerRedis` with `layer` for limits shared by several processes). */
  readonly rateLimit?: RateLimitModule.Options | false | undefined
  readonly sql?: SqlAnalyzerModule.Options | false | undefined
  /** The cost estimator; left out unless given (it needs the engine's `explain`). */
  readonly cost?: PgCostEstimatorModule.Options | undefined
  readonly redis?: RedisCommandPolicyModule.Options | false | undefined
  readonly mongo?: MongoAnalyzerModule.Options | false | undefined
}

/**
 * Every part in one layer, with in-process rate limits.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerWith = (options?: Options | undefined): Layer.Layer<ApiProtections, InvalidConfig> => {
  const parts: Array<Layer.Layer<any, InvalidConfig>> = []
  if (options?.rateLimit !== false) parts.push(RateLimitModule.layerMemory(options?.rateLimit))
  const sqlLayer = SqlAnalyzerModule.layer(options?.sql === false ? undefined : options?.sql)
  if (options?.sql !== false) parts.push(sqlLayer)
  if (options?.cost !== undefined) parts.push(PgCostEstimatorModule.layer(options.cost).pipe(Layer.provide(sqlLayer)))
  if (options?.redis !== false) parts.push(RedisCommandPolicyModule.layer(options?.redis))
  if (options?.mongo !== false) parts.push(MongoAnalyzerModule.layer(options?.mongo))
  if (parts.length === 0) return layer
  return layer.pipe(Layer.provide(Layer.mergeAll(...(parts as [Layer.Layer<any, InvalidConfig>]))))
}
