// Sign in with the same credentials as the API: an Accord API token (acc_...) or an
// OIDC bearer token. The server checks it (GET /api/v1/me) before it is kept.

import {api, setToken, ApiError} from "../api.js";
import {h, fill, field, setFieldError} from "../dom.js";

export function renderSignIn(main, done) {
  const input = h("input", {type: "password", name: "token", autocomplete: "off", spellcheck: "false",
    required: true, id: "token"});
  const f = field("API token or OIDC bearer token", input,
    "An Accord API token (acc_…, from an administrator or `accord token create`) or a JWT from " +
    "your identity provider. It is kept in this browser tab only, until you sign out.");
  const button = h("button", {type: "submit", class: "primary"}, "Sign in");
  const form = h("form", {class: "signin", "aria-labelledby": "signin-title"}, f.field, button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    setFieldError(f, "");
    if (!value) {
      setFieldError(f, "Paste a token to sign in.");
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      await api("/api/v1/me", {bearer: value});
      setToken(value);
      input.value = "";
      await done();
    } catch (error) {
      setFieldError(f, error instanceof ApiError ? error.explain() : `Accord is not answering: ${error}`);
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  fill(main, h("h1", {id: "signin-title", tabindex: "-1"}, "Sign in to Accord"),
    h("p", {}, "Researchers see their jobs and projects; site operators, their sites; programme " +
      "officers and auditors, the books of their partner's agreements — exactly what the API lets " +
      "the same token see."),
    form);
  input.focus();
}
