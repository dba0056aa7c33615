// The TypeScript SDK against the local API (built first: `npm test` runs tsc).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import {
  APIConnectionError,
  CreditMeter,
  Forbidden,
  HoldStateError,
  IdempotencyConflict,
  InsufficientCredits,
  MemberBudgetReached,
  NotFound,
  OPERATIONS,
  ReservationEnded,
  ServerError,
  SpendingLimitReached,
  Unauthorized,
  ValidationFailed,
  tokenUsage,
  usageLines,
} from "../dist/index.js";
import { Proxy, startApi } from "./harness.mjs";

let api;
let info;
let cm;
let admin;
let proxy;

before(async () => {
  api = await startApi();
  info = api.info;
  cm = new CreditMeter({ apiKey: info.token, baseUrl: info.base_url });
  admin = new CreditMeter({ sessionToken: info.admin_token, baseUrl: info.base_url });
  proxy = new Proxy(info.proxy_url);
});

after(async () => {
  await api?.stop();
});

async function newWallet() {
  const id = `ts-${randomUUID().slice(0, 12)}`;
  await cm.wallets.create(id, { org_id: "acme", plan: "starter" });
  return id;
}

describe("holds", () => {
  test("commit on success", async () => {
    const w = await newWallet();
    const before = await cm.wallets.get(w);
    assert.equal(typeof before.available, "string");
    const out = await cm.hold(w, { credits: "5", feature: "chat", member_id: "ana" }, async (hold) => {
      assert.equal((await cm.wallets.get(w)).held, "5");
      return hold.commit({ usage: [{ meter: "input_tokens", model: "gpt-4o", quantity: 900 }] });
    });
    assert.equal(out.status, "committed");
    const after = await cm.wallets.get(w);
    assert.equal(after.held, "0");
    assert.equal(Number(after.available), Number(before.available) - Number(out.charged));
  });

  test("release when the work throws, and the error goes on", async () => {
    const w = await newWallet();
    let seen;
    await assert.rejects(
      cm.hold(w, { credits: "5", feature: "chat" }, async (hold) => {
        seen = hold;
        throw new Error("model failed");
      }),
      /model failed/,
    );
    assert.equal(seen.outcome.status, "released");
    assert.equal((await cm.wallets.get(w)).held, "0");
  });

  test("release when the model call times out", async () => {
    const w = await newWallet();
    await assert.rejects(
      cm.hold(w, { credits: "5", feature: "chat" }, async () => {
        await sleep(5000, undefined, { signal: AbortSignal.timeout(100) });
      }),
      (error) => error.name === "TimeoutError" || error.name === "AbortError",
    );
    assert.equal((await cm.wallets.get(w)).held, "0");
  });

  test("release when left without a commit; a second commit is refused", async () => {
    const w = await newWallet();
    const hold = await cm.hold(w, { credits: "2.5", feature: "chat" }, async (h) => h);
    assert.equal(hold.outcome.released, "2.5");
    await assert.rejects(hold.commit({ credits: "1" }), HoldStateError);
  });

  test("commitFromResponse reads an Anthropic message", async () => {
    const w = await newWallet();
    const message = {
      type: "message",
      model: "claude-sonnet-4-20250514",
      usage: { input_tokens: 800, cache_read_input_tokens: 200, output_tokens: 300 },
    };
    const out = await cm.hold(w, { credits: "5", feature: "chat" }, (h) => h.commitFromResponse(message));
    const quote = await cm.charges.quote(w, {
      usage: [
        { meter: "input_tokens", model: "claude-sonnet", quantity: 1000 },
        { meter: "output_tokens", model: "claude-sonnet", quantity: 300 },
      ],
    });
    assert.equal(out.charged, quote.credits);
  });
});

describe("retries", () => {
  test("a charge whose answer is dropped is retried and charged once", async () => {
    const w = await newWallet();
    const viaProxy = new CreditMeter({ apiKey: info.token, baseUrl: info.proxy_url });
    await proxy.dropNextPosts(1);
    const out = await viaProxy.charge(w, { credits: "1", feature: "search" });
    assert.equal(out.charged, "1");
    assert.equal((await cm.wallets.get(w)).used, "1");
    assert.equal((await proxy.posts())[`/v1/wallets/${w}/charges`], 2);
  });

  test("a hold and its commit, both answers dropped, hold and charge once", async () => {
    const w = await newWallet();
    const viaProxy = new CreditMeter({ apiKey: info.token, baseUrl: info.proxy_url });
    await proxy.dropNextPosts(1);
    await viaProxy.hold(w, { credits: "5", feature: "chat" }, async (hold) => {
      assert.equal((await cm.wallets.get(w)).held, "5");
      await proxy.dropNextPosts(1);
      await hold.commit({ credits: "2" });
    });
    const got = await cm.wallets.get(w);
    assert.deepEqual([got.held, got.used], ["0", "2"]);
    assert.equal((await proxy.posts())[`/v1/wallets/${w}/reservations`], 2);
  });

  test("503 and 429 are retried; a 500 outlasting the retries is a ServerError", async () => {
    const w = await newWallet();
    const viaProxy = new CreditMeter({ apiKey: info.token, baseUrl: info.proxy_url });
    await proxy.failNext(2, 503);
    assert.equal((await viaProxy.wallets.get(w)).wallet_id, w);
    await proxy.failNext(1, 429);
    assert.equal((await viaProxy.charge(w, { credits: "1", feature: "search" })).charged, "1");
    await proxy.failNext(4, 500);
    await assert.rejects(viaProxy.wallets.get(w), (e) => e instanceof ServerError && e.status === 500);
  });

  test("no retries left: APIConnectionError", async () => {
    const w = await newWallet();
    const once = new CreditMeter({ apiKey: info.token, baseUrl: info.proxy_url, maxRetries: 0 });
    await proxy.dropNextPosts(1);
    await assert.rejects(once.charge(w, { credits: "1", feature: "search" }), APIConnectionError);
  });
});

