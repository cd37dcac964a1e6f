import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Tracer from "effect/Tracer"
import * as Tenancy from "../src/Tenancy.ts"
import * as Fake from "./fixtures/FakeEngine.ts"
import * as H from "./fixtures/Harness.ts"

// A tracer that records the spans it makes (any tracer other than Effect's native one turns spans on).
const recording = () => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span(options) {
      const span = Tracer.nativeTracer.span(options)
      spans.push(span)
      return span
    }
  })
  return { spans, tracer }
}

describe("Spans", () => {
  it.effect("one span per operation, with project, engine, operation and tier, when a tracer is installed", () =>
    Effect.gen(function* () {
      const server = Fake.makeServer()
      const tenancy = yield* Tenancy.Tenancy
      yield* H.registerAll(["acme"], "PRO")
      const engine = yield* tenancy.register(Fake.adapter(server))
      const { spans, tracer } = recording()
      yield* engine
        .runEffect(Fake.get, Fake.op(server, 0))
        .pipe(tenancy.withProject("acme"), Effect.provideService(Tracer.Tracer, tracer))
      const span = spans.find((s) => s.name === "tenantpool.redis.get")
      assert.isDefined(span)
      const attributes = Object.fromEntries(span!.attributes)
      assert.deepInclude(attributes, {
        "db.system": "redis",
        "db.operation": "get",
        "tenantpool.project_id": "acme",
        "tenantpool.tier": "PRO"
      })
      for (const value of Object.values(attributes))
        assert.notInclude(String(value), "redis://", "no target URL in a span")
    }).pipe(H.provide())
  )

  it.effect("no span when only Effect's native tracer is there (spans: auto)", () =>
    Effect.gen(function* () {
      const server = Fake.makeServer()
      const tenancy = yield* Tenancy.Tenancy
      yield* H.registerAll(["acme"], "PRO")
      const engine = yield* tenancy.register(Fake.adapter(server))
      const names: Array<string> = []
      yield* engine
        .runEffect(Fake.get, () =>
          Effect.map(Effect.option(Effect.currentSpan), (span) =>
            names.push(span._tag === "Some" ? span.value.name : "none")
          )
        )
        .pipe(tenancy.withProject("acme"))
      assert.strictEqual(names.length, 1)
      assert.notInclude(names.join(","), "tenantpool.redis.get")
    }).pipe(H.provide())
  )
})
