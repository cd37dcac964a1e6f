/**
 * The harness's failures. Each carries the server kind and a message written for the person running the tests:
 * what happened, and what to do about it.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

const Kind = Schema.Literals(["postgres", "redis", "mongodb"])

/**
 * No server of this kind could be had: no URL in the environment, no local binaries, no Docker engine.
 *
 * @category errors
 * @since 0.1.0
 */
export class ServerUnavailableError extends Schema.TaggedError<ServerUnavailableError>()("ServerUnavailableError", {
  kind: Kind,
  message: Schema.String
}) {}

/**
 * A server was found but did not come up (or an environment URL did not answer); the message has the log tail.
 *
 * @category errors
 * @since 0.1.0
 */
export class ServerStartError extends Schema.TaggedError<ServerStartError>()("ServerStartError", {
  kind: Kind,
  message: Schema.String
}) {}

/**
 * A control (stop, start, kill, pause, resume, pid) failed or is not available for the server's source.
 *
 * @category errors
 * @since 0.1.0
 */
export class ServerControlError extends Schema.TaggedError<ServerControlError>()("ServerControlError", {
  kind: Kind,
  operation: Schema.String,
  message: Schema.String
}) {}
