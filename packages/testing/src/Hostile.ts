/**
 * Hostile input for the bad-input property tests (issue #14 item 7): fast-check arbitraries
 * of what a caller from JavaScript, JSON or `as any` can pass where the types say otherwise (wrong types, NaN and
 * infinities, bigints, symbols, functions, objects whose `toString`/`toJSON`/`toBSON`/getters throw, proxies, sparse
 * and huge arrays, huge strings, NUL/CRLF/unicode, `__proto__` keys), most of them carrying a canary secret, and the
 * check every property makes of a call's outcome: a success or a typed failure (never a defect, an interruption, a
 * hang or a synchronous throw), naming the argument, echoing no canary in its message, its JSON, its cause or the
 * logs.
 *
 * A value is generated as a `Sample`: a label (what failure reports print: a throwing proxy or a 1 MB string does not
 * print well) and a function that makes a fresh value, so that a value one call mutated is never reused.
 *
 * Runs are seeded (`seed`, overridable with `TENANTPOOL_PROPERTY_SEED`), and fast-check prints the seed and the
 * shrunk counterexample of a failure.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as fc from "fast-check"

// ---------------------------------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------------------------------

/** The guard's errors: every engine call may end in one of these besides the engine's own. */
export const guardTags: ReadonlyArray<string> = [
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
]

/**
 * The seed of every property (fixed, so a failure replays; `TENANTPOOL_PROPERTY_SEED=<n>` picks another).
 *
 * @category constants
 * @since 0.1.0
 */
export const seed: number = Number(process.env["TENANTPOOL_PROPERTY_SEED"] ?? 20_140_7)

/**
 * fast-check parameters: the fixed seed and `numRuns` runs (scaled by `TENANTPOOL_PROPERTY_RUNS_SCALE`, default 1).
 *
 * @category constructors
 * @since 0.1.0
 */
export const params = (numRuns: number): fc.Parameters<unknown> => ({
  seed,
  numRuns: Math.max(1, Math.round(numRuns * Number(process.env["TENANTPOOL_PROPERTY_RUNS_SCALE"] ?? 1))),
  endOnFailure: false
})

// ---------------------------------------------------------------------------------------------------------------
// Samples
// ---------------------------------------------------------------------------------------------------------------

/**
 * A generated value: `make` builds a fresh one, `label` is what failure reports print.
 *
 * @category models
 * @since 0.1.0
 */
export interface Sample {
  readonly label: string
  readonly make: () => unknown
  /**
   * Whether reading the value's properties works (false for throwing and revoked proxies and throwing getters:
   * properties that check what a validator does with values it can read leave these out).
   */
  readonly readable: boolean
}

/**
 * Which hostile values to generate: all, or only those whose properties can be read (see `Sample.readable`).
 *
 * @category models
 * @since 0.1.0
 */
export interface Only {
  readonly readable?: boolean | undefined
}

/**
 * A sample of a value.
 *
 * @category constructors
 * @since 0.1.0
 */
export const sample = (label: string, make: () => unknown, readable = true): Sample => {
  const s: Sample & fc.WithToStringMethod = { label, make, readable, [fc.toStringMethod]: () => label }
  return s
}

const show = (s: string): string =>
  s.length > 60 ? `${JSON.stringify(s.slice(0, 60))}…(${s.length})` : JSON.stringify(s)

/** A sample of a string (labelled by its escaped beginning). */
export const text = (s: string): Sample => sample(`string ${show(s)}`, () => s)

const thrower = (canary: string, where: string) => () => {
  throw new Error(`${where} threw: ${canary}`)
}

/** A proxy whose every trap throws an error carrying the canary. */
const throwingProxy = (canary: string, target: object): object =>
  new Proxy(target, {
    get: thrower(canary, "proxy get"),
    set: thrower(canary, "proxy set"),
    has: thrower(canary, "proxy has"),
    ownKeys: thrower(canary, "proxy ownKeys"),
    getOwnPropertyDescriptor: thrower(canary, "proxy getOwnPropertyDescriptor"),
    getPrototypeOf: thrower(canary, "proxy getPrototypeOf"),
    defineProperty: thrower(canary, "proxy defineProperty"),
    deleteProperty: thrower(canary, "proxy deleteProperty"),
    apply: thrower(canary, "proxy apply")
  })

const revoked = (target: object): object => {
  const { proxy, revoke } = Proxy.revocable(target, {})
  revoke()
  return proxy
}

/**
 * Values of the wrong primitive type: undefined, null, booleans, odd numbers, bigints, symbols, functions.
 *
 * @category arbitraries
 * @since 0.1.0
 */
