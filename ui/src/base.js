// What every credits component shares: its configuration (api-base, wallet-id, token,
// tokenRefresh), loading, and the three answers that are not data — a 401 (a message, and
// tokenRefresh is called), a 403 (nothing at all: the caller may not see this) and any other
// error (a short message).
import { LitElement, css, html, nothing } from "lit";
import { Forbidden, Unauthorized, request } from "./api.js";
import { tokenClaims, tokenRole } from "./format.js";

export const baseStyles = css`
  :host {
    --cm-font: system-ui, sans-serif;
    --cm-fg: #1b1f24;
    --cm-muted: #57606a;
    --cm-bg: #ffffff;
    --cm-surface: #f6f8fa;
    --cm-border: #d0d7de;
    --cm-accent: #0a58ca;
    --cm-ok: #1a7f37;
    --cm-warn: #9a6700;
    --cm-danger: #cf222e;
    --cm-radius: 8px;
    --cm-gap: 0.75rem;
    display: block;
    font-family: var(--cm-font);
    color: var(--cm-fg);
    background: var(--cm-bg);
    border: 1px solid var(--cm-border);
    border-radius: var(--cm-radius);
    padding: 1rem;
    margin-block: var(--cm-gap);
  }
  @media (prefers-color-scheme: dark) {
    :host {
      --cm-fg: #e6edf3;
      --cm-muted: #9da7b1;
      --cm-bg: #0d1117;
      --cm-surface: #161b22;
      --cm-border: #30363d;
      --cm-accent: #6cb6ff;
      --cm-ok: #3fb950;
      --cm-warn: #d29922;
      --cm-danger: #ff7b72;
    }
  }
  :host([hidden]),
  :host([data-state="forbidden"]),
  :host([data-state="hidden"]) {
    display: none;
  }
  h2 {
    font-size: 1.05rem;
    margin: 0 0 var(--cm-gap);
  }
  .muted {
    color: var(--cm-muted);
  }
  .error {
    color: var(--cm-danger);
  }
  table {
    border-collapse: collapse;
    width: 100%;
  }
  th,
  td {
    text-align: start;
    padding: 0.35rem 0.5rem;
    border-bottom: 1px solid var(--cm-border);
  }
  td.num,
  th.num {
    text-align: end;
    font-variant-numeric: tabular-nums;
  }
  button,
  input,
  select {
    font: inherit;
    color: inherit;
    background: var(--cm-surface);
    border: 1px solid var(--cm-border);
    border-radius: calc(var(--cm-radius) / 2);
    padding: 0.3rem 0.6rem;
  }
  button {
    cursor: pointer;
  }
  button.primary {
    background: var(--cm-accent);
    border-color: var(--cm-accent);
    color: var(--cm-bg);
  }
  a {
    color: var(--cm-accent);
  }
  :focus-visible {
    outline: 2px solid var(--cm-accent);
    outline-offset: 2px;
  }
  .sr-only {
    position: absolute;
    width: 1px;
    height: 1px;
    overflow: hidden;
    clip: rect(0 0 0 0);
    white-space: nowrap;
  }
  .row {
    display: flex;
    flex-wrap: wrap;
    gap: var(--cm-gap);
    align-items: end;
  }
  label {
    display: grid;
    gap: 0.2rem;
  }
`;

export class CmElement extends LitElement {
  static properties = {
    apiBase: { type: String, attribute: "api-base" },
    walletId: { type: String, attribute: "wallet-id" },
    token: { type: String },
    tokenRefresh: { attribute: false },
    _state: { state: true },
    _error: { state: true },
  };

  static styles = baseStyles;

  constructor() {
    super();
    this.apiBase = "";
    this.walletId = "";
    this.token = "";
    this.tokenRefresh = null;
    this._state = "idle";
    this._error = "";
  }

  get role() {
    return tokenRole(this.token);
  }

  get subject() {
    return tokenClaims(this.token).sub || null;
  }

  get wallet() {
    return `/v1/wallets/${encodeURIComponent(this.walletId)}`;
  }

  // Whether the caller's role may see this component at all (display only).
  visibleTo(_role) {
    return true;
  }

  // Subclasses fetch their data here and return nothing; errors are handled by reload().
  async load() {}

  api(method, path, options) {
    return request(this, method, path, options);
  }

  updated(changed) {
    super.updated(changed);
    if (changed.has("apiBase") || changed.has("walletId") || changed.has("token")) {
      if (this.token && (this.walletId || !this.needsWallet)) this.reload();
    }
    this.dataset.state = this._state;
  }

  get needsWallet() {
    return true;
  }

  async reload() {
    if (!this.visibleTo(this.role)) {
      this._state = "hidden";
      return;
    }
    this._state = this._state === "ready" ? "ready" : "loading";
    try {
      await this.load();
      this._state = "ready";
      // What load() fetched is kept in plain fields: a reload that stays "ready" still redraws.
      this.requestUpdate();
    } catch (error) {
      this.fail(error);
    }
  }

  fail(error) {
    if (error instanceof Unauthorized) {
      this._state = "expired";
      this.dispatchEvent(new CustomEvent("cm-unauthorized", { bubbles: true, composed: true }));
    } else if (error instanceof Forbidden) {
      this._state = "forbidden";
    } else {
      this._state = "error";
      this._error = error.message || String(error);
    }
  }

  render() {
    switch (this._state) {
      case "hidden":
      case "forbidden":
        return nothing;
      case "expired":
        return html`<p role="alert" class="error" data-field="session-expired">
          Your session has expired. Sign in again to see your credits.
        </p>`;
      case "error":
        return html`<p role="alert" class="error">Could not load this: ${this._error}</p>`;
      case "ready":
        return this.renderReady();
      default:
        return html`<p class="muted" aria-busy="true">Loading…</p>`;
    }
  }

  renderReady() {
    return nothing;
  }
}

// One figure: what the API said (data-value) under the API's field name (data-field), shown
// formatted for the reader.
export function figure(field, value, text) {
  return html`<span data-field=${field} data-value=${value ?? ""}>${text}</span>`;
}
