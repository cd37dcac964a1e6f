/**
 * Test-side access to the servers the global setup started: their URLs, descriptions, and handles whose controls
 * work from the test worker. For stop/kill/pause tests prefer `Servers.acquirePrivate`: the shared servers are
 * used by every test file running at the same time.
 *
 * @since 0.1.0
 */
import { inject } from "vitest"
import type {} from "./GlobalSetup.ts"
import type { ServerKind } from "./internal/kinds.ts"
import * as Servers from "./Servers.ts"

/**
 * The description of the shared server of `kind`; throws when the global setup is not configured.
 *
 * @category accessors
 * @since 0.1.0
 */
export const info = (kind: ServerKind): Servers.ServerInfo => {
  const servers = inject("tenantpool.servers")
  const server = servers?.[kind]
  if (server === undefined) {
    throw new Error(
      `[tenantpool] no ${kind} server was provided to this test: the harness's global setup did not run. ` +
        "Run the tests with `npm test` (vitest.workspace.ts sets test.globalSetup to packages/testing/src/GlobalSetup.ts)."
    )
  }
  return server
}

/**
 * The plain connection URL of the shared server of `kind`.
 *
 * @category accessors
 * @since 0.1.0
 */
export const url = (kind: ServerKind): string => info(kind).url

/**
 * A handle on the shared server of `kind`. Its controls act on the server every test file uses; `close` is a no-op.
 *
 * @category accessors
 * @since 0.1.0
 */
export const shared = (kind: ServerKind): Servers.ServerHandle => Servers.attach(info(kind))
