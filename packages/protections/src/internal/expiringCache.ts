/**
 * A bounded map whose entries expire: insertion order doubles as age order, so the oldest entry is evicted first
 * when the map is full, and lookups drop expired entries. Used for analyses (no expiry) and estimates (a TTL).
 *
 * @internal
 */

interface Slot<V> {
  readonly value: V
  readonly expiresAt: number
}

/** @internal */
export class ExpiringCache<K, V> {
  private readonly map = new Map<K, Slot<V>>()
  private readonly maxEntries: number
  constructor(maxEntries: number) {
    this.maxEntries = Math.max(1, maxEntries)
  }

  get size(): number {
    return this.map.size
  }

  get(key: K, now: number): V | undefined {
    const slot = this.map.get(key)
    if (slot === undefined) return undefined
    if (slot.expiresAt <= now) {
      this.map.delete(key)
      return undefined
    }
    return slot.value
  }

  set(key: K, value: V, expiresAt: number): void {
    this.map.delete(key)
    if (this.map.size >= this.maxEntries) {
      const oldest = this.map.keys().next()
      if (oldest.done !== true) this.map.delete(oldest.value)
    }
    this.map.set(key, { value, expiresAt })
  }

  clear(): void {
    this.map.clear()
  }
}
