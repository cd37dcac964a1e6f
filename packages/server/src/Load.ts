/**
 * A small load generator for the demo: keeps requests in flight against every demo project (more against the
 * FREE one than its tier admits, so 429s show up), and prints a progress line once a second.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"

/**
 * Runs until interrupted.
 *
 * @category constructors
 * @since 0.1.0
 */
export const runLoad = (base: string, projects: ReadonlyArray<string>): Effect.Effect<void> =>
  Effect.callback<void>((_resume, signal) => {
    const counts = new Map<string, number>()
    const bump = (k: string) => counts.set(k, (counts.get(k) ?? 0) + 1)
    let total = 0
    const worker = async (project: string, n: number) => {
      let i = 0
      while (!signal.aborted) {
        const key = `k${(n * 1000 + i++) % 200}`
        const url = `${base}/projects/${project}/kv/${key}`
        try {
          const res =
            i % 4 === 0
              ? await fetch(url, { method: "PUT", body: JSON.stringify({ value: `v${i}` }), signal })
              : await fetch(url, { signal })
          await res.arrayBuffer()
          bump(String(res.status))
        } catch {
          if (signal.aborted) return
          bump("network")
          await new Promise((r) => setTimeout(r, 100))
        }
        total++
      }
    }
    projects.forEach((project, p) => {
      const concurrency = p === 0 ? 60 : 8
      for (let n = 0; n < concurrency; n++) void worker(project, n)
    })
    let last = 0
    const timer = setInterval(() => {
      const rate = total - last
      last = total
      const byStatus = [...counts.entries()]
        .sort()
        .map(([k, v]) => `${k}:${v}`)
        .join(" ")
      process.stdout.write(`\rload: ${rate} req/s  total ${total}  ${byStatus}   `)
    }, 1000)
    return Effect.sync(() => clearInterval(timer))
  })
