/**
 * Project (tenant) identifiers: validated once at the edge, branded afterwards.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { InvalidProjectId } from "./Errors.ts"

const pattern = /^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$/

/**
 * The longest project id accepted (it must fit a Postgres identifier and a metric label comfortably).
 *
 * @category constants
 * @since 0.1.0
 */
export const maxLength = 63

/**
 * Lower-case letters, digits, `-` and `_`, 1–63 characters, starting and ending with a letter or digit.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ProjectId = Schema.String.pipe(
  Schema.check(
    Schema.isMinLength(1, { message: "project id must not be empty" }),
    Schema.isMaxLength(maxLength, { message: `project id must be at most ${maxLength} characters` }),
    Schema.isPattern(pattern, {
      message: "project id may contain only a-z, 0-9, '-' and '_', and must start and end with a letter or digit"
    })
  ),
  Schema.brand("ProjectId")
)

/**
 * @category models
 * @since 0.1.0
 */
export type ProjectId = typeof ProjectId.Type

const describe = (input: unknown): string | undefined => {
  if (typeof input !== "string") return `expected a string, got ${input === null ? "null" : typeof input}`
  if (input.length === 0) return "project id must not be empty"
  if (input.length > maxLength) return `project id must be at most ${maxLength} characters (got ${input.length})`
  if (!pattern.test(input)) {
    return "project id may contain only a-z, 0-9, '-' and '_', and must start and end with a letter or digit"
  }
  return undefined
}

// Echo the input only when it is short and made of the characters of an id (any case, '-', '_', '.', spaces), so a
// hostile id cannot flood or forge a log line, and a secret passed where an id goes (a connection string, a
// password: ':', '@', '/' and the like) is not printed.
const preview = (input: unknown): string =>
  typeof input === "string" && input.length <= maxLength && /^[A-Za-z0-9_. -]*$/.test(input) ? input : "<not shown>"

/**
 * Validates an unknown value as a project id, failing with `InvalidProjectId` that says what is wrong.
 *
 * @category constructors
 * @since 0.1.0
 */
export const decode = (input: unknown): Effect.Effect<ProjectId, InvalidProjectId> => {
  const problem = describe(input)
  return problem === undefined
    ? Effect.succeed(input as ProjectId)
    : Effect.fail(new InvalidProjectId({ input: preview(input), reason: problem }))
}

/**
 * Validates a project id synchronously, throwing `InvalidProjectId` (for configuration code and tests).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (input: string): ProjectId => {
  const problem = describe(input)
  if (problem !== undefined) throw new InvalidProjectId({ input: preview(input), reason: problem })
  return input as ProjectId
}

/**
 * Whether a value is a valid project id.
 *
 * @category guards
 * @since 0.1.0
 */
export const is = (input: unknown): input is ProjectId => describe(input) === undefined
