/**
 * The one script a fleet member runs against the coordinator every interval: its heartbeat, and for each target it
 * uses (or still holds connections to) its demand, what it holds, and the share it gets back.
 *
 * Keys (all under one prefix with a hash tag, so that they live in one Redis Cluster slot and one script may touch
 * them together):
 * - `<prefix>members`: a sorted set of live instances, scored by when their heartbeat expires (Redis `TIME`, so no
 *   two machines' clocks are compared). Members past their score are removed by whoever runs the script next.
 * - `<prefix>i:<instance>`: the instance's own key (a small description), expiring with its heartbeat, for
 *   operators.
 * - `<prefix>t:<engine>:<targetId>`: a hash per target, three fields per instance: `h:<id>` what it may hold
 *   (connections it may have open now and later), `d:<id>` its demand (operations running and queued, smoothed),
 *   `b:<id>` the budget it was configured with (the smallest among live instances applies).
 * - `<prefix>b:<engine>:<targetId>`: the target's breaker as last reported open, expiring when its open time ends.
 *
 * The rule that keeps the sum of what instances may open within the budget, also while shares move: an instance's
 * `h` is what it reports (what it may hold from now on, drained generations included), and a share above it is
 * granted only out of budget no live instance holds, recorded here *before* the instance applies it. A share that
 * shrinks is applied first and reported later, when the instance's engines are under it, so the difference is
 * granted to others only then. A crashed instance's fields are deleted once its heartbeat expired.
 *
 * After an outage of the coordinator every member's heartbeat has expired, and the first to come back would find
 * the others' shares free: so a member that reconnects does not grow for one heartbeat lifetime (`mayGrow` false),
 * which gives every live member the time to report what it holds again.
 *
 * The split (deterministic, so every member computes the same one): each live instance gets 1 when the budget
 * allows, the rest in proportion to demand + 1, remainders by largest fraction. An instance moves to its fair share
 * when the difference is at least `hysteresis` of the budget (or it has nothing yet, or others lack more than the
 * budget nobody holds), so demand noise does not resize pools every interval.
 *
 * @internal
 */
import { Redis } from "effect/persistence"

/** What an instance sends for one target. @internal */
export interface TargetSync {
  readonly hash: string
  readonly breaker: string
  /** Smoothed demand (operations running and queued); negative: the instance leaves the target. */
  readonly demand: number
  /** What the instance may hold from now on: its applied share, or more while a shrink drains. */
  readonly report: number
  /** The share its engines use now. */
  readonly applied: number
  readonly budget: number
}

/** What it gets back for one target. @internal */
export interface TargetResult {
  /** The share to apply (connections). */
  readonly share: number
  /** What the coordinator records it may hold. */
  readonly held: number
  /** Its fair share now. */
  readonly fair: number
  /** Live instances on the target. */
  readonly instances: number
  /** The budget in force (the smallest configured among live instances). */
  readonly budget: number
  /** The target's breaker report, if one is in force: its JSON and how long it stays open. */
  readonly breaker: string | undefined
  readonly breakerMillis: number
}

/** The reply of one run. @internal */
export interface SyncResult {
  /** Live instances in the fleet. */
  readonly live: number
  readonly targets: ReadonlyArray<TargetResult>
}