export const primitives = (canary: string): fc.Arbitrary<Sample> =>
  fc.constantFrom(
    sample("undefined", () => undefined),
    sample("null", () => null),
    sample("true", () => true),
    sample("false", () => false),
    sample("0", () => 0),
    sample("-0", () => -0),
    sample("-1", () => -1),
    sample("1.5", () => 1.5),
    sample("123", () => 123),
    sample("NaN", () => NaN),
    sample("Infinity", () => Infinity),
    sample("-Infinity", () => -Infinity),
    sample("2**53", () => 2 ** 53),
    sample("1e21", () => 1e21),
    sample("Number.MAX_VALUE", () => Number.MAX_VALUE),
    sample("-2**31", () => -(2 ** 31)),
    sample("10n", () => 10n),
    sample("-1n", () => -1n),
    sample("Symbol(canary)", () => Symbol(canary)),
    sample("Symbol.iterator", () => Symbol.iterator),
    sample("() => canary", () => () => canary),
    sample("function that throws", () => thrower(canary, "function")),
    sample("class {}", () => class {})
  )

/**
 * Strings a parser or a driver may mishandle: empty, blank, control characters, NUL, CRLF (protocol injection), lone
 * surrogates, RTL marks, emoji, glob and SQL metacharacters, `__proto__`, bad percent-encoding, a connection string
 * with the canary as password, the canary itself, and huge ones (64 KB, 1 MB); plus random binary strings.
 *
 * @category arbitraries
 * @since 0.1.0
 */
export const strings = (canary: string): fc.Arbitrary<Sample> =>
  fc.oneof(
    { weight: 3, arbitrary: fixedStrings(canary) },
    {
      weight: 1,
      arbitrary: fc.string({ unit: "binary", maxLength: 40 }).map((s) => text(s))
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.string({ unit: "binary-ascii", maxLength: 8 }), fc.string({ unit: "grapheme", maxLength: 8 }))
        .map(([a, b]) => text(`${a}${canary}${b}`))
    }
  )

const fixedStrings = (canary: string): fc.Arbitrary<Sample> =>
  fc.constantFrom(
    text(""),
    text(" "),
    text(canary),
    text(`redis://:${canary}@localhost:6379/0`),
    text(`postgres://u:${encodeURIComponent(canary)}@localhost:5432/db`),
    text(`mongodb://u:${encodeURIComponent(canary)}@localhost:27017/db`),
    text("\u0000"),
    text(`a\u0000${canary}`),
    text("\r\n"),
    text(`k\r\nFLUSHALL\r\n${canary}`),
    text("\uD800"),
    text("\uDFFFx"),
    text("\u202Eevil\u202C"),
    text("\uFEFF"),
    text("😀🔥"),
    text("__proto__"),
    text("constructor"),
    text("prototype"),
    text("*"),
    text("?[\\"),
    text("%"),
    text("%zz"),
    text("%00"),
    text("'; drop table x; --"),
    text("$$"),
    text("$where"),
    text("a.b.$c"),
    text("\\"),
    text("-1"),
    text("NaN"),
    text("1e400"),
    sample("string 64 KB of canary", () => canary.repeat(Math.ceil(65_536 / canary.length))),
    sample("string 1 MB", () => "x".repeat(1 << 20))
  )

/**
 * Objects and arrays a validator may trip on: empty, null-prototype, `__proto__` keys, ones whose `toString`,
 * `valueOf`, `toJSON`, `toBSON`, `then` or `Symbol.toPrimitive` throw or return the canary, getters that throw,
 * throwing and revoked proxies, dates, regexps, maps, sets, buffers, promises, errors, sparse and huge arrays.
 *
 * @category arbitraries
 * @since 0.1.0
 */
export const objects = (canary: string, only?: Only): fc.Arbitrary<Sample> =>
  allObjects(canary).filter((s) => only?.readable !== true || s.readable)

