import { html } from "lit";
import { CmElement, figure } from "../base.js";
import { formatCredits, isManager } from "../format.js";

const TYPE_LABELS = {
  consumed_percent: "% consumed",
  remaining_percent: "% remaining",
  remaining_credits: "credits remaining",
};

// Alert thresholds and the period's spending limit: GET/PUT /limits and /alerts.
export class CmSpendingControls extends CmElement {
  static properties = { ...CmElement.properties, _message: { state: true } };

  visibleTo(role) {
    return isManager(role);
  }

  async load() {
    const [limits, alerts] = await Promise.all([
      this.api("GET", `${this.wallet}/limits`),
      this.api("GET", `${this.wallet}/alerts`),
    ]);
    this.limits = limits;
    this.alerts = alerts;
  }

  async save(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    const limits = {};
    for (const name of ["alert_threshold", "allowed_limit"]) {
      const value = String(form.get(name) || "").trim();
      if (value) limits[name] = value;
    }
    const percents = String(form.get("thresholds") || "")
      .split(",")
      .map((v) => v.trim())
      .filter(Boolean);
    try {
      await this.api("PUT", `${this.wallet}/limits`, { body: limits });
      await this.api("PUT", `${this.wallet}/alerts`, {
        body: {
          thresholds: percents.length
            ? percents.map((value) => ({ type: "consumed_percent", value }))
            : null,
        },
      });
      this._message = "Saved.";
      await this.reload();
    } catch (error) {
      if (error.status === 401 || error.status === 403) this.fail(error);
      else this._message = error.message;
    }
  }

  renderReady() {
    const { limits, alerts } = this;
    const percents = alerts.thresholds
      .filter((t) => t.type === "consumed_percent")
      .map((t) => t.value)
      .join(", ");
    return html`<section aria-labelledby="title">
      <h2 id="title">Spending controls</h2>
      <p>
        This period: ${figure("used", limits.used, formatCredits(limits.used))} used,
        ${figure("held", limits.held, formatCredits(limits.held))} held; state
        ${figure("state", limits.state, limits.state)}.
      </p>
      <ul>
        ${alerts.thresholds.map(
          (t) => html`<li>
            ${figure("value", t.value, formatCredits(t.value))} ${TYPE_LABELS[t.type] || t.type}
            ${t.crossed ? html`<strong>(crossed)</strong>` : ""}
          </li>`,
        )}
      </ul>
      <form class="row" @submit=${(e) => this.save(e)}>
        <label
          >Alert at (credits)
          <input name="alert_threshold" inputmode="decimal" .value=${limits.alert_threshold ?? ""}
        /></label>
        <label
          >Spending limit (credits)
          <input name="allowed_limit" inputmode="decimal" .value=${limits.allowed_limit ?? ""}
        /></label>
        <label
          >Alert at % consumed
          <input name="thresholds" .value=${percents} />
        </label>
        <button type="submit" class="primary">Save</button>
      </form>
      ${this._message ? html`<p role="status">${this._message}</p>` : ""}
    </section>`;
  }
}
