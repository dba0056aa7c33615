// A chat endpoint that meters each model call against the caller's wallet (Node's http).
//
//   npm ci && CREDIT_METER_API_KEY=... CREDIT_METER_BASE_URL=http://127.0.0.1:3000 node server.mjs
//
// The model is a stub that answers like Anthropic's Messages API; swap in the real client.
import { createServer } from "node:http";

import { CreditMeter, InsufficientCredits, LimitReached } from "@credit-meter/client";

export async function stubModel(prompt) {
  const words = prompt.split(/\s+/).filter(Boolean).length;
  return {
    type: "message",
    model: "claude-haiku-20250101",
    content: [{ type: "text", text: `You said ${words} words.` }],
    usage: { input_tokens: 12 + words, output_tokens: 7 },
  };
}

async function readJson(req) {
  let text = "";
  for await (const chunk of req) text += chunk;
  return JSON.parse(text || "{}");
}

export function createApp(cm, model = stubModel) {
  return createServer(async (req, res) => {
    const send = (status, body) => {
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    };
    if (req.method !== "POST" || req.url !== "/chat") return send(404, { error: "not found" });
    const body = await readJson(req);
    // --- metering: from here ...
    try {
      const hold = { credits: "2", feature: "chat", member_id: body.user };
      const reply = await cm.hold(body.wallet_id, hold, async (h) => {
        const answer = await model(body.prompt);
        await h.commitFromResponse(answer);
        return answer;
      });
      send(200, { reply: reply.content[0].text });
    } catch (e) {
      if (e instanceof InsufficientCredits) return send(402, { error: "out of credits", available: e.available });
      if (e instanceof LimitReached) return send(403, { error: e.code, remaining: e.remaining });
      send(502, { error: "the model call failed" }); // the hold was released
    }
    // --- ... to here
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const cm = new CreditMeter({
    apiKey: process.env.CREDIT_METER_API_KEY,
    baseUrl: process.env.CREDIT_METER_BASE_URL ?? "http://127.0.0.1:3000",
  });
  const port = Number(process.env.PORT ?? 8080);
  createApp(cm).listen(port, "127.0.0.1", () => console.log(`chat on http://127.0.0.1:${port}/chat`));
}
