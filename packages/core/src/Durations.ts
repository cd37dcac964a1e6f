/**
 * Durations given as options (`"30 seconds"`, `Duration.minutes(5)`, a number of milliseconds), checked once when a
 * service is built and turned into milliseconds. A value that is not a duration, negative, or not finite is an
 * `InvalidConfig` naming the option, never a thrown exception.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { InvalidConfig } from "./Errors.ts"

/**
 * What a duration option may be.
 *
 * @category models
 * @since 0.1.0
 */
export interface MillisOptions {
  /** Whether zero is accepted (it usually means "off"); default false. */
  readonly allowZero?: boolean | undefined
}

/**
 * The milliseconds of a duration option, or `InvalidConfig` naming `field`. `fallback` applies when the option is
 * not given.
 *
 * @category constructors
 * @since 0.1.0
 */
export const millis = (
  field: string,
  input: Duration.Input | undefined,
  fallback: Duration.Input,
  options?: MillisOptions | undefined
): Effect.Effect<number, InvalidConfig> => {
  const result = check(field, input ?? fallback, options?.allowZero === true)
  return typeof result === "number" ? Effect.succeed(result) : Effect.fail(result)
}

/**
 * Like `millis`, for code that is not an Effect: returns the milliseconds or the `InvalidConfig`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const millisOrError = (
  field: string,
  input: Duration.Input | undefined,
  fallback: Duration.Input,
  options?: MillisOptions | undefined
): number | InvalidConfig => check(field, input ?? fallback, options?.allowZero === true)

const check = (field: string, input: Duration.Input, allowZero: boolean): number | InvalidConfig => {
  if (typeof input === "number" && Number.isNaN(input)) return new InvalidConfig({ field, reason: "not a duration" })
  const decoded = Duration.fromInput(input)
  if (decoded._tag === "None") return new InvalidConfig({ field, reason: "not a duration" })
  const ms = Duration.toMillis(decoded.value)
  if (!Number.isFinite(ms)) return new InvalidConfig({ field, reason: "must be finite" })
  if (ms < 0 || (ms === 0 && !allowZero)) {
    return new InvalidConfig({ field, reason: allowZero ? "must not be negative" : "must be a positive duration" })
  }
  return ms
}