const lua = `
local id = ARGV[1]
local ttl = tonumber(ARGV[2])
local hyst = tonumber(ARGV[3])
local mayGrow = ARGV[5] == '1'
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZADD', KEYS[1], now + ttl, id)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl * 4)
redis.call('SET', KEYS[2], ARGV[4], 'PX', ttl)
local out = { redis.call('ZCARD', KEYS[1]) }
local n = (#KEYS - 2) / 2
for i = 1, n do
  local key = KEYS[1 + 2 * i]
  local bkey = KEYS[2 + 2 * i]
  local a = 6 + (i - 1) * 4
  local demand = tonumber(ARGV[a])
  local report = tonumber(ARGV[a + 1])
  local applied = tonumber(ARGV[a + 2])
  local budget = tonumber(ARGV[a + 3])
  local raw = redis.call('HGETALL', key)
  local held, want, budgets, ids = {}, {}, {}, {}
  for j = 1, #raw, 2 do
    local kind = string.sub(raw[j], 1, 1)
    local who = string.sub(raw[j], 3)
    ids[who] = true
    local v = tonumber(raw[j + 1])
    if kind == 'h' then held[who] = v elseif kind == 'd' then want[who] = v elseif kind == 'b' then budgets[who] = v end
  end
  for who in pairs(ids) do
    if who ~= id and not redis.call('ZSCORE', KEYS[1], who) then
      redis.call('HDEL', key, 'h:' .. who, 'd:' .. who, 'b:' .. who)
      ids[who] = nil
    end
  end
  if demand < 0 and report == 0 then
    redis.call('HDEL', key, 'h:' .. id, 'd:' .. id, 'b:' .. id)
    ids[id] = nil
    local count = 0
    for _ in pairs(ids) do count = count + 1 end
    for _, v in ipairs({ 0, 0, 0, count, budget }) do out[#out + 1] = v end
  else
    ids[id] = true
    held[id] = report
    want[id] = math.max(0, demand)
    budgets[id] = budget
    local B = budget
    local order = {}
    for who in pairs(ids) do
      order[#order + 1] = who
      if budgets[who] ~= nil and budgets[who] < B then B = budgets[who] end
    end
    table.sort(order)
    local count = #order
    local base = 0
    if B >= count then base = 1 end
    local rest = B - base * count
    local sumw = 0
    for _, who in ipairs(order) do sumw = sumw + (want[who] or 0) + 1 end
    local fair, fracs, given = {}, {}, 0
    for _, who in ipairs(order) do
      local exact = rest * ((want[who] or 0) + 1) / sumw
      local whole = math.floor(exact)
      fair[who] = base + whole
      given = given + base + whole
      fracs[#fracs + 1] = { who, exact - whole }
    end
    table.sort(fracs, function(x, y)
      if x[2] == y[2] then return x[1] < y[1] end
      return x[2] > y[2]
    end)
    local k = 1
    while given < B and k <= #fracs do
      fair[fracs[k][1]] = fair[fracs[k][1]] + 1
      given = given + 1
      k = k + 1
    end
    local sumHeld, lack = 0, 0
    for _, who in ipairs(order) do
      local h = held[who] or 0
      sumHeld = sumHeld + h
      if who ~= id and fair[who] > h then lack = lack + fair[who] - h end
    end
    local free = math.max(0, B - sumHeld)
    local t = fair[id]
    local thr = math.max(1, math.floor(B * hyst))
    local share = applied
    if t < applied then
      if applied - t >= thr or lack > free then share = t end
    elseif t > applied then
      if mayGrow and (applied == 0 or t - applied >= thr) then share = math.min(t, report + free) end
    end
    if share > report then held[id] = share end
    redis.call('HSET', key, 'h:' .. id, held[id], 'd:' .. id, want[id], 'b:' .. id, budget)
    redis.call('PEXPIRE', key, ttl * 4)
    for _, v in ipairs({ share, held[id], t, count, B }) do out[#out + 1] = v end
  end
  local b = redis.call('GET', bkey)
  if b then
    out[#out + 1] = b
    out[#out + 1] = redis.call('PTTL', bkey)
  else
    out[#out + 1] = ''
    out[#out + 1] = 0
  end
end
return out
`

type Params = readonly [
  members: string,
  instanceKey: string,
  id: string,
  ttlMillis: number,
  hysteresis: number,
  description: string,
  mayGrow: boolean,
  targets: ReadonlyArray<TargetSync>
]

/**
 * The script as Effect's `Redis.script` (loaded once, run by its SHA, reloaded after a Redis restart). Its first
 * `numberOfKeys` parameters are the keys: the members set, the instance's key, then each target's hash and breaker.
 *
 * @internal
 */
export const syncScript = Redis.script(
  (...[members, instanceKey, id, ttl, hysteresis, description, mayGrow, targets]: Params): ReadonlyArray<unknown> => {
    const keys: Array<unknown> = [members, instanceKey]
    const args: Array<unknown> = [id, ttl, hysteresis, description, mayGrow ? 1 : 0]
    for (const t of targets) {
      keys.push(t.hash, t.breaker)
      args.push(Math.round(Math.max(-1, t.demand) * 100) / 100, t.report, t.applied, t.budget)
    }
    return keys.concat(args)
  },
  { lua, numberOfKeys: (...params: Params) => 2 + 2 * params[7].length }
).withReturnType<ReadonlyArray<number | string>>()

/** Reads the script's flat reply. @internal */
export const parse = (reply: ReadonlyArray<number | string>, count: number): SyncResult => {
  const targets: Array<TargetResult> = []
  for (let i = 0; i < count; i++) {
    const at = 1 + i * 7
    const breaker = String(reply[at + 5] ?? "")
    targets.push({
      share: Number(reply[at]),
      held: Number(reply[at + 1]),
      fair: Number(reply[at + 2]),
      instances: Number(reply[at + 3]),
      budget: Number(reply[at + 4]),
      breaker: breaker === "" ? undefined : breaker,
      breakerMillis: Number(reply[at + 6])
    })
  }
  return { live: Number(reply[0]), targets }
}
