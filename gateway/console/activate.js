// Activation (clause 8) for the operator: a form, optionally filled from an earlier escort of the
// same seal ("activate again"); on success the new escort's page.

import { api, session } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { activationForm } from "./forms.js";

export async function render(main, params) {
  if (session.me.role !== "operator") throw Object.assign(new Error(t("error_forbidden")), { status: 403 });
  let from = null;
  if (params.from) {
    const list = await api(`/v1/escorts?escort_id=${Number(params.from)}`);
    from = list.escorts[0] || null;
  }
  main.append(h("p", {}, h("a", { href: "#/escorts" }, t("back_to_list"))),
    activationForm({ seal: params.seal, from, onDone: (escort) => { location.hash = `#/escorts/${escort.escort_id}`; } }));
}
