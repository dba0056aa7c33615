import { css, html } from "lit";
import { CmElement, baseStyles, figure } from "../base.js";
import { formatCredits, formatDate } from "../format.js";

const STATE_LABELS = {
  ok: "OK",
  alerting: "Alerting",
  depleted: "Depleted",
  capped: "Capped",
};

// Plan, used of allowance, remaining, renewal and state: GET /wallets/{id} and /usage/summary.
export class CmCreditBar extends CmElement {
  static styles = [
    baseStyles,
    css`
      .bar {
        height: 0.75rem;
        border-radius: 999px;
        background: var(--cm-surface);
        border: 1px solid var(--cm-border);
        overflow: hidden;
      }
      .fill {
        height: 100%;
        background: var(--cm-accent);
      }
      .state-alerting .fill {
        background: var(--cm-warn);
      }
      .state-depleted .fill,
      .state-capped .fill {
        background: var(--cm-danger);
      }
      dl {
        display: flex;
        flex-wrap: wrap;
        gap: 0.5rem 1.5rem;
        margin: var(--cm-gap) 0 0;
      }
      dt {
        font-size: 0.8rem;
        color: var(--cm-muted);
      }
      dd {
        margin: 0;
        font-weight: 600;
        font-variant-numeric: tabular-nums;
      }
    `,
  ];

  async load() {
    const [wallet, summary] = await Promise.all([
      this.api("GET", this.wallet),
      this.api("GET", `${this.wallet}/usage/summary`),
    ]);
    this.data = { wallet, summary };
  }

  renderReady() {
    const { wallet, summary } = this.data;
    const percent = Math.min(100, Math.max(0, Number(summary.percent_used) || 0));
    const state = wallet.state;
    return html`<section class="state-${state}" aria-labelledby="title">
      <h2 id="title">Credits · ${figure("plan", wallet.plan, wallet.plan)}</h2>
      <div
        class="bar"
        role="progressbar"
        aria-label="Allowance used"
        aria-valuemin="0"
        aria-valuemax="100"
        aria-valuenow=${percent}
      >
        <div class="fill" style="width: ${percent}%"></div>
      </div>
      <dl>
        <div>
          <dt>Used</dt>
          <dd>
            ${figure("used", wallet.used, formatCredits(wallet.used))} of
            ${figure("allowance", wallet.allowance, formatCredits(wallet.allowance))}
          </dd>
        </div>
        <div>
          <dt>Remaining</dt>
          <dd>${figure("remaining", summary.remaining, formatCredits(summary.remaining))}</dd>
        </div>
        <div>
          <dt>Renews on</dt>
          <dd>${figure("renews_at", summary.renews_at, formatDate(summary.renews_at))}</dd>
        </div>
        <div>
          <dt>State</dt>
          <dd>${figure("state", state, STATE_LABELS[state] || state)}</dd>
        </div>
      </dl>
    </section>`;
  }
}
