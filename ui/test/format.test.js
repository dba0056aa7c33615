import assert from "node:assert/strict";
import { test } from "node:test";
import {
  formatCredits,
  formatMoney,
  isManager,
  isReturned,
  readsReports,
  stackBars,
  tokenClaims,
  tokenRole,
} from "../src/format.js";

function fakeToken(claims) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${part({ alg: "none" })}.${part(claims)}.not-a-signature`;
}

test("credits keep every decimal the API sent, in the given locale", () => {
  assert.equal(formatCredits("1234.5", "en-US"), "1,234.5");
  assert.equal(formatCredits("1234.5", "de-DE"), "1.234,5");
  assert.equal(formatCredits("0.000001", "en-US"), "0.000001");
  assert.equal(formatCredits("-3.9", "en-US"), "-3.9");
  assert.equal(formatCredits(null, "en-US"), "—");
});

test("money is formatted in its currency", () => {
  assert.equal(formatMoney("5", "usd", "en-US"), "$5.00");
  assert.match(formatMoney("20", "eur", "de-DE"), /20,00\s€/);
});

test("the role is read from the token's claims, for display only", () => {
  assert.equal(tokenRole(fakeToken({ role: "admin", sub: "a" })), "admin");
  assert.equal(tokenRole(fakeToken({ "custom:role": "member" })), "member");
  assert.equal(tokenClaims(fakeToken({ sub: "ana" })).sub, "ana");
  assert.equal(tokenRole("not a token"), null);
  assert.equal(tokenRole(""), null);
});

test("who manages and who reads reports", () => {
  assert.ok(isManager("owner") && isManager("admin"));
  assert.ok(!isManager("member") && !isManager("viewer") && !isManager(null));
  assert.ok(readsReports("viewer") && !readsReports("member"));
});

test("released, expired and refunded rows count as returned", () => {
  assert.ok(isReturned({ status: "released", refunded: true }));
  assert.ok(isReturned({ status: "expired", refunded: false }));
  assert.ok(isReturned({ status: "posted", refunded: true }));
  assert.ok(!isReturned({ status: "committed", refunded: false }));
});

test("bars stack their groups and scale to the largest point", () => {
  const points = [
    { date: "2026-12-01", credits: "0", groups: [] },
    {
      date: "2026-12-02",
      credits: "10",
      groups: [
        { key: "chat", credits: "6" },
        { key: null, credits: "4" },
      ],
    },
    { date: "2026-12-03", credits: "5", groups: [{ key: "agent", credits: "5" }] },
  ];
  const { bars, keys, max } = stackBars(points, 100);
  assert.equal(bars.length, 3);
  assert.equal(max, 10);
  assert.deepEqual(keys, ["chat", "(none)", "agent"]);
  assert.equal(bars[0].segments.length, 0);
  assert.deepEqual(
    bars[1].segments.map((s) => [s.key, s.y, s.h]),
    [
      ["chat", 40, 60],
      ["(none)", 0, 40],
    ],
  );
  assert.deepEqual(bars[2].segments.map((s) => s.h), [50]);
});