const allObjects = (canary: string): fc.Arbitrary<Sample> =>
  fc.constantFrom(
    sample("{}", () => ({})),
    sample("[]", () => []),
    sample("Object.create(null)", () => Object.create(null)),
    sample('JSON {"__proto__":{"polluted":canary}}', () => JSON.parse(`{"__proto__":{"polluted":"${canary}"}}`)),
    sample("{ constructor: { prototype: canary } }", () => ({ constructor: { prototype: canary } })),
    sample("{ [canary]: canary }", () => ({ [canary]: canary })),
    sample("{ toString: throws }", () => ({ toString: thrower(canary, "toString") })),
    sample("{ toString: () => canary }", () => ({ toString: () => canary, valueOf: () => canary })),
    sample("{ valueOf: throws }", () => ({ valueOf: thrower(canary, "valueOf") })),
    sample("{ [Symbol.toPrimitive]: throws }", () => ({ [Symbol.toPrimitive]: thrower(canary, "toPrimitive") })),
    sample("{ toJSON: throws }", () => ({ a: 1, toJSON: thrower(canary, "toJSON") })),
    sample("{ toBSON: throws }", () => ({ a: 1, toBSON: thrower(canary, "toBSON") })),
    sample("{ then: throws } (thenable)", () => ({ then: thrower(canary, "then") })),
    sample("{ then: never settles }", () => ({ then: () => {} })),
    sample(
      "object whose every getter throws",
      () =>
        Object.defineProperties(
          {},
          Object.fromEntries(
            [
              "length",
              "id",
              "tier",
              "key",
              "ttl",
              "limit",
              "keys",
              "command",
              "args",
              "lua",
              "sha1",
              "filter",
              "schema",
              "timeout",
              "prefix",
              "idleFor",
              "redis",
              "postgres",
              "mongodb",
              "targets",
              "engine",
              "statement",
              "pipeline",
              "collection"
            ].map((name) => [name, { get: thrower(canary, `getter ${name}`), enumerable: true }])
          )
        ),
      false
    ),
    sample("proxy whose every trap throws", () => throwingProxy(canary, {}), false),
    sample("array proxy whose every trap throws", () => throwingProxy(canary, []), false),
    sample("revoked proxy", () => revoked({}), false),
    sample("revoked array proxy", () => revoked([]), false),
    sample("new Date(NaN)", () => new Date(NaN)),
    sample("/canary/", () => new RegExp(canary.replace(/[^A-Za-z0-9-]/g, ""))),
    sample("new Map", () => new Map([[canary, canary]])),
    sample("new Set", () => new Set([canary])),
    sample("Buffer(canary)", () => Buffer.from(canary)),
    sample("Uint8Array(3)", () => new Uint8Array(3)),
    sample("Promise.resolve(canary)", () => Promise.resolve(canary)),
    sample("new Error(canary)", () => new Error(canary)),
    sample("[undefined]", () => [undefined]),
    sample("[null]", () => [null]),
    sample("[canary, 1, {}]", () => [canary, 1, {}]),
    sample("sparse [, canary]", () => [, canary]), // eslint-disable-line no-sparse-arrays
    sample("new Array(2**20) (holes)", () => new Array(2 ** 20)),
    sample("Array(2**20) with [0] set", () => Object.assign(new Array(2 ** 20), { 0: canary })),
    sample(
      "array with a throwing getter at [0]",
      () => Object.defineProperty([canary], 0, { get: thrower(canary, "getter [0]") }),
      false
    ),
    sample("{ length: 1e9 } (array-like)", () => ({ length: 1e9 }))
  )

/**
 * Any hostile value: a primitive, a string, an object or array, or an array of them.
 *
 * @category arbitraries
 * @since 0.1.0
 */
export const anything = (canary: string, only?: Only): fc.Arbitrary<Sample> => {
  // Values that throw when read or coerced are rare in the object list; they get a share of their own.
  const traps = allObjects(canary).filter((s) => !s.readable || /throw/.test(s.label))
  const all = fc.oneof(primitives(canary), strings(canary), objects(canary), traps)
  const leaf = only?.readable === true ? all.filter((s) => s.readable) : all
  return fc.oneof(
    { weight: 6, arbitrary: leaf },
    {
      weight: 1,
      arbitrary: fc.array(leaf, { minLength: 1, maxLength: 3 }).map((xs) =>
        sample(
          `[${xs.map((x) => x.label).join(", ")}]`,
          () => xs.map((x) => x.make()),
          xs.every((x) => x.readable)
        )
      )
    }
  )
}

/**
 * A hostile value in place of a `T`, or now and then a valid one (so later arguments get checked too).
 *
 * @category arbitraries
 * @since 0.1.0
 */
export const orValid = <T>(
  canary: string,
  valid: fc.Arbitrary<T>,
  validWeight = 1,
  only?: Only
): fc.Arbitrary<Sample> =>
  fc.oneof(
    { weight: 3, arbitrary: anything(canary, only) },
    { weight: validWeight, arbitrary: valid.map((v) => sample(`valid ${fc.stringify(v).slice(0, 80)}`, () => v)) }
  )

/**
 * An options object whose fields (the given names) are each left out, valid or hostile; or a hostile value in place
 * of the whole object.
 *
 * @category arbitraries
 * @since 0.1.0
 */
