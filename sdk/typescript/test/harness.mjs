// Starts sdk/testing/harness.py (the local API and the fault-injecting proxy) for a test file.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

export async function startApi() {
  if (process.env.CM_SDK_API) return { info: JSON.parse(process.env.CM_SDK_API), stop: async () => {} };
  const python = process.env.CM_SERVER_PYTHON ?? join(repo, ".venv", "bin", "python");
  const child = spawn(python, [join(repo, "sdk", "testing", "harness.py")], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise((resolve, reject) => {
    lines.once("line", resolve);
    child.once("exit", (code) => reject(new Error(`the local API did not start (exit ${code})`)));
  });
  const stop = () =>
    new Promise((resolve) => {
      child.once("exit", resolve);
      child.stdin.end();
    });
  return { info: JSON.parse(first), stop };
}

export class Proxy {
  constructor(url) {
    this.url = url;
  }
  async dropNextPosts(count) {
    const r = await fetch(`${this.url}/__proxy/drop`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ count }),
    });
    if (!r.ok) throw new Error(`proxy: ${r.status}`);
  }
  async failNext(count, status) {
    const r = await fetch(`${this.url}/__proxy/fail`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ count, status }),
    });
    if (!r.ok) throw new Error(`proxy: ${r.status}`);
  }
  async posts() {
    return (await fetch(`${this.url}/__proxy/stats`)).json();
  }
}
