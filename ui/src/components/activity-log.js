import { css, html } from "lit";
import { CmElement, baseStyles, figure } from "../base.js";
import { formatCredits, formatDateTime, isReturned } from "../format.js";

// The ledger, newest first, a page at a time: GET /transactions?limit&cursor. Released, expired
// and refunded rows are struck through; a row opens onto its priced lines and token counts.
export class CmActivityLog extends CmElement {
  static properties = {
    ...CmElement.properties,
    pageSize: { type: Number, attribute: "page-size" },
    _open: { state: true },
  };

  static styles = [
    baseStyles,
    css`
      tr.returned td.struck {
        text-decoration: line-through;
        color: var(--cm-muted);
      }
      .detail td {
        background: var(--cm-surface);
      }
      nav {
        display: flex;
        gap: var(--cm-gap);
        align-items: center;
        margin-top: var(--cm-gap);
      }
      button.link {
        background: none;
        border: none;
        padding: 0;
        color: var(--cm-accent);
        text-decoration: underline;
      }
    `,
  ];

  constructor() {
    super();
    this.pageSize = 10;
    this._cursors = [null]; // the cursor of every page seen so far: [0] is the first page
    this._page = 0;
    this._open = new Set();
  }

  updated(changed) {
    if (changed.has("walletId") || changed.has("token")) {
      this._cursors = [null];
      this._page = 0;
    }
    super.updated(changed);
  }

  async load() {
    const query = new URLSearchParams({ limit: String(this.pageSize) });
    const cursor = this._cursors[this._page];
    if (cursor) query.set("cursor", cursor);
    this.pageData = await this.api("GET", `${this.wallet}/transactions?${query}`);
    this._cursors[this._page + 1] = this.pageData.next_cursor;
    this._open = new Set();
  }

  go(delta) {
    this._page += delta;
    this.reload();
  }

  toggle(id) {
    const open = new Set(this._open);
    open.has(id) ? open.delete(id) : open.add(id);
    this._open = open;
  }

  async downloadCsv() {
    // A plain link cannot carry the bearer token, so the file is fetched and handed over.
    try {
      const response = await this.api("GET", `${this.wallet}/transactions.csv?limit=1000`, {
        raw: true,
      });
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = `${this.walletId}-transactions.csv`;
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (error) {
      this.fail(error);
    }
  }

  renderRow(item) {
    const returned = isReturned(item);
    const open = this._open.has(item.transaction_id);
    const hasDetail = (item.lines && item.lines.length) || item.tokens;
    return html`<tr class=${returned ? "returned" : ""} data-id=${item.transaction_id}>
        <td>${formatDateTime(item.at)}</td>
        <td class="struck">
          ${hasDetail
            ? html`<button
                class="link"
                aria-expanded=${open ? "true" : "false"}
                @click=${() => this.toggle(item.transaction_id)}
              >
                ${item.feature || item.type}
              </button>`
            : item.feature || item.source || item.type}
          ${returned ? html`<span class="muted">(${item.status === "posted" ? "refunded" : item.status})</span>` : ""}
        </td>
        <td class="num struck">${figure("credits", item.credits, formatCredits(item.credits))}</td>
        <td class="num">
          ${figure("balance_after", item.balance_after, formatCredits(item.balance_after))}
        </td>
      </tr>
      ${open ? this.renderDetail(item) : ""}`;
  }

  renderDetail(item) {
    const tokens = item.tokens || {};
    return html`<tr class="detail">
      <td colspan="4">
        ${item.tokens
          ? html`<p>
              Tokens: input ${figure("tokens.input", tokens.input, formatCredits(tokens.input))},
              output ${figure("tokens.output", tokens.output, formatCredits(tokens.output))},
              reasoning
              ${figure("tokens.reasoning", tokens.reasoning, formatCredits(tokens.reasoning))}
            </p>`
          : ""}
        <ul>
          ${(item.lines || []).map(
            (l) =>
              html`<li>
                ${l.operation} · ${l.model || l.category}:
                ${formatCredits(l.quantity)} × ${formatCredits(l.unit_price)} / ${l.unit} =
                ${figure("cost", l.cost, formatCredits(l.cost))}
              </li>`,
          )}
        </ul>
      </td>
    </tr>`;
  }

  renderReady() {
    const items = this.pageData.items || [];
    return html`<section aria-labelledby="title">
      <h2 id="title">Activity</h2>
      <table>
        <caption class="sr-only">
          Ledger entries, newest first, with the balance after each
        </caption>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">What</th>
            <th scope="col" class="num">Credits</th>
            <th scope="col" class="num">Balance</th>
          </tr>
        </thead>
        <tbody>
          ${items.map((item) => this.renderRow(item))}
        </tbody>
      </table>
      <nav aria-label="Activity pages">
        <button ?disabled=${this._page === 0} @click=${() => this.go(-1)}>Newer</button>
        <span>Page ${this._page + 1}</span>
        <button ?disabled=${!this.pageData.next_cursor} @click=${() => this.go(1)}>Older</button>
        <button @click=${() => this.downloadCsv()}>Download CSV</button>
      </nav>
    </section>`;
  }
}
