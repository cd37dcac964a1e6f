/**
 * The abort signal the engine hands the driver with every call, which also reports the call's progress to the guard
 * (`AttemptSignal.waitingFor` / `sending`): a call abandoned while the driver still selects a server or waits for
 * a pooled connection was never sent, so the guard answers a definite `Timeout` naming what it waited for, and no
 * breaker counts it (a write abandoned there cannot apply later: the abort drops it).
 *
 * How the progress is seen (driver 7.9, pinned in package.json; `MongoVerdicts.integration.test.ts` checks each
 * step against the real driver and server): the driver subscribes to the signal while it selects a server and
 * while it waits for a checkout, and unsubscribes when each is done; the first thing it does with a checked-out
 * connection is `signal.throwIfAborted()` (`Connection.command`). So the call waits for server selection until the
 * first unsubscription, then for a connection checkout, and is being sent at the first `throwIfAborted` that
 * directly follows an unsubscription. Everything the driver does before (a cursor's own checks, connecting a new
 * client) subscribes or checks without that order. Should a driver upgrade change it, the call would be reported
 * as still waiting when it has been sent: the progress test fails first.
 *
 * It is also cheaper than an `AbortController` (an `EventTarget`): a flag, a reason and a short listener array.
 * The driver uses only `aborted`, `reason`, `throwIfAborted` and the two listener methods, and calls each listener
 * with `this` bound to the signal.
 *
 * @internal
 */
import type { AttemptSignal } from "@tenantpool/core/Engine"

type Listener = (this: FlightSignal, event: { readonly type: "abort" }) => void

/** The resources a call waits for before it is sent, as the guard's `Timeout.waitingFor` names them. @internal */
export const resources = {
  selection: "mongodb server selection",
  checkout: "mongodb connection checkout"
} as const

const abortEvent = { type: "abort" } as const

/** An abort signal for the driver that reports progress to an attempt (see the module comment). @internal */
export class FlightSignal {
  aborted = false
  reason: unknown = undefined
  readonly onabort = null
  private listeners: Array<Listener> | undefined = undefined
  /** The attempt whose progress this signal reports, until the call is sent. */
  private attempt: AttemptSignal | undefined = undefined
  private unsubscribed = 0
  private afterUnsubscribe = false

  /** A driver call starts under `attempt`: it waits for a server first. */
  track(attempt: AttemptSignal): void {
    this.attempt = attempt
    this.unsubscribed = 0
    this.afterUnsubscribe = false
    attempt.waitingFor(resources.selection)
  }

  addEventListener(type: string, listener: Listener): void {
    if (type !== "abort") return
    ;(this.listeners ??= []).push(listener)
    this.afterUnsubscribe = false
  }

  removeEventListener(type: string, listener: Listener): void {
    if (type !== "abort") return
    const listeners = this.listeners
    if (listeners !== undefined) {
      const i = listeners.indexOf(listener)
      if (i >= 0) listeners.splice(i, 1)
    }
    this.afterUnsubscribe = true
    if (this.unsubscribed++ === 0) this.attempt?.waitingFor(resources.checkout)
  }

  throwIfAborted(): void {
    if (this.aborted) throw this.reason
    if (this.afterUnsubscribe) {
      this.afterUnsubscribe = false
      const attempt = this.attempt
      if (attempt !== undefined) {
        this.attempt = undefined
        attempt.sending()
      }
    }
  }

  /** Aborts: listeners run once, with `this` bound to the signal, as the driver's listeners expect. */
  abort(reason: unknown): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    const listeners = this.listeners
    this.listeners = undefined
    if (listeners === undefined) return
    for (const listener of listeners) {
      try {
        listener.call(this, abortEvent)
      } catch {
        // A listener's failure must not keep the others from running (EventTarget reports and continues too).
      }
    }
  }

  /** As the driver's options type it. */
  get asAbortSignal(): AbortSignal {
    return this as unknown as AbortSignal
  }
}
