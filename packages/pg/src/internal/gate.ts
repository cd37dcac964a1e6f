/**
 * A project's connection gate: how many server connections one project may hold at once on its target (its tier's
 * `maxPool`), whatever the target's pool could give it. Exclusive checkouts (a slow or unknown statement, a
 * transaction, a stream, `sql.reserve`) pass through it; pipelined statements of known-short duration do not hold a
 * connection of their own and skip it.
 *
 * Not `Semaphore`: the engine releases a slot from synchronous code (a lease whose deadline passed gives back its
 * connection at once, while its holder still holds the scope), and the limit follows the project's tier at run time.
 * Waiters are served in arrival order.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** Slots of one project on one target. */
export class Gate {
  held = 0
  limit: number
  private readonly waiters = new Set<() => void>()

  constructor(limit: number) {
    this.limit = Math.max(1, limit)
  }

  /** Waiting checkouts. */
  get waiting(): number {
    return this.waiters.size
  }

  /** Follows a new tier limit; a higher one admits waiters at once. */
  setLimit(limit: number): void {
    this.limit = Math.max(1, limit)
    this.wake()
  }

  /** Takes a slot, waiting in arrival order. Run it where interruption is restored (see `withSlot`). */
  readonly take: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (this.waiters.size === 0 && this.held < this.limit) {
      this.held++
      return resume(Effect.void)
    }
    const waiter = () => resume(Effect.void)
    this.waiters.add(waiter)
    return Effect.sync(() => {
      this.waiters.delete(waiter)
    })
  })

  release(): void {
    this.held--
    this.wake()
  }

  private wake(): void {
    for (const waiter of this.waiters) {
      if (this.held >= this.limit) return
      this.waiters.delete(waiter)
      this.held++
      waiter()
    }
  }
}

/**
 * A slot taken for the life of `use`'s result: `release` (idempotent) gives it back, early if need be. Waiting is
 * interruptible; once granted, the release is in place before anything else runs.
 */
export interface Slot {
  readonly release: () => void
}

/** Takes a slot of `gate` and hands `use` its release; the slot is given back when `use` ends, on every exit. */
export const withSlot = <A, E, R>(gate: Gate, use: (slot: Slot) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(restore(gate.take), () => {
      const slot = grant(gate)
      return Effect.ensuring(restore(use(slot)), Effect.sync(slot.release))
    })
  )

const grant = (gate: Gate): Slot => {
  let held = true
  return {
    release: () => {
      if (!held) return
      held = false
      gate.release()
    }
  }
}

/** Takes a slot of `gate` until the current scope closes (or `release` is called first). */
export const slotScoped = (gate: Gate): Effect.Effect<Slot, never, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(restore(gate.take), () => {
      const slot = grant(gate)
      return Effect.as(
        Effect.addFinalizer(() => Effect.sync(slot.release)),
        slot
      )
    })
  )
