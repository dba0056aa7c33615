import { html } from "lit";
import { CmElement, figure } from "../base.js";
import { formatCredits, formatDate, readsReports } from "../format.js";

// Every grant with what it has left: GET /grants (first page, newest first).
export class CmGrants extends CmElement {
  visibleTo(role) {
    return readsReports(role);
  }

  async load() {
    this.grants = await this.api("GET", `${this.wallet}/grants?limit=50`);
  }

  renderReady() {
    const items = this.grants.items || [];
    return html`<section aria-labelledby="title">
      <h2 id="title">Grants</h2>
      <table>
        <thead>
          <tr>
            <th scope="col">Source</th>
            <th scope="col" class="num">Credits</th>
            <th scope="col" class="num">Remaining</th>
            <th scope="col">Status</th>
            <th scope="col">Expires</th>
          </tr>
        </thead>
        <tbody>
          ${items.map(
            (g) => html`<tr data-id=${g.grant_id}>
              <td>${g.source}</td>
              <td class="num">${figure("credits", g.credits, formatCredits(g.credits))}</td>
              <td class="num">${figure("remaining", g.remaining, formatCredits(g.remaining))}</td>
              <td>${g.status}</td>
              <td>${figure("expires_at", g.expires_at, formatDate(g.expires_at))}</td>
            </tr>`,
          )}
        </tbody>
      </table>
    </section>`;
  }
}
