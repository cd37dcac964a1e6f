// Opening the library for a run, the same for every engine: the engine's layer over an in-memory tenancy service
// with the run's profile, logs captured, built into the caller's scope, and projects A and B registered on the FREE
// tier. Engines differ only in their layer and in the connection strings of the two projects.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { InvalidConfig } from "@tenantpool/core/Errors"
import { MemoryRegistry, type ProjectInput } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import type { Tiers } from "@tenantpool/core/Tier"
import type { Party } from "../History.ts"
import { type Profile, tenancyOptions } from "../Rig.ts"

export interface Opened<I> {
  readonly context: Context.Context<I | Tenancy.Tenancy>
  readonly tenancy: Tenancy.Tenancy["Service"]
  /** Runs an effect as project A or B. */
  readonly as: (party: Party) => <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, unknown, R>
}

export const openLibrary = <I>(
  engine: Layer.Layer<I, InvalidConfig, Tenancy.Tenancy | Tiers>,
  profile: Profile,
  captureLogs: Layer.Layer<never>,
  projects: Readonly<Record<Party, Omit<ProjectInput, "tier">>>
): Effect.Effect<Opened<I>, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const layer = engine.pipe(
      Layer.provideMerge(Tenancy.layerMemory(tenancyOptions(profile))),
      Layer.provide(captureLogs)
    )
    const context = yield* Layer.build(layer)
    const registry = Context.get(context, MemoryRegistry)
    const tenancy = Context.get(context, Tenancy.Tenancy)
    for (const party of ["a", "b"] as const) yield* registry.register({ ...projects[party], tier: "FREE" })
    return { context, tenancy, as: (party) => tenancy.withProject(projects[party].id) }
  })
