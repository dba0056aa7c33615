/**
 * Requests, retries and answers. A connection error, a timeout, 429 and 5xx are tried again
 * with exponential backoff and jitter (or the answer's Retry-After). A write is retried only
 * when that is safe: it carries an Idempotency-Key (made once per call, so every try sends the
 * same one and the server applies it once), or it is a PUT or DELETE.
 */

import { APIConnectionError, errorFor, type Problem } from "./errors.js";

export type ClientOptions = {
  /** A Credit Meter API key (`cm_sk_…`), sent as `Authorization: Bearer`. */
  apiKey?: string;
  /** Or a user's session token (a JWT), sent the same way. */
  sessionToken?: string;
  baseUrl: string;
  /** Per try, in milliseconds (default 30000). */
  timeoutMs?: number;
  /** More tries after a connection error, a timeout, 429 or 5xx (default 3). */
  maxRetries?: number;
  fetch?: typeof fetch;
};

export type Call = {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  body?: unknown;
  query?: Record<string, string | number | boolean | null | undefined>;
  /** Sends an Idempotency-Key: the caller's, or one made for this call. */
  idempotencyKey?: string | true;
  parse?: (response: Response) => Promise<unknown>;
};

const RETRY_STATUSES = new Set([429, 500, 502, 503, 504]);

export const segment = (value: string): string => encodeURIComponent(value);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class Transport {
  readonly #fetch: typeof fetch;
  readonly #base: string;
  readonly #auth: string;
  readonly #timeoutMs: number;
  readonly #maxRetries: number;

  constructor(options: ClientOptions) {
    const token = options.apiKey ?? options.sessionToken;
    if (!token) throw new TypeError("apiKey or sessionToken is required");
    if (!options.baseUrl) throw new TypeError("baseUrl is required");
    this.#auth = `Bearer ${token}`;
    this.#base = options.baseUrl.replace(/\/+$/, "");
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#maxRetries = options.maxRetries ?? 3;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  async run<T>(call: Call): Promise<T> {
    const key =
      call.idempotencyKey === true ? `cm-${globalThis.crypto.randomUUID()}` : call.idempotencyKey;
    const headers: Record<string, string> = { Authorization: this.#auth, Accept: "application/json" };
    if (key) headers["Idempotency-Key"] = key;
    if (call.body !== undefined) headers["Content-Type"] = "application/json";
    const safe = call.method !== "POST" || key !== undefined;
    const url = this.#url(call);
    for (let attempt = 0; ; attempt++) {
      let response: Response | undefined;
      try {
        response = await this.#fetch(url, {
          method: call.method,
          headers,
          body: call.body === undefined ? undefined : JSON.stringify(call.body),
          redirect: "manual",
          signal: AbortSignal.timeout(this.#timeoutMs),
        });
      } catch (error) {
        // A refused connection never reached the server: any request may be sent again.
        const notSent = (error as { cause?: { code?: string } })?.cause?.code === "ECONNREFUSED";
        if (attempt >= this.#maxRetries || !(safe || notSent)) {
          const timedOut = (error as Error)?.name === "TimeoutError";
          throw new APIConnectionError(`${call.method} ${call.path}: ${String(error)}`, timedOut, {
            cause: error,
          });
        }
      }
      if (response !== undefined) {
        const retry =
          RETRY_STATUSES.has(response.status) &&
          attempt < this.#maxRetries &&
          (safe || response.status === 429 || response.status === 503);
        if (!retry) return (await this.#result(call, response)) as T;
        await response.body?.cancel();
      }
      await sleep(this.#delay(attempt, response));
    }
  }

  #url(call: Call): string {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(call.query ?? {})) {
      if (value !== undefined && value !== null) params.set(name, String(value));
    }
    const query = params.toString();
    return `${this.#base}${call.path}${query ? `?${query}` : ""}`;
  }

  #delay(attempt: number, response: Response | undefined): number {
    const retryAfter = Number(response?.headers.get("retry-after"));
    if (Number.isFinite(retryAfter) && retryAfter > 0) return Math.min(retryAfter, 8) * 1000;
    const base = Math.min(250 * 2 ** attempt, 8000);
    return base / 2 + Math.random() * (base / 2); // jitter spreads a herd of retries
  }

  async #result(call: Call, response: Response): Promise<unknown> {
    if (response.status >= 400) {
      const text = await response.text();
      let problem: Problem;
      try {
        problem = JSON.parse(text) as Problem;
      } catch {
        problem = { title: response.statusText, detail: text.slice(0, 500) };
      }
      throw errorFor(response.status, problem, response.headers);
    }
    if (call.parse) return call.parse(response);
    return response.json();
  }
}
