// The example against the local API: a metered chat, a failing model, a wallet out of credits.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";

import { CreditMeter } from "@credit-meter/client";

import { startApi } from "../../../sdk/typescript/test/harness.mjs";
import { createApp, stubModel } from "../server.mjs";

let api;
let cm;

before(async () => {
  api = await startApi();
  cm = new CreditMeter({ apiKey: api.info.token, baseUrl: api.info.base_url });
});
after(async () => api?.stop());

async function withServer(model, fn) {
  const server = createApp(cm, model).listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  try {
    return await fn(`http://127.0.0.1:${server.address().port}/chat`);
  } finally {
    server.close();
  }
}

const post = (url, body) =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

async function newWallet() {
  const id = `node-chat-${randomUUID().slice(0, 8)}`;
  await cm.wallets.create(id, { org_id: "acme", plan: "starter" });
  return id;
}

test("a chat is metered by its tokens", async () => {
  const w = await newWallet();
  await withServer(stubModel, async (url) => {
    const res = await post(url, { wallet_id: w, user: "ana", prompt: "hello there" });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).reply, "You said 2 words.");
  });
  const wallet = await cm.wallets.get(w);
  assert.equal(wallet.held, "0");
  assert.ok(Number(wallet.used) > 0);
});

test("a failing model releases the hold", async () => {
  const w = await newWallet();
  const failing = async () => {
    throw new Error("provider down");
  };
  await withServer(failing, async (url) => {
    assert.equal((await post(url, { wallet_id: w, prompt: "hi" })).status, 502);
  });
  const wallet = await cm.wallets.get(w);
  assert.deepEqual([wallet.held, wallet.used], ["0", "0"]);
});

test("an empty wallet answers 402", async () => {
  const w = await newWallet();
  const { available } = await cm.wallets.get(w);
  await cm.charge(w, { credits: available, feature: "setup" });
  await withServer(stubModel, async (url) => {
    const res = await post(url, { wallet_id: w, prompt: "hi" });
    assert.equal(res.status, 402);
    assert.equal((await res.json()).available, "0");
  });
});
