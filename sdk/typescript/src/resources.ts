/**
 * The API's operations, grouped by resource: one method per route of docs/openapi.yaml.
 * Field names are the API's own (snake_case); amounts are decimal strings in answers and
 * may be strings or numbers in requests (strings keep every digit: prefer them).
 */

import type { components } from "./schema.js";
import { type Call, segment, type Transport } from "./transport.js";

export type Schemas = components["schemas"];
type Query = Call["query"];
type Keyed = { idempotencyKey?: string };
type Page<T> = { items: T[]; next_cursor: string | null };

const w = (walletId: string) => `/v1/wallets/${segment(walletId)}`;

export async function* paginate<T>(
  transport: Transport,
  path: string,
  query: Query = {},
): AsyncGenerator<T> {
  let cursor: string | null | undefined;
  do {
    const page = await transport.run<Page<T>>({ method: "GET", path, query: { ...query, cursor } });
    yield* page.items;
    cursor = page.next_cursor;
  } while (cursor);
}

class Resource {
  constructor(protected readonly t: Transport) {}
}

export class Wallets extends Resource {
  /** Create the wallet, or change its plan (PUT: the same call does both). */
  create(walletId: string, body: Schemas["WalletIn"]): Promise<Schemas["WalletOut"]> {
    return this.t.run({ method: "PUT", path: w(walletId), body });
  }
  get(walletId: string): Promise<Schemas["WalletOut"]> {
    return this.t.run({ method: "GET", path: w(walletId) });
  }
  setBypass(walletId: string, body: Schemas["BypassIn"]): Promise<Schemas["WalletOut"]> {
    return this.t.run({ method: "PUT", path: `${w(walletId)}/bypass`, body });
  }
}

export class Reservations extends Resource {
  create(walletId: string, body: Schemas["ReserveIn"], opts: Keyed = {}): Promise<Schemas["ReservationOut"]> {
    const path = `${w(walletId)}/reservations`;
    return this.t.run({ method: "POST", path, body, idempotencyKey: opts.idempotencyKey ?? true });
  }
  /** Charge the actual cost (`credits` or `usage`; neither: what was held). */
  commit(
    walletId: string,
    reservationId: string,
    body: Schemas["CommitIn"] = {},
    opts: Keyed = {},
  ): Promise<Schemas["CommitOut"]> {
    const path = `${w(walletId)}/reservations/${segment(reservationId)}/commit`;
    return this.t.run({ method: "POST", path, body, idempotencyKey: opts.idempotencyKey ?? true });
  }
  release(walletId: string, reservationId: string, opts: Keyed = {}): Promise<Schemas["ReleaseOut"]> {
    const path = `${w(walletId)}/reservations/${segment(reservationId)}/release`;
    return this.t.run({ method: "POST", path, body: {}, idempotencyKey: opts.idempotencyKey ?? true });
  }
}

export class Charges extends Resource {
  create(walletId: string, body: Schemas["ChargeIn"], opts: Keyed = {}): Promise<Schemas["ChargeOut"]> {
    const path = `${w(walletId)}/charges`;
    return this.t.run({ method: "POST", path, body, idempotencyKey: opts.idempotencyKey ?? true });
  }
  quote(walletId: string, body: Schemas["QuoteIn"]): Promise<Schemas["QuoteOut"]> {
    return this.t.run({ method: "POST", path: `${w(walletId)}/quote`, body });
  }
}

export class Grants extends Resource {
  create(walletId: string, body: Schemas["GrantIn"], opts: Keyed = {}): Promise<Schemas["GrantOut"]> {
    const path = `${w(walletId)}/grants`;
    return this.t.run({ method: "POST", path, body, idempotencyKey: opts.idempotencyKey ?? true });
  }
  page(walletId: string, query: { limit?: number; cursor?: string } = {}): Promise<Schemas["GrantsOut"]> {
    return this.t.run({ method: "GET", path: `${w(walletId)}/grants`, query });
  }
  /** Every grant, newest first, following the cursors. */
  list(walletId: string, query: { limit?: number } = {}): AsyncGenerator<Schemas["GrantLineOut"]> {
    return paginate(this.t, `${w(walletId)}/grants`, query);
  }
  void(walletId: string, grantId: string): Promise<Schemas["VoidOut"]> {
    const path = `${w(walletId)}/grants/${segment(grantId)}/void`;
    return this.t.run({ method: "POST", path, body: {} });
  }
  adjust(walletId: string, body: Schemas["AdjustmentIn"], opts: Keyed = {}): Promise<Schemas["AdjustmentOut"]> {
    const path = `${w(walletId)}/adjustments`;
    return this.t.run({ method: "POST", path, body, idempotencyKey: opts.idempotencyKey ?? true });
  }
  transfer(walletId: string, body: Schemas["TransferIn"], opts: Keyed = {}): Promise<Schemas["TransferOut"]> {
    const path = `${w(walletId)}/transfers`;
    return this.t.run({ method: "POST", path, body, idempotencyKey: opts.idempotencyKey ?? true });
  }
}

