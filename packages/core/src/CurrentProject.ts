/**
 * The current project, carried in fiber-local context. It is set by `Tenancy.withProject(id)` or by providing
 * `Tenancy.layerProject(id)`; forked fibers inherit it. Engine operations read it to know whose limits,
 * breakers and connections to use.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type { ProjectId } from "./ProjectId.ts"
import type { ProjectConfig } from "./Registry.ts"
import type { TierName } from "./Vocabulary.ts"

/**
 * What an operation knows about the project it runs for.
 *
 * @category models
 * @since 0.1.0
 */
export interface ProjectHandle {
  readonly id: ProjectId
  readonly tierName: TierName
  readonly config: ProjectConfig
}

/**
 * The current project (undefined outside any project).
 *
 * @category references
 * @since 0.1.0
 */
export const CurrentProject = Context.Reference<ProjectHandle | undefined>("@tenantpool/core/CurrentProject", {
  defaultValue: () => undefined
})
