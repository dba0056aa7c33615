import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { Forbidden, Unauthorized, request } from "../src/api.js";

const realFetch = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = realFetch;
});

function answer(status, body) {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

// A fake API: 401 unless the bearer token is "good".
function fakeApi(calls) {
  globalThis.fetch = async (url, init) => {
    calls.push([url, init.headers.authorization]);
    return init.headers.authorization === "Bearer good" ? answer(200, { ok: url }) : answer(401, { message: "Unauthorized" });
  };
}

test("the token goes in the Authorization header, under the API base", async () => {
  const calls = [];
  fakeApi(calls);
  const host = { apiBase: "http://api.test/", token: "good" };
  assert.deepEqual(await request(host, "GET", "/v1/wallets/w"), { ok: "http://api.test/v1/wallets/w" });
  assert.deepEqual(calls, [["http://api.test/v1/wallets/w", "Bearer good"]]);
});

test("a 401 without tokenRefresh is Unauthorized", async () => {
  fakeApi([]);
  await assert.rejects(request({ apiBase: "", token: "old" }, "GET", "/x"), Unauthorized);
});

test("parallel 401s share one tokenRefresh and retry with its token", async () => {
  const calls = [];
  fakeApi(calls);
  let refreshes = 0;
  const host = {
    apiBase: "",
    token: "old",
    tokenRefresh: async () => {
      refreshes += 1;
      return "good";
    },
  };
  const results = await Promise.all([request(host, "GET", "/a"), request(host, "GET", "/b")]);
  assert.deepEqual(results, [{ ok: "/a" }, { ok: "/b" }]);
  assert.equal(refreshes, 1);
  assert.equal(host.token, "good");
});

test("a refresh that brings nothing new leaves the 401", async () => {
  fakeApi([]);
  const host = { apiBase: "", token: "old", tokenRefresh: () => null };
  await assert.rejects(request(host, "GET", "/x"), Unauthorized);
});

test("403 forbidden is Forbidden; other problems keep their detail", async () => {
  globalThis.fetch = async () => answer(403, { type: "/problems/forbidden", title: "Forbidden" });
  await assert.rejects(request({ token: "t" }, "GET", "/x"), Forbidden);
  globalThis.fetch = async () =>
    answer(403, { type: "/problems/spending-limit-reached", detail: "over the limit" });
  await assert.rejects(request({ token: "t" }, "GET", "/x"), (error) => {
    assert.ok(!(error instanceof Forbidden));
    assert.equal(error.message, "over the limit");
    return true;
  });
});
