import { html } from "lit";
import { CmElement, figure } from "../base.js";
import { formatCredits, formatDateTime, formatMoney, readsReports } from "../format.js";

// Payment history with invoice links: GET /payments (first page, newest first).
export class CmPayments extends CmElement {
  visibleTo(role) {
    return readsReports(role);
  }

  async load() {
    this.payments = await this.api("GET", `${this.wallet}/payments?limit=50`);
  }

  renderReady() {
    const items = this.payments.items || [];
    if (!items.length) {
      return html`<section aria-labelledby="title">
        <h2 id="title">Payments</h2>
        <p class="muted">No payments yet.</p>
      </section>`;
    }
    return html`<section aria-labelledby="title">
      <h2 id="title">Payments</h2>
      <table>
        <thead>
          <tr>
            <th scope="col">Date</th>
            <th scope="col" class="num">Amount</th>
            <th scope="col" class="num">Credits</th>
            <th scope="col">Status</th>
            <th scope="col">Invoice</th>
          </tr>
        </thead>
        <tbody>
          ${items.map(
            (p) => html`<tr data-id=${p.payment_id}>
              <td>${formatDateTime(p.created_at)}</td>
              <td class="num">${figure("amount", p.amount, formatMoney(p.amount, p.currency))}</td>
              <td class="num">${figure("credited", p.credited, formatCredits(p.credited))}</td>
              <td>${figure("status", p.status, p.status)}</td>
              <td>
                ${p.receipt_url
                  ? html`<a href=${p.receipt_url} target="_blank" rel="noopener">Receipt</a>`
                  : p.invoice_url
                    ? // The route wants the bearer token, which a link cannot send: it
                      // opens once the browser sessions of a later change exist.
                      html`<a href=${`${this.apiBase}${p.invoice_url}`} target="_blank"
                        rel="noopener">Invoice</a>`
                    : "—"}
              </td>
            </tr>`,
          )}
        </tbody>
      </table>
    </section>`;
  }
}
