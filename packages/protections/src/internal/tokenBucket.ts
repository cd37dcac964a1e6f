/**
 * A token bucket as a plain object, refilled lazily from a clock reading: no timer, no fiber, no Effect. Taking a
 * token is a few arithmetic operations, which is what lets a passing rate-limit check return synchronously.
 *
 * @internal
 */

/** @internal */
export class TokenBucket {
  tokens: number
  last: number
  constructor(tokens: number, now: number) {
    this.tokens = tokens
    this.last = now
  }
}

const refill = (bucket: TokenBucket, now: number, perSecond: number, burst: number): void => {
  const elapsed = now - bucket.last
  // A clock that went back (a TestClock set to an earlier time) refills nothing and restarts from there.
  if (elapsed > 0) bucket.tokens = Math.min(burst, bucket.tokens + (elapsed * perSecond) / 1000)
  bucket.last = now
}

/**
 * Takes `n` tokens if the bucket holds them and returns 0; otherwise takes nothing and returns how many
 * milliseconds until it would hold them.
 *
 * @internal
 */
export const take = (bucket: TokenBucket, now: number, perSecond: number, burst: number, n = 1): number => {
  refill(bucket, now, perSecond, burst)
  if (bucket.tokens >= n) {
    bucket.tokens -= n
    return 0
  }
  return Math.max(1, Math.ceil(((n - bucket.tokens) * 1000) / perSecond))
}

/**
 * Takes `n` tokens even into debt (a reservation: callers queue in the order they reserved) and returns how many
 * milliseconds the caller must wait for its turn (0: now). `refund` gives a reservation back.
 *
 * @internal
 */
export const reserve = (bucket: TokenBucket, now: number, perSecond: number, burst: number, n = 1): number => {
  refill(bucket, now, perSecond, burst)
  bucket.tokens -= n
  return bucket.tokens >= 0 ? 0 : Math.ceil((-bucket.tokens * 1000) / perSecond)
}

/** @internal */
export const refund = (bucket: TokenBucket, n = 1): void => {
  bucket.tokens += n
}