describe("typed errors", () => {
  test("insufficient credits", async () => {
    const w = await newWallet();
    await assert.rejects(cm.charge(w, { credits: "100000", feature: "chat" }), (e) => {
      assert.ok(e instanceof InsufficientCredits);
      assert.equal(e.status, 402);
      assert.equal(e.requested, "100000");
      return true;
    });
  });

  test("spending limit and member budget", async () => {
    const w = await newWallet();
    await admin.budgets.set(w, "ana", { budget: "1" });
    await assert.rejects(cm.charge(w, { credits: "2", feature: "chat", member_id: "ana" }), (e) => {
      assert.ok(e instanceof MemberBudgetReached);
      assert.equal(e.limit, "1");
      return true;
    });
    await admin.limits.set(w, { allowed_limit: "1" });
    await assert.rejects(cm.charge(w, { credits: "2", feature: "chat" }), (e) => {
      assert.ok(e instanceof SpendingLimitReached && e instanceof Forbidden);
      assert.deepEqual([e.limit, e.remaining], ["1", "1"]);
      return true;
    });
  });

  test("not found, conflicts, validation", async () => {
    const w = await newWallet();
    await assert.rejects(cm.wallets.get(`missing-${randomUUID().slice(0, 8)}`), NotFound);
    await cm.charge(w, { credits: "1", feature: "chat" }, { idempotencyKey: "ts-key" });
    await assert.rejects(
      cm.charge(w, { credits: "2", feature: "chat" }, { idempotencyKey: "ts-key" }),
      IdempotencyConflict,
    );
    const hold = await cm.hold(w, { credits: "1", feature: "chat" }, async (h) => h);
    await assert.rejects(cm.reservations.commit(w, hold.id, { credits: "1" }), ReservationEnded);
    await assert.rejects(cm.charge(w, { credits: "-1", feature: "chat" }), (e) => {
      assert.ok(e instanceof ValidationFailed);
      assert.ok(e.errors.length > 0 && "field" in e.errors[0]);
      return true;
    });
  });

  test("unauthorized and forbidden", async () => {
    const bad = new CreditMeter({ apiKey: "not-a-valid-token", baseUrl: info.base_url });
    await assert.rejects(bad.prices.get(), Unauthorized);
    const w = await newWallet();
    const viewer = new CreditMeter({ sessionToken: info.viewer_token, baseUrl: info.base_url });
    await assert.rejects(viewer.charge(w, { credits: "1", feature: "chat" }), (e) => {
      assert.ok(e instanceof Forbidden && !(e instanceof SpendingLimitReached));
      assert.equal(e.code, "forbidden");
      return true;
    });
  });
});

test("transactions follow the cursors", async () => {
  const w = await newWallet();
  for (let i = 0; i < 5; i++) await cm.charge(w, { credits: "0.5", feature: "search", member_id: `m${i}` });
  let entries = [];
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(500)) {
    entries = [];
    for await (const entry of cm.transactions.list(w, { limit: 2, feature: "search" })) entries.push(entry);
    if (entries.length >= 5) break;
  }
  assert.equal(entries.length, 5);
  assert.deepEqual(new Set(entries.map((e) => e.member_id)), new Set(["m0", "m1", "m2", "m3", "m4"]));
  const first = await cm.transactions.page(w, { limit: 2, feature: "search" });
  assert.ok(first.next_cursor);
});

test("every operation of docs/openapi.yaml has a method", () => {
  const spec = readFileSync(new URL("../../../docs/openapi.yaml", import.meta.url), "utf8");
  const ids = new Set([...spec.matchAll(/operationId: (\w+)/g)].map((m) => m[1]));
  ids.delete("stripeWebhook");
  assert.deepEqual(new Set(Object.keys(OPERATIONS)), ids);
  const client = new CreditMeter({ apiKey: "k", baseUrl: "http://127.0.0.1:9" });
  for (const dotted of Object.values(OPERATIONS)) {
    const [resource, method] = dotted.split(".");
    assert.equal(typeof client[resource][method], "function", dotted);
  }
});

test("src/schema.ts matches docs/openapi.yaml", () => {
  execFileSync(process.execPath, [new URL("../scripts/check-schema.mjs", import.meta.url).pathname]);
});

test("token usage of OpenAI and Google responses", () => {
  const openai = tokenUsage({
    model: "o3",
    usage: { prompt_tokens: 10, completion_tokens: 8, completion_tokens_details: { reasoning_tokens: 3 } },
  });
  assert.deepEqual(usageLines(openai), [
    { meter: "input_tokens", model: "o3", quantity: 10 },
    { meter: "output_tokens", model: "o3", quantity: 5 },
    { meter: "reasoning_tokens", model: "o3", quantity: 3 },
  ]);
  const google = tokenUsage({ modelVersion: "gemini-pro", usageMetadata: { promptTokenCount: 4, candidatesTokenCount: 2 } });
  assert.deepEqual([google.input, google.output, google.model], [4, 2, "gemini-pro"]);
});