export const options = (
  canary: string,
  fields: Readonly<Record<string, fc.Arbitrary<unknown>>>,
  only?: Only
): fc.Arbitrary<Sample> => {
  const entries = Object.entries(fields).map(
    ([name, valid]) => [name, fc.option(orValid(canary, valid, 1, only), { nil: undefined, freq: 2 })] as const
  )
  const record = fc.tuple(...entries.map(([, arb]) => arb)).map((values) => {
    const present = entries.flatMap(([name], i) => (values[i] === undefined ? [] : [[name, values[i]!] as const]))
    return sample(
      `{ ${present.map(([name, s]) => `${name}: ${s.label}`).join(", ")} }`,
      () => Object.fromEntries(present.map(([name, s]) => [name, s.make()])),
      present.every(([, s]) => s.readable)
    )
  })
  return fc.oneof({ weight: 4, arbitrary: record }, { weight: 1, arbitrary: anything(canary, only) })
}

// ---------------------------------------------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------------------------------------------

/**
 * How a call ended.
 *
 * @category models
 * @since 0.1.0
 */
export type Outcome =
  | { readonly _tag: "Success"; readonly value: unknown }
  | { readonly _tag: "Failure"; readonly error: unknown; readonly pretty: string }
  | { readonly _tag: "Defect"; readonly pretty: string }
  | { readonly _tag: "Interrupted"; readonly pretty: string }
  | { readonly _tag: "Threw"; readonly thrown: unknown }
  | { readonly _tag: "Hung"; readonly afterMillis: number }
  | { readonly _tag: "NotAnEffect"; readonly value: unknown }

/**
 * Calls `thunk` (a public function applied to its arguments) and runs what it returns: an Effect, a Stream (its first
 * elements) or a Layer (built in a scope). A synchronous throw, a defect, an interruption, or no end within
 * `timeout` are outcomes of their own.
 *
 * @category constructors
 * @since 0.1.0
 */
export const run = <R = never>(
  thunk: () => unknown,
  options?: { readonly timeout?: Duration.Input | undefined; readonly effectsOnly?: boolean | undefined }
): Effect.Effect<Outcome, never, R> =>
  Effect.suspend(() => {
    let returned: unknown
    try {
      returned = thunk()
    } catch (thrown) {
      return Effect.succeed<Outcome>({ _tag: "Threw", thrown })
    }
    let effect: Effect.Effect<unknown, unknown, any>
    if (Effect.isEffect(returned)) effect = returned
    else if (Stream.isStream(returned)) effect = Stream.runCollect(Stream.take(returned, 10))
    else if (Layer.isLayer(returned))
      effect = Effect.scoped(Layer.build(returned as Layer.Layer<unknown, unknown, any>))
    else return Effect.succeed<Outcome>({ _tag: "NotAnEffect", value: returned })
    const timeout = Duration.fromInputUnsafe(options?.timeout ?? "10 seconds")
    return effect.pipe(
      Effect.timeoutOption(timeout),
      Effect.exit,
      Effect.map((exit): Outcome => {
        if (Exit.isSuccess(exit)) {
          return Option.isNone(exit.value)
            ? { _tag: "Hung", afterMillis: Duration.toMillis(timeout) }
            : { _tag: "Success", value: exit.value.value }
        }
        const pretty = safe(() => Cause.pretty(exit.cause))
        if (Cause.hasDies(exit.cause)) return { _tag: "Defect", pretty }
        const error = Cause.findErrorOption(exit.cause)
        return Option.isSome(error) ? { _tag: "Failure", error: error.value, pretty } : { _tag: "Interrupted", pretty }
      })
    ) as Effect.Effect<Outcome, never, R>
  })

const safe = (f: () => string): string => {
  try {
    return f()
  } catch (e) {
    return `<threw while printing: ${e instanceof Error ? e.message : typeof e}>`
  }
}

const json = (u: unknown): string =>
  safe(() => JSON.stringify(u, (_, v: unknown) => (typeof v === "bigint" ? `${v}n` : v)) ?? "undefined")

/**
 * What an outcome may be.
 *
 * - `tags`: the `_tag`s a failure may carry (the library's and the engine's error vocabulary);
 * - `names`: text the error's message must contain (the argument's name) when it fails;
 * - `canary`: text that must appear nowhere (message, JSON, `Cause.pretty`, `logs`);
 * - `mayHang`: a call that legitimately waits (a subscription) may reach the timeout;
 * - `mustFail`: a success is a violation too;
 * - `echoes`: tags whose message may echo the input (a known bug with a test of its own, or by design: an error
 *   about a validated value).
 *
 * @category models
 * @since 0.1.0
 */
