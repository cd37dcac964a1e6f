/**
 * Pub/sub for a project: PUBLISH on the shared connection, and SUBSCRIBE/PSUBSCRIBE as streams, each on a
 * connection of its own that lives exactly as long as the stream (closed when the stream ends, fails or is
 * interrupted) and resubscribes by itself after a reconnect. Channels and patterns carry the project's prefix on the
 * server and come back without it.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import type { GuardError } from "@tenantpool/core/Errors"
import { RedisError } from "../RedisError.ts"
import * as A from "./arguments.ts"
import { connectDedicated, send } from "./connections.ts"
import { key, keys, pattern, strip } from "./keys.ts"
import { errFor, type Handle, OP, run } from "./operations.ts"

/** A pub/sub message (published as `RedisEngine.Message`). */
export interface Message {
  readonly channel: string
  readonly message: string
  /** The pattern that matched (PSUBSCRIBE only). */
  readonly pattern?: string | undefined
}

/** PUBLISH to the project's channel. */
export const publish =
  (handle: Handle) =>
  (channel: string, message: string): Effect.Effect<number, RedisError | GuardError> =>
    A.checked(A.string("publish", "channel", channel) ?? A.string("publish", "message", message), () =>
      run(handle, OP.publish, (b, s) => send(b, s, (c) => c.publish(key(b, channel), message)), errFor("publish"))
    )

/** SUBSCRIBE (`subscribe`) or PSUBSCRIBE (`psubscribe`) to the project's channels or patterns, as a stream. */
export const subscription = (
  handle: Handle,
  mode: "subscribe" | "psubscribe",
  names: ReadonlyArray<string>
): Stream.Stream<Message, RedisError | GuardError> => {
  const invalid = A.strings(mode, mode === "subscribe" ? "channels" : "patterns", names)
  if (invalid !== undefined) return Stream.fail(invalid)
  return Stream.unwrap(
    Effect.map(handle.binding, ({ binding: b }) =>
      Stream.callback<Message, RedisError>((queue) =>
        Effect.gen(function* () {
          // In the stream's scope: the connection closes with the stream.
          const conn = yield* connectDedicated(b.settings, b.target)
          if (mode === "subscribe") {
            conn.on("message", (channel: string, message: string) =>
              Queue.offerUnsafe(queue, { channel: strip(b, channel), message })
            )
          } else {
            conn.on("pmessage", (pattern: string, channel: string, message: string) =>
              Queue.offerUnsafe(queue, { channel: strip(b, channel), message, pattern: strip(b, pattern) })
            )
          }
          conn.on("end", () =>
            Queue.failCauseUnsafe(
              queue,
              Cause.fail(new RedisError({ kind: "connection", command: mode, detail: "subscriber closed", sent: true }))
            )
          )
          // Patterns match only within the project's channels (the prefix's own glob characters escaped).
          const prefixed = mode === "subscribe" ? keys(b, names) : names.map((p) => pattern(b, p))
          yield* Effect.tryPromise({
            try: () => (mode === "subscribe" ? conn.subscribe(...prefixed) : conn.psubscribe(...prefixed)),
            catch: errFor(mode)
          })
        })
      )
    )
  )
}
