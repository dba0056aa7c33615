/**
 * Typed errors, one per problem type of the API (docs/api.md, "Errors"): the problem's
 * `type` picks the class (`/problems/insufficient-credits` -> InsufficientCredits), or the
 * status when the type is unknown. Amounts stay decimal strings, as the API sends them.
 */

export type Problem = {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  errors?: Array<Record<string, string>> | null;
  [field: string]: unknown;
};

export class CreditMeterError extends Error {
  override name = "CreditMeterError";
}

/** No answer after every retry: connection refused or dropped, or the timeout passed. */
export class APIConnectionError extends CreditMeterError {
  override name = "APIConnectionError";
  constructor(message: string, readonly timedOut = false, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A hold used out of order (committed twice, or after its release). */
export class HoldStateError extends CreditMeterError {
  override name = "HoldStateError";
}

export class APIError extends CreditMeterError {
  override name = "APIError";
  readonly type: string;
  readonly title: string;
  readonly detail: string;

  constructor(
    readonly status: number,
    readonly problem: Problem,
    readonly headers: Headers,
  ) {
    const type = String(problem.type ?? "about:blank");
    super(`${status} ${type}: ${problem.detail ?? problem.title ?? problem.message ?? ""}`);
    this.type = type;
    this.title = String(problem.title ?? problem.message ?? "");
    this.detail = String(problem.detail ?? "");
  }

  /** The problem type's last segment: `insufficient-credits`. */
  get code(): string {
    return this.type.replace(/\/+$/, "").split("/").pop() ?? "";
  }
}

const str = (value: unknown): string | null => (value == null ? null : String(value));

export class BadRequest extends APIError {
  override name = "BadRequest";
}
export class Unauthorized extends APIError {
  override name = "Unauthorized";
}
export class InsufficientCredits extends APIError {
  override name = "InsufficientCredits";
  get available(): string | null {
    return str(this.problem.available);
  }
  get requested(): string | null {
    return str(this.problem.requested);
  }
}
export class Forbidden extends APIError {
  override name = "Forbidden";
}
export class LimitReached extends Forbidden {
  override name = "LimitReached";
  get limit(): string | null {
    return str(this.problem.limit);
  }
  get remaining(): string | null {
    return str(this.problem.remaining);
  }
}
export class SpendingLimitReached extends LimitReached {
  override name = "SpendingLimitReached";
}
export class MemberBudgetReached extends LimitReached {
  override name = "MemberBudgetReached";
}
export class NotFound extends APIError {
  override name = "NotFound";
}
export class Conflict extends APIError {
  override name = "Conflict";
}
export class IdempotencyConflict extends Conflict {
  override name = "IdempotencyConflict";
}
export class ReservationEnded extends Conflict {
  override name = "ReservationEnded";
}
export class ValidationFailed extends APIError {
  override name = "ValidationFailed";
  get errors(): Array<Record<string, string>> {
    return this.problem.errors ?? [];
  }
}
export class RateLimited extends APIError {
  override name = "RateLimited";
}
export class ServerError extends APIError {
  override name = "ServerError";
}
export class PaymentProviderError extends ServerError {
  override name = "PaymentProviderError";
}
export class Contention extends ServerError {
  override name = "Contention";
}

type ErrorClass = new (status: number, problem: Problem, headers: Headers) => APIError;

const BY_CODE: Record<string, ErrorClass> = {
  "insufficient-credits": InsufficientCredits,
  "spending-limit-reached": SpendingLimitReached,
  "member-budget-reached": MemberBudgetReached,
  "idempotency-key-reused": IdempotencyConflict,
  "reservation-committed": ReservationEnded,
  "reservation-released": ReservationEnded,
  "reservation-expired": ReservationEnded,
  "payment-provider-error": PaymentProviderError,
  contention: Contention,
};

const BY_STATUS: Record<number, ErrorClass> = {
  400: BadRequest,
  401: Unauthorized,
  402: InsufficientCredits,
  403: Forbidden,
  404: NotFound,
  409: Conflict,
  413: BadRequest,
  415: BadRequest,
  422: ValidationFailed,
  429: RateLimited,
};

export function errorFor(status: number, problem: Problem, headers: Headers): APIError {
  const code = String(problem.type ?? "").replace(/\/+$/, "").split("/").pop() ?? "";
  const cls = BY_CODE[code] ?? BY_STATUS[status] ?? (status >= 500 ? ServerError : APIError);
  return new cls(status, problem, headers);
}
