import { css, html, svg } from "lit";
import { CmElement, baseStyles } from "../base.js";
import { formatCredits, formatDate, readsReports, stackBars } from "../format.js";

// Plain SVG bars rather than a charting library: 30 or 12 stacked bars need no scales, zoom or
// canvas, and SVG elements stay themable with the --cm-* properties and readable by screen
// readers; uPlot or Chart.js would more than double the bundle for this.
const HEIGHT = 160;
const BAR = 18;
const PALETTE = 6;

export class CmUsageChart extends CmElement {
  static properties = {
    ...CmElement.properties,
    granularity: { type: String, reflect: true },
    groupBy: { type: String, attribute: "group-by", reflect: true },
  };

  static styles = [
    baseStyles,
    css`
      svg {
        width: 100%;
        height: auto;
        display: block;
      }
      .s0 { --c: var(--cm-chart-1, var(--cm-accent)); }
      .s1 { --c: var(--cm-chart-2, #8250df); }
      .s2 { --c: var(--cm-chart-3, #bf8700); }
      .s3 { --c: var(--cm-chart-4, #1a7f37); }
      .s4 { --c: var(--cm-chart-5, #cf222e); }
      .s5 { --c: var(--cm-chart-6, #6e7781); }
      rect[class] { fill: var(--c); }
      .axis { stroke: var(--cm-border); }
      .legend { display: flex; gap: 1rem; flex-wrap: wrap; list-style: none; padding: 0; }
      .swatch { display: inline-block; width: 0.8rem; height: 0.8rem; margin-inline-end: 0.3rem;
        background: var(--c); }
    `,
  ];

  constructor() {
    super();
    this.granularity = "day";
    this.groupBy = "feature";
  }

  visibleTo(role) {
    return readsReports(role);
  }

  updated(changed) {
    super.updated(changed);
    if ((changed.has("granularity") || changed.has("groupBy")) && this._state === "ready") {
      this.reload();
    }
  }

  async load() {
    const query = new URLSearchParams({ granularity: this.granularity, group_by: this.groupBy });
    this.series = await this.api("GET", `${this.wallet}/usage?${query}`);
  }

  label(date) {
    if (this.series.granularity === "month") {
      return new Intl.DateTimeFormat(undefined, { month: "short", year: "numeric", timeZone: "UTC" })
        .format(new Date(`${date}-01T00:00:00Z`));
    }
    return formatDate(date);
  }

  renderReady() {
    const { bars, keys } = stackBars(this.series.points, HEIGHT);
    const step = BAR + 6;
    const width = bars.length * step;
    const title = this.series.granularity === "month" ? "Last 12 months" : "Last 30 days";
    return html`<section aria-labelledby="title">
      <h2 id="title">Usage · ${title}</h2>
      <div class="row">
        <label
          >Period
          <select
            .value=${this.granularity}
            @change=${(e) => (this.granularity = e.target.value)}
          >
            <option value="day">30 days</option>
            <option value="month">12 months</option>
          </select></label
        >
        <label
          >Group by
          <select .value=${this.groupBy} @change=${(e) => (this.groupBy = e.target.value)}>
            <option value="feature">Feature</option>
            <option value="model">Model</option>
            ${this.role === "member" ? "" : html`<option value="member">Member</option>`}
          </select></label
        >
        <span
          >Total <strong data-field="total" data-value=${this.series.total}
            >${formatCredits(this.series.total)}</strong
          ></span
        >
      </div>
      <svg viewBox="0 0 ${width} ${HEIGHT + 2}" role="img" aria-label="${title}: credits used per
        ${this.series.granularity}, ${formatCredits(this.series.total)} in all">
        ${bars.map(
          (bar, i) => svg`<g class="bar" data-field="credits" data-value=${bar.credits}
            data-date=${bar.label}>
            <title>${this.label(bar.label)}: ${formatCredits(bar.credits)}</title>
            <rect x=${i * step} y="0" width=${BAR} height=${HEIGHT} fill="transparent"></rect>
            ${bar.segments.map(
              (s) => svg`<rect class="s${keys.indexOf(s.key) % PALETTE}" x=${i * step}
                y=${s.y} width=${BAR} height=${Math.max(s.h, 0)}></rect>`,
            )}
          </g>`,
        )}
        <line class="axis" x1="0" x2=${width} y1=${HEIGHT + 1} y2=${HEIGHT + 1}></line>
      </svg>
      <table class="sr-only">
        <caption>
          ${title}: credits used
        </caption>
        <tbody>
          ${this.series.points.map(
            (p) => html`<tr>
              <th scope="row">${this.label(p.date)}</th>
              <td data-field="credits" data-value=${p.credits}>${formatCredits(p.credits)}</td>
            </tr>`,
          )}
        </tbody>
      </table>
      <ul class="legend">
        ${keys.map(
          (key, i) =>
            html`<li><span class="swatch s${i % PALETTE}" aria-hidden="true"></span>${key}</li>`,
        )}
      </ul>
    </section>`;
  }
}
