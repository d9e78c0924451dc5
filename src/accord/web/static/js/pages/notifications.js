// Your notifications: the email address and webhook they go to, which events, and how
// each delivery went (docs/design/notifications.md).

import {api, ApiError} from "../api.js";
import {h, add, fill, when, field, setFieldError, table} from "../dom.js";

const PATH = "/api/v1/me/notifications";

function checkbox(label, checked, value) {
  const box = h("input", {type: "checkbox", value: value || "", checked: checked ? "" : null});
  box.checked = Boolean(checked);
  return {box, label: h("label", {class: "check"}, box, " ", label)};
}

function settingsForm(doc, onSaved) {
  const email = field("Email address", h("input", {type: "email", name: "email", autocomplete: "email",
    value: doc.email || ""}), `Empty: the address you were enrolled with (${doc.enrolled_email || "none"}).`);
  const hook = field("Webhook URL", h("input", {type: "url", name: "webhook_url", autocomplete: "off",
    value: doc.webhook_url || ""}), "Signed JSON is POSTed here (docs/security.md). Empty: no webhook.");
  const emailOn = checkbox("Send email", doc.email_on);
  const rotate = checkbox("Make a new webhook signing secret", false);
  const kinds = doc.kinds.map((k) => checkbox(k, doc.events.includes(k), k));
  const events = h("fieldset", {}, h("legend", {}, "Events"), kinds.map((k) => k.label));
  const outcome = h("p", {role: "status", class: "outcome"});
  const fields = {email, webhook_url: hook};
  // novalidate: the server checks and names the field, the value and what is allowed
  const form = h("form", {"aria-label": "Notification settings", novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    Object.values(fields).forEach((f) => setFieldError(f, ""));
    const body = {email: email.control.value.trim() || null, email_on: emailOn.box.checked,
      webhook_url: hook.control.value.trim() || null, rotate_secret: rotate.box.checked,
      events: kinds.filter((k) => k.box.checked).map((k) => k.box.value)};
    try {
      const saved = await api(PATH, {method: "PUT", body});
      fill(outcome, "Saved.");
      if (saved.webhook_secret) {
        add(outcome, " Your webhook's signing secret, shown once: ", h("code", {class: "secret"}, saved.webhook_secret));
      }
      onSaved();
    } catch (error) {
      const problems = error instanceof ApiError ? error.problems : [];
      problems.forEach((p) => fields[p.field] && setFieldError(fields[p.field], `${p.message} (allowed: ${p.allowed})`));
      fill(outcome, error instanceof ApiError ? error.explain() : String(error));
    }
  }}, email.field, h("p", {}, emailOn.label), hook.field, events, h("p", {}, rotate.label),
  h("button", {type: "submit"}, "Save"), outcome);
  return form;
}

function deliveriesTable(doc) {
  return table("Your notifications, newest first", [
    {label: "Event", cell: (d) => d.kind}, {label: "Subject", cell: (d) => d.subject},
    {label: "Channel", cell: (d) => `${d.channel} → ${d.target}`}, {label: "State", cell: (d) => d.state},
    {label: "Tries", cell: (d) => String(d.attempts), num: true},
    {label: "Sent / next try", cell: (d) => when(d.sent_at || d.next_try_at)},
    {label: "Last error", cell: (d) => d.last_error || "—"},
  ], doc.deliveries, "No notifications yet.");
}

export async function renderNotifications(ctx) {
  let doc;
  try {
    doc = await api(PATH);
  } catch (error) {
    add(ctx.main, h("h1", {}, "Notifications"), h("p", {role: "alert", class: "error refusal"},
      error instanceof ApiError ? error.explain() : String(error)));
    return;
  }
  const list = h("div", {});
  const refresh = async () => {
    const sent = await api(`${PATH}/deliveries?limit=100`);
    if (ctx.current()) fill(list, deliveriesTable(sent));
  };
  add(ctx.main, h("h1", {}, "Notifications"),
    h("p", {}, "Where Accord tells you that a job ended or was held, an allocation is running out, and more."),
    settingsForm(doc, () => refresh().catch(() => {})), h("h2", {}, "Deliveries"), list);
  await refresh();
  ctx.every(5000, () => refresh().catch(() => {}));
}
