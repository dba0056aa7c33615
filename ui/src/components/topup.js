import { html } from "lit";
import { CmElement } from "../base.js";
import { formatCredits, formatMoney, isManager } from "../format.js";

// Buy credits: a pack or an amount → POST /checkout → the returned Stripe Checkout URL.
export class CmTopup extends CmElement {
  static properties = {
    ...CmElement.properties,
    _busy: { state: true },
    _message: { state: true },
  };

  visibleTo(role) {
    return isManager(role);
  }

  async load() {
    this.offers = await this.api("GET", "/v1/topups/offers");
    this._message = "";
  }

  async checkout(choice) {
    this._busy = true;
    this._message = "";
    const here = window.location.href;
    try {
      const session = await this.api("POST", `${this.wallet}/checkout`, {
        body: { ...choice, success_url: here, cancel_url: here },
      });
      window.location.assign(session.url);
    } catch (error) {
      if (error.status === 401 || error.status === 403) this.fail(error);
      else this._message = error.message;
      this._busy = false;
    }
  }

  submitAmount(event) {
    event.preventDefault();
    const amount = new FormData(event.target).get("amount");
    this.checkout({ amount: String(amount), currency: this.offers.amounts.currency });
  }

  renderReady() {
    const { packs = [], amounts } = this.offers;
    return html`<section aria-labelledby="title">
      <h2 id="title">Buy credits</h2>
      <div class="row" role="group" aria-label="Credit packs">
        ${packs.map(
          (p) => html`<button
            class="primary"
            data-pack=${p.pack}
            ?disabled=${this._busy}
            @click=${() => this.checkout({ pack: p.pack })}
          >
            <span data-field="credits" data-value=${p.credits}>${formatCredits(p.credits)}</span>
            credits ·
            <span data-field="price" data-value=${p.price}>${formatMoney(p.price, p.currency)}</span>
          </button>`,
        )}
      </div>
      ${amounts
        ? html`<form class="row" @submit=${(e) => this.submitAmount(e)}>
            <label
              >Custom amount (${amounts.currency.toUpperCase()})
              <input
                name="amount"
                type="number"
                required
                min=${amounts.minimum}
                max=${amounts.maximum}
                step="0.01"
            /></label>
            <button type="submit" ?disabled=${this._busy}>Buy</button>
            <span class="muted"
              >${formatCredits(amounts.credits_per_unit)} credits per
              ${formatMoney(1, amounts.currency)}</span
            >
          </form>`
        : ""}
      ${this._message ? html`<p role="alert" class="error">${this._message}</p>` : ""}
    </section>`;
  }
}
