/**
 * Canary secrets for leak tests (RELIABILITY S1): a distinctive password, the forms it could leak in (plain,
 * percent-encoded, base64, its unique middle), and a logger that captures every log line at every level.
 *
 * @since 0.1.0
 */
import * as crypto from "node:crypto"
import * as Cause from "effect/Cause"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as References from "effect/References"

/**
 * A canary and what finds it.
 *
 * @category models
 * @since 0.1.0
 */
export interface Canary {
  /** `CANARY-<uuid>-p@ss/#`: characters that need escaping in a URL, so encoded forms differ from the plain one. */
  readonly secret: string
  readonly forms: ReadonlyArray<string>
  /** The forms of the secret found in `text`. */
  readonly leaks: (text: string) => ReadonlyArray<string>
  /** Every log line written through `captureLogs` (message, cause and annotations). */
  readonly logs: Array<string>
  /** A logger layer capturing all levels into `logs`. */
  readonly captureLogs: Layer.Layer<never>
}

/**
 * Makes a fresh canary.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (): Canary => of(`CANARY-${crypto.randomUUID()}-p@ss/#`)

/**
 * A canary around a secret made earlier (e.g. the password of a database user a fixture created with `make`), with
 * a fresh log capture.
 *
 * @category constructors
 * @since 0.1.0
 */
export const of = (secret: string): Canary => {
  const forms = [
    secret,
    encodeURIComponent(secret),
    Buffer.from(secret).toString("base64"),
    Buffer.from(encodeURIComponent(secret)).toString("base64"),
    // The distinctive middle alone, in case a form above was cut or re-encoded.
    ...(secret.startsWith("CANARY-") ? [secret.slice(7, 43)] : [])
  ]
  const logs: Array<string> = []
  const captureLogs = Layer.mergeAll(
    Logger.layer([
      Logger.make((options) => {
        logs.push(`${options.logLevel} ${String(options.message)} ${Cause.pretty(options.cause)}`)
        logs.push(
          JSON.stringify(
            { message: options.message, annotations: options.fiber.getRef(References.CurrentLogAnnotations) },
            (_, v) => (typeof v === "bigint" ? String(v) : v)
          )
        )
      })
    ]),
    Layer.succeed(References.MinimumLogLevel, "All")
  )
  return { secret, forms, leaks: (text) => forms.filter((form) => text.includes(form)), logs, captureLogs }
}