export class Promotions extends Resource {
  createCode(body: Schemas["PromoCodeIn"]): Promise<Schemas["PromoCodeOut"]> {
    return this.t.run({ method: "POST", path: "/v1/promo-codes", body });
  }
  redeem(walletId: string, body: Schemas["RedeemIn"], opts: Keyed = {}): Promise<Schemas["GrantOut"]> {
    const path = `${w(walletId)}/redeem`;
    return this.t.run({ method: "POST", path, body, idempotencyKey: opts.idempotencyKey ?? true });
  }
  refer(walletId: string, body: Schemas["ReferralIn"]): Promise<Schemas["ReferralOut"]> {
    return this.t.run({ method: "POST", path: `${w(walletId)}/referral`, body });
  }
}

export type TransactionFilters = {
  limit?: number;
  day?: string;
  type?: string;
  member_id?: string;
  feature?: string;
};

export class Transactions extends Resource {
  page(walletId: string, query: TransactionFilters & { cursor?: string } = {}): Promise<Schemas["TransactionsOut"]> {
    return this.t.run({ method: "GET", path: `${w(walletId)}/transactions`, query });
  }
  /** The ledger, newest first, following the cursors: `for await (const entry of ...)`. */
  list(walletId: string, query: TransactionFilters = {}): AsyncGenerator<Schemas["TransactionOut"]> {
    return paginate(this.t, `${w(walletId)}/transactions`, query);
  }
  /** One CSV file of the ledger (up to 1,000 rows) and the cursor to the next. */
  exportCsv(
    walletId: string,
    query: TransactionFilters & { cursor?: string } = {},
  ): Promise<{ text: string; next_cursor: string | null }> {
    const parse = async (r: Response) => ({ text: await r.text(), next_cursor: r.headers.get("x-next-cursor") });
    return this.t.run({ method: "GET", path: `${w(walletId)}/transactions.csv`, query, parse });
  }
}

export class UsageReports extends Resource {
  summary(walletId: string): Promise<Schemas["SummaryOut"]> {
    return this.t.run({ method: "GET", path: `${w(walletId)}/usage/summary` });
  }
  series(
    walletId: string,
    query: { granularity?: string; from?: string; to?: string; group_by?: string } = {},
  ): Promise<Schemas["SeriesOut"]> {
    return this.t.run({ method: "GET", path: `${w(walletId)}/usage`, query });
  }
  org(orgId: string, query: { from?: string; to?: string } = {}): Promise<Schemas["OrgUsageOut"]> {
    return this.t.run({ method: "GET", path: `/v1/orgs/${segment(orgId)}/usage`, query });
  }
}

export class Prices extends Resource {
  get(): Promise<Schemas["PricesOut"]> {
    return this.t.run({ method: "GET", path: "/v1/prices" });
  }
}

export class Topups extends Resource {
  offers(): Promise<Schemas["OffersOut"]> {
    return this.t.run({ method: "GET", path: "/v1/topups/offers" });
  }
  checkout(walletId: string, body: Schemas["CheckoutIn"], opts: Keyed = {}): Promise<Schemas["CheckoutOut"]> {
    const path = `${w(walletId)}/checkout`;
    return this.t.run({ method: "POST", path, body, idempotencyKey: opts.idempotencyKey ?? true });
  }
  setAuto(walletId: string, body: Schemas["AutoTopupIn"]): Promise<Schemas["AutoTopupOut"]> {
    return this.t.run({ method: "PUT", path: `${w(walletId)}/auto-topup`, body });
  }
  getAuto(walletId: string): Promise<Schemas["AutoTopupOut"]> {
    return this.t.run({ method: "GET", path: `${w(walletId)}/auto-topup` });
  }
}

export class Payments extends Resource {
  page(walletId: string, query: { limit?: number; cursor?: string } = {}): Promise<Schemas["PaymentsOut"]> {
    return this.t.run({ method: "GET", path: `${w(walletId)}/payments`, query });
  }
  list(walletId: string, query: { limit?: number } = {}): AsyncGenerator<Schemas["PaymentOut"]> {
    return paginate(this.t, `${w(walletId)}/payments`, query);
  }
  /** The invoice PDF's (or card receipt's) address: the 302's Location (server-side only:
   * a browser hides a redirect's target from fetch). */
  invoiceUrl(walletId: string, paymentId: string): Promise<string> {
    const path = `${w(walletId)}/payments/${segment(paymentId)}/invoice`;
    const parse = async (r: Response) => r.headers.get("location") ?? "";
    return this.t.run({ method: "GET", path, parse });
  }
}

