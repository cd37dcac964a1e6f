// The chaos suite's CI subset on a MongoDB-wire server (FerretDB behind Toxiproxy): see fixtures/matrix.ts.
import { matrix } from "./fixtures/matrix.ts"

matrix("mongodb", {})
