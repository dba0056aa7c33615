export { CreditMeter, Hold, type HoldRequest } from "./client.js";
export * from "./errors.js";
export { OPERATIONS, type Schemas, type TransactionFilters } from "./resources.js";
export type { components, operations, paths } from "./schema.js";
export { catalogModel, type TokenUsage, tokenUsage, type UsageLine, usageLines } from "./tokens.js";
export type { ClientOptions } from "./transport.js";