export class Limits extends Resource {
  set(walletId: string, body: Schemas["LimitsIn"]): Promise<Schemas["LimitsOut"]> {
    return this.t.run({ method: "PUT", path: `${w(walletId)}/limits`, body });
  }
  get(walletId: string): Promise<Schemas["LimitsOut"]> {
    return this.t.run({ method: "GET", path: `${w(walletId)}/limits` });
  }
}

export class Alerts extends Resource {
  set(walletId: string, body: Schemas["AlertsIn"]): Promise<Schemas["AlertsOut"]> {
    return this.t.run({ method: "PUT", path: `${w(walletId)}/alerts`, body });
  }
  get(walletId: string): Promise<Schemas["AlertsOut"]> {
    return this.t.run({ method: "GET", path: `${w(walletId)}/alerts` });
  }
}

export class Budgets extends Resource {
  set(walletId: string, memberId: string, body: Schemas["MemberBudgetIn"]): Promise<Schemas["MemberBudgetOut"]> {
    return this.t.run({ method: "PUT", path: `${w(walletId)}/members/${segment(memberId)}/budget`, body });
  }
  get(walletId: string, memberId: string): Promise<Schemas["MemberBudgetOut"]> {
    return this.t.run({ method: "GET", path: `${w(walletId)}/members/${segment(memberId)}/budget` });
  }
  list(walletId: string): Promise<Schemas["MemberBudgetsOut"]> {
    return this.t.run({ method: "GET", path: `${w(walletId)}/members` });
  }
}

export class Byok extends Resource {
  set(userId: string, body: Schemas["ByokIn"]): Promise<Schemas["ByokOut"]> {
    return this.t.run({ method: "PUT", path: `/v1/users/${segment(userId)}/byok`, body });
  }
  get(userId: string): Promise<Schemas["ByokOut"]> {
    return this.t.run({ method: "GET", path: `/v1/users/${segment(userId)}/byok` });
  }
  async delete(userId: string): Promise<void> {
    const parse = async () => undefined;
    await this.t.run({ method: "DELETE", path: `/v1/users/${segment(userId)}/byok`, parse });
  }
}

/** The test clock: a test deployment's (`make run`, `TestMode=true`) only; elsewhere both
 * calls fail with the 404 `not-found` error. */
export class TestClock extends Resource {
  get(): Promise<Schemas["ClockOut"]> {
    return this.t.run({ method: "GET", path: "/v1/test-clock" });
  }
  /** Move the clock `seconds` forward; the schedules run up to then before it answers. */
  advance(seconds: number): Promise<Schemas["ClockOut"]> {
    return this.t.run({ method: "POST", path: "/v1/test-clock", body: { advance_seconds: seconds } });
  }
}

/** operationId (docs/openapi.yaml) -> method; a test checks every operation but Stripe's
 * webhook (called by Stripe, never by a product) has one. */
export const OPERATIONS: Record<string, string> = {
  putWallet: "wallets.create",
  getWallet: "wallets.get",
  putBypass: "wallets.setBypass",
  reserve: "reservations.create",
  commit: "reservations.commit",
  release: "reservations.release",
  charge: "charges.create",
  quote: "charges.quote",
  listGrants: "grants.list",
  grant: "grants.create",
  voidGrant: "grants.void",
  adjust: "grants.adjust",
  transfer: "grants.transfer",
  createPromoCode: "promotions.createCode",
  redeemPromoCode: "promotions.redeem",
  refer: "promotions.refer",
  listTransactions: "transactions.list",
  exportTransactions: "transactions.exportCsv",
  getUsageSummary: "usage.summary",
  getUsageSeries: "usage.series",
  getOrgUsage: "usage.org",
  listTopupOffers: "topups.offers",
  createCheckout: "topups.checkout",
  listPayments: "payments.list",
  getPaymentInvoice: "payments.invoiceUrl",
  putAutoTopup: "topups.setAuto",
  getAutoTopup: "topups.getAuto",
  putLimits: "limits.set",
  getLimits: "limits.get",
  putAlerts: "alerts.set",
  getAlerts: "alerts.get",
  listMemberBudgets: "budgets.list",
  putMemberBudget: "budgets.set",
  getMemberBudget: "budgets.get",
  putByok: "byok.set",
  getByok: "byok.get",
  deleteByok: "byok.delete",
  listPrices: "prices.get",
  getTestClock: "testClock.get",
  advanceTestClock: "testClock.advance",
};
