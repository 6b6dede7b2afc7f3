// Event kinds the console knows by name: a letter for the map marker, a colour, labels in both
// languages. Any other kind (a newer gateway's) is still shown: its own name, red when the event
// says it is an alarm, grey otherwise. `restore` kinds end a situation (drawn hollow on the map).

import { lang } from "./i18n.js";

const RED = "#c62828", ORANGE = "#ef6c00", PURPLE = "#8e24aa", BLUE = "#1565c0", GREEN = "#2e7d32", GREY = "#616161";

export const KINDS = {
  ACTIVATED: { letter: "A", color: GREEN, en: "Activated", ru: "Активирована" },
  ACTIVATION_FAILED: { letter: "F", color: RED, en: "Activation failed", ru: "Активация не удалась" },
  POSITION: { letter: "·", color: GREY, en: "Positions", ru: "Позиции" },
  UNAUTHORIZED_OPENING: { letter: "O", color: RED, en: "Unauthorized opening (cable)", ru: "Несанкционированное вскрытие (трос)" },
  HOUSING_OPENED: { letter: "H", color: RED, en: "Housing opened", ru: "Вскрыт корпус" },
  SIGNAL_LOST: { letter: "S", color: ORANGE, en: "Signal lost", ru: "Потеря связи" },
  SIGNAL_RESTORED: { letter: "S", color: ORANGE, restore: true, en: "Signal restored", ru: "Связь восстановлена" },
  ROUTE_DEVIATION: { letter: "R", color: PURPLE, en: "Route deviation", ru: "Отклонение от маршрута" },
  ROUTE_RETURNED: { letter: "R", color: PURPLE, restore: true, en: "Back on the route", ru: "Возврат на маршрут" },
  LOW_BATTERY: { letter: "B", color: ORANGE, en: "Low battery", ru: "Низкий заряд" },
  TRANSIT_OVERDUE: { letter: "T", color: RED, en: "Transit period over", ru: "Срок транзита истёк" },
  DEACTIVATION_REQUESTED: { letter: "D", color: BLUE, en: "Deactivation requested", ru: "Запрошена деактивация" },
  DEACTIVATED: { letter: "D", color: GREEN, en: "Deactivated", ru: "Деактивирована" },
  DEACTIVATION_OVERDUE: { letter: "D", color: RED, en: "Deactivation overdue", ru: "Деактивация просрочена" },
  SEAL_REKEYED: { letter: "K", color: GREY, en: "Seal re-keyed", ru: "Ключ пломбы заменён" },
  ESCORT_EXPIRED: { letter: "E", color: GREY, en: "Escort expired (never deactivated)", ru: "Сопровождение истекло (не деактивировано)" },
  GNSS_LOST: { letter: "G", color: ORANGE, en: "GNSS lost", ru: "Потеря ГНСС" },
  GNSS_RESTORED: { letter: "G", color: ORANGE, restore: true, en: "GNSS restored", ru: "ГНСС восстановлена" },
  GNSS_ANOMALY: { letter: "G", color: RED, en: "GNSS anomaly", ru: "Аномалия ГНСС" },
  SEAL_ESCORT_LOST: { letter: "E", color: RED, en: "Seal lost its escort", ru: "Пломба потеряла сопровождение" },
  SEAL_REJECTING: { letter: "X", color: RED, en: "Seal rejecting frames", ru: "Пломба отклоняет кадры" },
  SEAL_REPLAY_RESET: { letter: "X", color: GREY, en: "Seal replay window reset", ru: "Сброс окна повторов пломбы" },
  RISK_MARKED: { letter: "!", color: RED, en: "Marked high risk", ru: "Отмечено как высокий риск" },
  NOTIFY_OVERDUE: { letter: "N", color: RED, en: "Notification overdue", ru: "Уведомление просрочено" },
};

export function kindInfo(kind, event = {}) {
  const known = KINDS[kind];
  if (known) return { ...known, label: known[lang] || known.en, known: true };
  return { letter: "?", color: event.alarm ? RED : GREY, label: kind, known: false };
}

// Who observed it: the seal's own facts carry a `source` naming the seal's record or event;
// deadlines and silence are the gateway's.
export function sourceOf(event) {
  const source = event.details && event.details.source;
  if (typeof source === "string" && source) return source;
  return null;
}