export interface Expectation {
  readonly tags: ReadonlyArray<string>
  readonly names?: string | ReadonlyArray<string> | undefined
  readonly forms: ReadonlyArray<string>
  readonly logs?: ReadonlyArray<string> | undefined
  readonly mayHang?: boolean | undefined
  readonly mustFail?: boolean | undefined
  readonly echoes?: ReadonlyArray<string> | undefined
  /** Which failures must name the argument (default: all of them): a server's own reply need not. */
  readonly named?: ((error: unknown) => boolean) | undefined
}

/**
 * Why an outcome breaks the expectation, or `undefined` when it is fine.
 *
 * @category guards
 * @since 0.1.0
 */
export const violation = (outcome: Outcome, expect: Expectation): string | undefined => {
  const leaks = (text: string) => expect.forms.filter((f) => text.includes(f))
  for (const line of expect.logs ?? []) {
    if (leaks(line).length > 0) return `a log line echoes the canary: ${line.slice(0, 400)}`
  }
  switch (outcome._tag) {
    case "Threw":
      return `threw synchronously instead of returning an Effect: ${describeThrown(outcome.thrown)}`
    case "Defect":
      return `died (a defect, not a typed error): ${outcome.pretty.slice(0, 1200)}`
    case "Interrupted":
      return `was interrupted: ${outcome.pretty.slice(0, 600)}`
    case "NotAnEffect":
      return `returned ${typeof outcome.value}, not an Effect`
    case "Hung":
      return expect.mayHang === true ? undefined : `did not end within ${outcome.afterMillis} ms`
    case "Success":
      return expect.mustFail === true ? `succeeded with ${json(outcome.value).slice(0, 200)}` : undefined
    case "Failure": {
      const e = outcome.error as { readonly _tag?: unknown; readonly message?: unknown } | null | undefined
      const tag = typeof e === "object" && e !== null ? e._tag : undefined
      if (typeof tag !== "string" || !expect.tags.includes(tag)) {
        return `failed with ${typeof tag === "string" ? tag : describeThrown(e)}, not one of ${expect.tags.join(", ")}`
      }
      const message = safe(() => String(e!.message))
      const names = expect.names === undefined ? [] : typeof expect.names === "string" ? [expect.names] : expect.names
      const mustName = names.length > 0 && (expect.named === undefined || expect.named(e))
      if (mustName && !names.some((n) => message.includes(n))) {
        return `${tag} does not name the argument (${names.join(" or ")}): ${message.slice(0, 300)}`
      }
      if (expect.echoes?.includes(tag) === true) return undefined
      for (const [where, text] of [
        ["message", message],
        ["JSON", json(e)],
        ["Cause.pretty", outcome.pretty]
      ] as const) {
        const found = leaks(text)
        if (found.length > 0) return `${tag}'s ${where} echoes the canary: ${text.slice(0, 400)}`
      }
      return undefined
    }
  }
}

const describeThrown = (u: unknown): string =>
  u instanceof Error ? `${u.constructor.name}: ${u.message.slice(0, 300)}` : safe(() => String(u)).slice(0, 300)

/**
 * Fails (throws, for fast-check) when the outcome breaks the expectation, naming `call`.
 *
 * @category guards
 * @since 0.1.0
 */
export const expect = (call: string, outcome: Outcome, expectation: Expectation): void => {
  const problem = violation(outcome, expectation)
  if (problem !== undefined) throw new Error(`${call} ${problem}`)
}

/**
 * Runs a property on the Effect side: `predicate` is an Effect per generated tuple, run with the caller's context;
 * a failure of the property fails the effect with fast-check's report (seed, counterexample, shrunk path).
 *
 * @category constructors
 * @since 0.1.0
 */
export const check = <Ts extends [unknown, ...Array<unknown>], R>(
  arbitraries: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> },
  predicate: (...args: Ts) => Effect.Effect<void, never, R>,
  numRuns: number
): Effect.Effect<void, never, R> =>
  Effect.flatMap(Effect.context<R>(), (context) => {
    const runWith = Effect.runPromiseWith(context)
    const property = (fc.asyncProperty as unknown as (...args: Array<unknown>) => fc.IAsyncProperty<Ts>)(
      ...arbitraries,
      (...args: Ts) => runWith(predicate(...args))
    )
    return Effect.promise(() => fc.assert(property, params(numRuns) as fc.Parameters<Ts>))
  })
