/** `new CreditMeter({ apiKey | sessionToken, baseUrl })` and its holds. */

import { HoldStateError } from "./errors.js";
import {
  Alerts,
  Budgets,
  Byok,
  Charges,
  Grants,
  Limits,
  Payments,
  Prices,
  Promotions,
  Reservations,
  type Schemas,
  TestClock,
  Topups,
  Transactions,
  UsageReports,
  Wallets,
} from "./resources.js";
import { catalogModel, tokenUsage, usageLines } from "./tokens.js";
import { type ClientOptions, Transport } from "./transport.js";

export type HoldRequest = Schemas["ReserveIn"] & { idempotencyKey?: string };

/**
 * A reservation made by `cm.hold(...)`. The callback commits it with the actual cost; if the
 * callback throws (a timeout, an abort, a failed model call) or returns without committing, the
 * hold is released. Should the release itself fail, the hold expires on the server anyway.
 */
export class Hold {
  outcome: Schemas["CommitOut"] | Schemas["ReleaseOut"] | null = null;

  constructor(
    private readonly cm: CreditMeter,
    readonly walletId: string,
    readonly reservation: Schemas["ReservationOut"],
  ) {}

  get id(): string {
    return this.reservation.reservation_id;
  }

  #open(): string {
    if (this.outcome) throw new HoldStateError(`the hold ${this.id} is already ${this.outcome.status}`);
    return this.id;
  }

  /** Charge the actual cost (`credits` or `usage`; neither: what was held). */
  async commit(body: Schemas["CommitIn"] = {}): Promise<Schemas["CommitOut"]> {
    const out = await this.cm.reservations.commit(this.walletId, this.#open(), body);
    this.outcome = out;
    return out;
  }

  /** Commit the token usage of an OpenAI, Anthropic or Google response. `model`: the catalog's
   * name, when the provider's does not start with one. */
  async commitFromResponse(
    response: unknown,
    options: { model?: string; cachedInputMeter?: string } = {},
  ): Promise<Schemas["CommitOut"]> {
    const counts = tokenUsage(response);
    const model = options.model ?? catalogModel(counts.model, await this.cm.catalogModels());
    const usage = usageLines(counts, { model, cachedInputMeter: options.cachedInputMeter });
    return this.commit({ usage: usage as Schemas["CommitIn"]["usage"] });
  }

  async release(): Promise<Schemas["ReleaseOut"]> {
    const out = await this.cm.reservations.release(this.walletId, this.#open());
    this.outcome = out;
    return out;
  }
}

export class CreditMeter {
  readonly wallets: Wallets;
  readonly reservations: Reservations;
  readonly charges: Charges;
  readonly grants: Grants;
  readonly promotions: Promotions;
  readonly transactions: Transactions;
  readonly usage: UsageReports;
  readonly prices: Prices;
  readonly topups: Topups;
  readonly payments: Payments;
  readonly limits: Limits;
  readonly alerts: Alerts;
  readonly budgets: Budgets;
  readonly byok: Byok;
  readonly testClock: TestClock;
  #catalogModels: Promise<string[]> | null = null;

  constructor(options: ClientOptions) {
    const t = new Transport(options);
    this.wallets = new Wallets(t);
    this.reservations = new Reservations(t);
    this.charges = new Charges(t);
    this.grants = new Grants(t);
    this.promotions = new Promotions(t);
    this.transactions = new Transactions(t);
    this.usage = new UsageReports(t);
    this.prices = new Prices(t);
    this.topups = new Topups(t);
    this.payments = new Payments(t);
    this.limits = new Limits(t);
    this.alerts = new Alerts(t);
    this.budgets = new Budgets(t);
    this.byok = new Byok(t);
    this.testClock = new TestClock(t);
  }

  /** Hold credits while `work` runs: `await cm.hold("w1", {credits: "5", feature: "chat"},
   * async (hold) => { ...; await hold.commit({usage}) })`. Returns what `work` returns. */
  async hold<T>(walletId: string, request: HoldRequest, work: (hold: Hold) => Promise<T>): Promise<T> {
    const { idempotencyKey, ...body } = request;
    const reservation = await this.reservations.create(walletId, body, { idempotencyKey });
    const hold = new Hold(this, walletId, reservation);
    let result: T;
    try {
      result = await work(hold);
    } catch (error) {
      if (!hold.outcome) await hold.release().catch(() => undefined); // the first error wins
      throw error;
    }
    if (!hold.outcome) await hold.release();
    return result;
  }

  /** A one-shot debit (`charges.create`). */
  charge(
    walletId: string,
    body: Schemas["ChargeIn"],
    opts: { idempotencyKey?: string } = {},
  ): Promise<Schemas["ChargeOut"]> {
    return this.charges.create(walletId, body, opts);
  }

  /** The catalog's model names, read once per client (for `commitFromResponse`). */
  catalogModels(): Promise<string[]> {
    this.#catalogModels ??= this.prices.get().then((p) => p.models.map((m) => m.model));
    return this.#catalogModels;
  }
}
