import { html } from "lit";
import { CmElement, figure } from "../base.js";
import { formatCredits } from "../format.js";

const CATEGORY_LABELS = { ai_usage: "AI usage", images: "Images", uncategorized: "Other" };

// This period's usage: category → tier → model, from GET /usage/summary.
export class CmUsageBreakdown extends CmElement {
  async load() {
    this.summary = await this.api("GET", `${this.wallet}/usage/summary`);
  }

  renderReady() {
    const categories = this.summary.breakdown || [];
    return html`<section aria-labelledby="title">
      <h2 id="title">Usage this period</h2>
      ${categories.length
        ? html`<ul>
            ${categories.map(
              (c) =>
                html`<li data-category=${c.category}>
                  ${CATEGORY_LABELS[c.category] || c.category}:
                  ${figure("credits", c.credits, formatCredits(c.credits))}
                  ${c.tiers && c.tiers.length
                    ? html`<ul>
                        ${c.tiers.map(
                          (t) =>
                            html`<li data-tier=${t.tier}>
                              ${t.tier}: ${figure("credits", t.credits, formatCredits(t.credits))}
                              <ul>
                                ${(t.models || []).map(
                                  (m) =>
                                    html`<li data-model=${m.model}>
                                      ${m.model}:
                                      ${figure("credits", m.credits, formatCredits(m.credits))}
                                    </li>`,
                                )}
                              </ul>
                            </li>`,
                        )}
                      </ul>`
                    : ""}
                </li>`,
            )}
          </ul>`
        : html`<p class="muted">No usage yet this period.</p>`}
    </section>`;
  }
}
