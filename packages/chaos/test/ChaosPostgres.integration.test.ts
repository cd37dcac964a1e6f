// RELIABILITY.md §4's CI subset on PostgreSQL (a private durable server behind Toxiproxy): see fixtures/matrix.ts.
import { matrix } from "./fixtures/matrix.ts"

matrix("postgres", {
  // Issue #14: a statement whose pipelined connection breaks while writing (EPIPE) fails with a definite
  // `SqlError` (ConnectionError<EPIPE>) although the server had committed it; it should be `UnknownOutcome`.
  // Reproduce: `npm run chaos -- --engine pg --scenario R12` (limit_data), or R5k / R9.
  falseFail: "committed writes reported as failed (ConnectionError<EPIPE>), issue #14",
  // Issue #14: when the connection dies inside `withTransaction`, the ROLLBACK on the dead connection fails and the
  // transaction dies (`Die` carrying SqlError "PgConnection: Connection closed") instead of failing with an error.
  // Reproduce: `npm run chaos -- --engine pg --scenario R5k` (pg_terminate_backend during transactions), or R12.
  defects: "a connection dying inside a transaction body is a defect (ROLLBACK on the dead connection), issue #14"
})
