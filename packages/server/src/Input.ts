/**
 * A request's input, checked against stated limits before any database sees it: the project id and key in the
 * path, query strings and JSON bodies. Every refusal is a clear error that names the limit (`ErrorResponses`):
 * 400 for a malformed or too long identifier, 413 for a body or a stored value over its size limit.
 *
 * Path parameters of any length reach these checks: the router's own parameter limit is raised above anything
 * Node accepts (`App.ts`), so a 150-character project id is a 400 that says "at most 63", not a silent 404.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { HttpRouter, HttpServerError, HttpServerRequest } from "effect/http"
import * as Schema from "effect/Schema"
import * as ProjectId from "@tenantpool/core/ProjectId"
import { badRequest, contentTooLarge, count } from "./ErrorResponses.ts"

/**
 * The largest request body read, in bytes: room for the largest value JSON-escaped (6 bytes a character).
 *
 * @category constants
 * @since 0.1.0
 */
export const maxBodyBytes = 512 * 1024

/**
 * The longest value stored under a key or pushed on a queue, in characters.
 *
 * @category constants
 * @since 0.1.0
 */
export const maxValueLength = 65_536

/**
 * The longest key, in characters.
 *
 * @category constants
 * @since 0.1.0
 */
export const maxKeyLength = 200

const keyPattern = /^[A-Za-z0-9:_.-]+$/

/**
 * The `:projectId` path parameter, validated (400 `InvalidProjectId`, with `limit` when it is too long).
 *
 * @category accessors
 * @since 0.1.0
 */
export const projectId = Effect.flatMap(HttpRouter.params, (p) => {
  const input = p["projectId"] ?? ""
  return ProjectId.decode(input).pipe(
    Effect.mapError((e) => ({
      _tag: "InvalidProjectId" as const,
      message: e.message,
      limit: input.length > ProjectId.maxLength ? ProjectId.maxLength : undefined
    }))
  )
})

/**
 * The `:projectId` and `:key` path parameters, validated.
 *
 * @category accessors
 * @since 0.1.0
 */
export const projectAndKey = Effect.gen(function* () {
  const id = yield* projectId
  const key = (yield* HttpRouter.params)["key"] ?? ""
  if (key.length > maxKeyLength) {
    return yield* Effect.fail(
      badRequest(`key must be at most ${count(maxKeyLength)} characters (got ${count(key.length)})`, maxKeyLength)
    )
  }
  if (key.length === 0 || !keyPattern.test(key)) {
    return yield* Effect.fail(badRequest(`key must be 1-${maxKeyLength} characters of A-Z a-z 0-9 : _ . -`))
  }
  return { projectId: id, key }
})

/**
 * What a body must look like, for its error messages; `payload` lists the string fields whose length is a size
 * limit (a 413, not a 400, when exceeded).
 *
 * @category models
 * @since 0.1.0
 */
export interface BodySpec {
  /** The expected shape, as people read it: `{ "value": string of at most 65,536 characters }`. */
  readonly shape: string
  readonly payload?: ReadonlyArray<{ readonly field: string; readonly max: number }> | undefined
}

// Schema issues as one line: `Expected string\n  at ["value"]` becomes `value: expected string`.
const describeIssues = (message: string): string => {
  const out: Array<string> = []
  for (const line of message.split("\n")) {
    const at = /^\s+at (.*)$/.exec(line)
    if (at !== null && out.length > 0) {
      const path = [...at[1]!.matchAll(/\["?([^"\]]*)"?\]/g)].map((m) => m[1]).join(".")
      out[out.length - 1] = `${path}: ${out[out.length - 1]}`
    } else if (line.trim() !== "") {
      out.push(line.charAt(0).toLowerCase() + line.slice(1))
    }
  }
  return out.join("; ")
}

const bodyError = (spec: BodySpec) => (error: HttpServerError.HttpServerError) =>
  error.reason._tag === "RequestParseError" && error.reason.reason === "BodyTooLarge"
    ? contentTooLarge(`request body is larger than the limit of ${count(maxBodyBytes)} bytes`, maxBodyBytes)
    : badRequest(`body must be JSON ${spec.shape}: it is not valid JSON`)

/**
 * Reads the JSON body and decodes it: 413 `ContentTooLarge` when the body or a payload field is over its limit,
 * 400 `BadRequest` naming every field that is wrong otherwise.
 *
 * @category accessors
 * @since 0.1.0
 */
export const readJson = <S extends Schema.Constraint>(schema: S, spec: BodySpec) => {
  const decode = Schema.decodeUnknownEffect(schema)
  return Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const json: unknown = yield* request.json.pipe(Effect.mapError(bodyError(spec)))
    for (const { field, max } of spec.payload ?? []) {
      const value = typeof json === "object" && json !== null ? (json as Record<string, unknown>)[field] : undefined
      if (typeof value === "string" && value.length > max) {
        return yield* Effect.fail(
          contentTooLarge(`${field} is ${count(value.length)} characters; the limit is ${count(max)}`, max)
        )
      }
    }
    return yield* decode(json, { errors: "all" }).pipe(
      Effect.mapError((e) => badRequest(`body must be JSON ${spec.shape}: ${describeIssues(e.message)}`))
    )
  })
}

/**
 * Decodes the query string; `message` says what is allowed (it names the ranges and lengths).
 *
 * @category accessors
 * @since 0.1.0
 */
export const readQuery = <A, I extends Readonly<Record<string, string | ReadonlyArray<string> | undefined>>, RD>(
  schema: Schema.ConstraintCodec<A, I, RD, unknown>,
  message: string
) => HttpServerRequest.schemaSearchParams(schema).pipe(Effect.mapError(() => badRequest(message)))
