import { html } from "lit";
import { CmElement, figure } from "../base.js";
import { formatCredits, isManager } from "../format.js";

// Members' budgets inside the shared wallet: GET /members, PUT /members/{id}/budget.
export class CmMemberBudgets extends CmElement {
  static properties = { ...CmElement.properties, _message: { state: true } };

  visibleTo(role) {
    return isManager(role);
  }

  async load() {
    this.members = await this.api("GET", `${this.wallet}/members`);
  }

  async save(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    const member = String(form.get("member_id") || "").trim();
    const budget = String(form.get("budget") || "").trim();
    try {
      await this.api("PUT", `${this.wallet}/members/${encodeURIComponent(member)}/budget`, {
        body: { budget: budget || null },
      });
      this._message = `Saved the budget of ${member}.`;
      event.target.reset();
      await this.reload();
    } catch (error) {
      if (error.status === 401 || error.status === 403) this.fail(error);
      else this._message = error.message;
    }
  }

  renderReady() {
    const items = this.members.items || [];
    return html`<section aria-labelledby="title">
      <h2 id="title">Member budgets</h2>
      ${items.length
        ? html`<table>
            <thead>
              <tr>
                <th scope="col">Member</th>
                <th scope="col" class="num">Budget</th>
                <th scope="col" class="num">Used</th>
                <th scope="col" class="num">Remaining</th>
              </tr>
            </thead>
            <tbody>
              ${items.map(
                (m) => html`<tr data-id=${m.member_id}>
                  <td>${m.member_id}</td>
                  <td class="num">${figure("budget", m.budget, formatCredits(m.budget))}</td>
                  <td class="num">${figure("used", m.used, formatCredits(m.used))}</td>
                  <td class="num">${figure("remaining", m.remaining, formatCredits(m.remaining))}</td>
                </tr>`,
              )}
            </tbody>
          </table>`
        : html`<p class="muted">No member has a budget.</p>`}
      <form class="row" @submit=${(e) => this.save(e)}>
        <label>Member <input name="member_id" required /></label>
        <label>Budget per period (empty: none) <input name="budget" inputmode="decimal" /></label>
        <button type="submit" class="primary">Set budget</button>
      </form>
      ${this._message ? html`<p role="status">${this._message}</p>` : ""}
    </section>`;
  }
}
