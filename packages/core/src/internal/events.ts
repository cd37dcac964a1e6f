/**
 * The service's event emitter: every event goes to a sliding `PubSub` (subscribers that fall behind lose the
 * oldest, publishers never wait) and to a ring of the most recent ones for status pages.
 *
 * @internal
 */
import * as PubSub from "effect/PubSub"
import type { TenancyEvent } from "../Events.ts"

/** @internal */
export class Emitter {
  readonly pubsub: PubSub.PubSub<TenancyEvent>
  private readonly ring: Array<TenancyEvent | undefined>
  private next = 0
  private size = 0

  constructor(pubsub: PubSub.PubSub<TenancyEvent>, recent: number) {
    this.pubsub = pubsub
    this.ring = new Array(Math.max(0, recent))
  }

  emit(event: TenancyEvent): void {
    if (this.ring.length > 0) {
      this.ring[this.next] = event
      this.next = (this.next + 1) % this.ring.length
      if (this.size < this.ring.length) this.size++
    }
    PubSub.publishUnsafe(this.pubsub, event)
  }

  /** The most recent events, oldest first. */
  recent(): Array<TenancyEvent> {
    const out: Array<TenancyEvent> = []
    const start = (this.next - this.size + this.ring.length) % Math.max(1, this.ring.length)
    for (let i = 0; i < this.size; i++) out.push(this.ring[(start + i) % this.ring.length]!)
    return out
  }
}
