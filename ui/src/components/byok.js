import { html } from "lit";
import { CmElement, figure } from "../base.js";
import { formatDate } from "../format.js";

// The caller's own provider key: GET/PUT/DELETE /users/{sub}/byok. The key is sent once and
// never shown again: only its provider and last four characters come back.
export class CmByok extends CmElement {
  static properties = { ...CmElement.properties, _message: { state: true } };

  get needsWallet() {
    return false;
  }

  get path() {
    return `/v1/users/${encodeURIComponent(this.subject || "")}/byok`;
  }

  async load() {
    try {
      this.key = await this.api("GET", this.path);
    } catch (error) {
      if (error.status !== 404) throw error;
      this.key = null;
    }
  }

  async act(method, body) {
    try {
      await this.api(method, this.path, body ? { body } : {});
      this._message = method === "DELETE" ? "Your key was removed." : "Your key was saved.";
      await this.reload();
    } catch (error) {
      if (error.status === 401 || error.status === 403) this.fail(error);
      else this._message = error.message;
    }
  }

  submit(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    event.target.reset();
    this.act("PUT", { provider: form.get("provider"), api_key: form.get("api_key") });
  }

  renderReady() {
    const key = this.key;
    return html`<section aria-labelledby="title">
      <h2 id="title">Your provider key</h2>
      ${key
        ? html`<p>
            ${figure("provider", key.provider, key.provider)} key ending in
            <code>${figure("last4", key.last4, key.last4)}</code>, updated
            ${figure("updated_at", key.updated_at, formatDate(key.updated_at))}.
          </p>`
        : html`<p class="muted">No key: your AI usage is paid with credits.</p>`}
      <form class="row" @submit=${(e) => this.submit(e)}>
        <label
          >Provider
          <select name="provider">
            <option value="openai">OpenAI</option>
            <option value="anthropic">Anthropic</option>
            <option value="google">Google</option>
          </select></label
        >
        <label
          >API key
          <input name="api_key" type="password" autocomplete="off" required
        /></label>
        <button type="submit" class="primary">${key ? "Rotate key" : "Set key"}</button>
        ${key
          ? html`<button type="button" @click=${() => this.act("DELETE")}>Remove key</button>`
          : ""}
      </form>
      ${this._message ? html`<p role="status">${this._message}</p>` : ""}
    </section>`;
  }
}
