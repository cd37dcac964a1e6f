/**
 * This process's side of the fleet's connection budgets: per target, the share its engines may use, what the
 * coordinator last recorded, its demand, and how to read what its engine still holds. It implements core's
 * `Coordination.Shares` (engines read it when they size their pools) plus `track`, through which an engine that can
 * tell how many connections it may still hold (the PostgreSQL engine's `TargetPool.bound`) reports it, so that a
 * shrunk share is reported to the coordinator only once the engine is under it.
 *
 * A plain state record and functions over it, the way `effect/Pool` keeps its state.
 *
 * @internal
 */
import type { Shares } from "@tenantpool/core/Coordination"
import type { Engine } from "@tenantpool/core/Engine"

/** One coordinated target. @internal */
export interface Entry {
  readonly engine: Engine
  readonly targetId: string
  /** The configured budget (connections across the fleet). */
  readonly budget: number
  /** The share engines use now (connections). */
  share: number
  /** Whether `share` came from the coordinator or a fallback (before that: 0 while connected). */
  known: boolean
  /** What the coordinator last recorded this process may hold; its fair share; instances on the target. */
  held: number
  fair: number
  instances: number
  /** Smoothed demand sent to the coordinator, and the peak of the samples since the last sync. */
  demand: number
  peak: number
  /** Seen in the last sample of `Coordination.targets`. */
  live: boolean
  /** What the engine may still hold (tracked engines only). */
  bound: (() => number) | undefined
}

/** The table of coordinated targets. @internal */
export interface Table {
  readonly budgets: Partial<Record<Engine, number>>
  readonly targetBudgets: Readonly<Record<string, number>>
  readonly fallbackInstances: number
  readonly entries: Map<string, Entry>
  readonly listeners: Set<() => void>
  /** The last sync succeeded. */
  connected: boolean
  /** Live instances in the fleet at the last successful sync (0: never synced). */
  live: number
  /** Asks the sync loop to run now (a target nobody has a share for yet is waiting). */
  poke: () => void
}

/** @internal */
export const makeTable = (options: {
  readonly budgets: Partial<Record<Engine, number>>
  readonly targetBudgets: Readonly<Record<string, number>>
  readonly fallbackInstances: number
}): Table => ({
  budgets: options.budgets,
  targetBudgets: options.targetBudgets,
  fallbackInstances: options.fallbackInstances,
  entries: new Map(),
  listeners: new Set(),
  connected: false,
  live: 0,
  poke: () => {}
})

const keyOf = (engine: Engine, targetId: string) => `${engine}:${targetId}`

/** The fleet budget of a target, if its engine is coordinated. @internal */
export const budgetOf = (table: Table, engine: Engine, targetId: string): number | undefined =>
  table.targetBudgets[targetId] ?? table.budgets[engine]

/**
 * The most a process may use while the coordinator cannot be asked: its last share, never more than the budget
 * divided by the last known number of instances (or `fallbackInstances` before any contact). If every process
 * does this, their sum stays within the budget as long as no instance joins during the outage.
 *
 * @internal
 */
export const fallbackShare = (table: Table, entry: Entry): number => {
  const instances = Math.max(1, table.live > 0 ? table.live : table.fallbackInstances)
  const even = Math.floor(entry.budget / instances)
  return entry.known ? Math.min(entry.share, even) : even
}

/** The entry of a target, made on first sight (with share 0 while connected, the fallback otherwise). @internal */
export const ensure = (table: Table, engine: Engine, targetId: string): Entry | undefined => {
  const key = keyOf(engine, targetId)
  const found = table.entries.get(key)
  if (found !== undefined) return found
  const budget = budgetOf(table, engine, targetId)
  if (budget === undefined) return undefined
  const entry: Entry = {
    engine,
    targetId,
    budget,
    share: 0,
    known: false,
    held: 0,
    fair: 0,
    instances: 0,
    demand: 0,
    peak: 0,
    live: false,
    bound: undefined
  }
  if (!table.connected) {
    entry.share = fallbackShare(table, entry)
    entry.known = true
  }
  table.entries.set(key, entry)
  table.poke()
  return entry
}

/** Forgets a target the process no longer uses and holds nothing of. @internal */
export const remove = (table: Table, entry: Entry): void => {
  table.entries.delete(keyOf(entry.engine, entry.targetId))
}

/**
 * What the process reports it may hold: its share, or more while an engine drains what it opened under a larger
 * one.
 *
 * @internal
 */
export const report = (entry: Entry): number => Math.max(entry.share, entry.bound?.() ?? 0)

/** Sets a share; returns whether it changed. @internal */
export const setShare = (entry: Entry, share: number): boolean => {
  entry.known = true
  if (entry.share === share) return false
  entry.share = share
  return true
}

/** Tells the engines that shares changed (they resize their pools). @internal */
export const notify = (table: Table): void => {
  for (const listener of table.listeners) listener()
}

/** Core's `Shares`, and `track` for engines that can say what they still hold. @internal */
export const sharesOf = (
  table: Table
): Shares & { readonly track: (engine: Engine, targetId: string, bound: () => number) => () => void } => ({
  get: (engine, targetId) => ensure(table, engine, targetId)?.share,
  subscribe: (listener) => {
    table.listeners.add(listener)
    return () => {
      table.listeners.delete(listener)
    }
  },
  track: (engine, targetId, bound) => {
    const entry = ensure(table, engine, targetId)
    if (entry === undefined) return () => {}
    entry.bound = bound
    return () => {
      if (entry.bound === bound) entry.bound = undefined
    }
  }
})
