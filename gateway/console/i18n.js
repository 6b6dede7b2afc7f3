// Interface strings in English and Russian (the officials' working language), and formatting of
// times, ages and numbers in the chosen language. The language is the user's choice (kept in this
// browser) or, until they choose, the browser's first preferred language that we have.

const STRINGS = {
  en: {
    app: "navseal customs escort",
    nav_escorts: "Escorts", nav_alarms: "Alarms", nav_seals: "Seals", logout: "Log out",
    login_title: "Log in", login_name: "User name", login_password: "Password", login_submit: "Log in",
    login_failed: "Wrong name or password.", session_ended: "Your session ended: log in again.",
    loading: "Loading…", error: "Error", retry: "Retry", none: "—", yes: "yes", no: "no",
    newer: "← Newer", older: "Older →", page_first: "First page",
    search: "Declaration, plate or seal", filter_state: "State", filter_office: "Office", filter_alarm: "Alarm",
    filter_from: "Activation from", filter_to: "to", any: "any", any_alarm: "any alarm", apply: "Apply", reset: "Reset",
    st_awaiting_activation: "awaiting activation", st_active: "active", st_deactivation_requested: "deactivation requested",
    st_deactivated: "deactivated", st_failed: "activation failed", st_overdue: "overdue",
    overdue_transit: "transit period over", overdue_deactivation: "deactivation overdue",
    col_state: "State", col_declaration: "Declaration", col_vehicle: "Vehicle", col_seals: "Seals",
    col_offices: "Offices", col_last_position: "Last position", col_alarms: "Alarms", col_period_end: "Period ends",
    col_seal: "Seal", col_firmware: "Firmware", col_last_seen: "Last seen", col_battery: "Battery",
    col_lock: "Lock", col_backlog: "Journal backlog", col_escort: "Escort", col_position: "Position",
    no_escorts: "No escorts match.", no_seals: "No seals.", no_alarms: "No alarms.",
    ago: "{age} ago", online: "online", offline: "offline",
    lock_ok: "intact", lock_cable: "cable broken", lock_housing: "housing open", unknown: "unknown",
    escort: "Escort", back_to_list: "← Escorts", clause8: "Escort data (clause 8)",
    f_seal: "Seal number", f_declaration: "Transit declaration", f_vehicle: "Vehicle registration",
    f_departure: "Office of departure", f_destination: "Office of destination", f_period: "Transit period",
    f_route: "Route", f_corridor: "Corridor", f_activated_by: "Activated by", f_requested_by: "Deactivation requested by",
    f_status: "State", f_battery: "Battery", f_last_fix: "Last fix", f_lock: "Lock",
    route_points: "{n} points, corridor {m} m", no_route: "no route declared",
    verdict: "Verdict (clause 13)", verdict_clean: "Completed clean", verdict_not_clean: "NOT clean",
    verdict_pending: "No verdict yet: the escort is {state}.", verdict_waiting: "Waiting for the seal to confirm deactivation.",
    verdict_evidence: "The seal confirmed deactivation; the verdict waits for the rest of its records (complete evidence).",
    reasons: "Reasons", non_routine: "Non-routine situations", high_risk: "high risk (clause 15)",
    within_deadline: "Seal deactivated within the hour (clause 14)", late_deactivation: "Seal deactivated late (clause 14)",
    situations_so_far: "Non-routine situations so far", none_so_far: "none so far",
    timeline: "Events", t_time: "Time", t_kind: "Event", t_source: "Source", t_details: "Details",
    source_seal: "seal", source_gateway: "gateway", show_on_map: "show on map",
    colour_by: "Track colour", by_age: "by age", by_speed: "by speed", legend_old: "older", legend_new: "newer",
    legend_stopped: "stopped", kmh: "km/h",
    map_missing: "Map libraries are not installed on this gateway ({files}): run bash tools/run setup.",
    track_meta: "{points} of {fixes} fixes drawn", track_none: "no fixes received yet",
    actions: "Actions", act_deactivate: "Request deactivation", act_activate: "Activate a seal",
    act_activate_again: "Activate again",
    deact_title: "Request deactivation (clause 13)",
    deact_help: "Read the seal number on the seal, the declaration and the registration plate from the documents and the vehicle, and type them: all three must match this escort.",
    matches: "matches", differs: "does not match", send: "Send", cancel: "Cancel",
    deact_sent: "Deactivation requested: the seal must confirm within the hour.",
    act_title: "Activate an escort (clause 8)", act_help: "The seal must be closed on the cargo compartment and online.",
    f_dep_code: "Departure office code", f_dep_name: "Departure office name", f_dest_code: "Destination office code",
    f_dest_name: "Destination office name", f_period_start: "Period starts", f_period_end: "Period ends",
    f_route_file: "Route file (GeoJSON or GPX, optional)", f_corridor_m: "Corridor width, m",
    act_sent: "Activation requested: escort {id}. It becomes active once the seal confirms with a fix.",
    bad_declaration: "<office code>/<DDMMYY>/<7 digits>", bad_plate: "capital letters, digits, spaces, hyphens",
    bad_office: "5 to 8 digits", bad_seal: "a number 1 … 4294967295",
    alarm_feed: "Alarms", live: "live", reconnecting: "reconnecting…",
    notify_deadline: "Notify by", notify_overdue: "notification overdue", acknowledge: "Acknowledge",
    ack_note: "Note (optional)", acked_by: "acknowledged by {who} at {when}", not_acked: "not acknowledged",
    new_alarm: "new",
    a_seal: "Seal", a_vehicle: "Vehicle", a_declaration: "Declaration", a_where: "Where",
    seals_title: "Seals", escorts_title: "Escorts", offices_you: "your offices: {offices}",
    activate_seal: "Activate", idle: "idle",
    error_forbidden: "Not allowed for your role or office.", error_not_found: "Not found (or not one of your offices').",
  },
  ru: {
    app: "navseal: таможенное сопровождение",
    nav_escorts: "Сопровождения", nav_alarms: "Тревоги", nav_seals: "Пломбы", logout: "Выйти",
    login_title: "Вход", login_name: "Имя пользователя", login_password: "Пароль", login_submit: "Войти",
    login_failed: "Неверное имя или пароль.", session_ended: "Сеанс завершён: войдите снова.",
    loading: "Загрузка…", error: "Ошибка", retry: "Повторить", none: "—", yes: "да", no: "нет",
    newer: "← Новее", older: "Старее →", page_first: "Первая страница",
    search: "Декларация, номер ТС или пломбы", filter_state: "Состояние", filter_office: "Таможня",
    filter_alarm: "Тревога", filter_from: "Активация с", filter_to: "по", any: "любое", any_alarm: "любая тревога",
    apply: "Применить", reset: "Сбросить",
    st_awaiting_activation: "ожидает активации", st_active: "активно", st_deactivation_requested: "запрошена деактивация",
    st_deactivated: "деактивировано", st_failed: "активация не удалась", st_overdue: "просрочено",
    overdue_transit: "срок транзита истёк", overdue_deactivation: "деактивация просрочена",
    col_state: "Состояние", col_declaration: "Декларация", col_vehicle: "ТС", col_seals: "Пломбы",
    col_offices: "Таможни", col_last_position: "Последняя позиция", col_alarms: "Тревоги", col_period_end: "Срок до",
    col_seal: "Пломба", col_firmware: "Прошивка", col_last_seen: "Последний сеанс", col_battery: "Батарея",
    col_lock: "Замок", col_backlog: "Очередь журнала", col_escort: "Сопровождение", col_position: "Позиция",
    no_escorts: "Нет подходящих сопровождений.", no_seals: "Нет пломб.", no_alarms: "Нет тревог.",
    ago: "{age} назад", online: "на связи", offline: "не на связи",
    lock_ok: "цел", lock_cable: "трос нарушен", lock_housing: "корпус вскрыт", unknown: "неизвестно",
    escort: "Сопровождение", back_to_list: "← Сопровождения", clause8: "Данные сопровождения (п. 8)",
    f_seal: "Номер пломбы", f_declaration: "Транзитная декларация", f_vehicle: "Регистрационный номер ТС",
    f_departure: "Таможня отправления", f_destination: "Таможня назначения", f_period: "Срок транзита",
    f_route: "Маршрут", f_corridor: "Коридор", f_activated_by: "Активировал", f_requested_by: "Деактивацию запросил",
    f_status: "Состояние", f_battery: "Батарея", f_last_fix: "Последняя позиция", f_lock: "Замок",
    route_points: "{n} точек, коридор {m} м", no_route: "маршрут не задан",
    verdict: "Заключение (п. 13)", verdict_clean: "Завершено без нарушений", verdict_not_clean: "С НАРУШЕНИЯМИ",
    verdict_pending: "Заключения ещё нет: сопровождение {state}.", verdict_waiting: "Ожидается подтверждение деактивации пломбой.",
    verdict_evidence: "Пломба подтвердила деактивацию; заключение ждёт остальных её записей (полные данные).",
    reasons: "Причины", non_routine: "Нештатные ситуации", high_risk: "высокий риск (п. 15)",
    within_deadline: "Пломба деактивирована в течение часа (п. 14)", late_deactivation: "Пломба деактивирована с опозданием (п. 14)",
    situations_so_far: "Нештатные ситуации на данный момент", none_so_far: "пока нет",
    timeline: "События", t_time: "Время", t_kind: "Событие", t_source: "Источник", t_details: "Подробности",
    source_seal: "пломба", source_gateway: "шлюз", show_on_map: "на карте",
    colour_by: "Цвет трека", by_age: "по давности", by_speed: "по скорости", legend_old: "раньше", legend_new: "позже",
    legend_stopped: "стоянка", kmh: "км/ч",
    map_missing: "Библиотеки карты не установлены на шлюзе ({files}): выполните bash tools/run setup.",
    track_meta: "показано {points} из {fixes} точек", track_none: "точки ещё не получены",
    actions: "Действия", act_deactivate: "Запросить деактивацию", act_activate: "Активировать пломбу",
    act_activate_again: "Активировать снова",
    deact_title: "Запрос деактивации (п. 13)",
    deact_help: "Прочитайте номер пломбы на пломбе, номер декларации и регистрационный номер по документам и на ТС и введите их: все три должны совпасть с этим сопровождением.",
    matches: "совпадает", differs: "не совпадает", send: "Отправить", cancel: "Отмена",
    deact_sent: "Деактивация запрошена: пломба должна подтвердить её в течение часа.",
    act_title: "Активация сопровождения (п. 8)", act_help: "Пломба должна быть закрыта на грузовом отсеке и на связи.",
    f_dep_code: "Код таможни отправления", f_dep_name: "Название таможни отправления", f_dest_code: "Код таможни назначения",
    f_dest_name: "Название таможни назначения", f_period_start: "Начало срока", f_period_end: "Окончание срока",
    f_route_file: "Файл маршрута (GeoJSON или GPX, необязательно)", f_corridor_m: "Ширина коридора, м",
    act_sent: "Активация запрошена: сопровождение {id}. Оно станет активным, когда пломба подтвердит с позицией.",
    bad_declaration: "<код таможни>/<ДДММГГ>/<7 цифр>", bad_plate: "заглавные буквы, цифры, пробелы, дефисы",
    bad_office: "от 5 до 8 цифр", bad_seal: "число 1 … 4294967295",
    alarm_feed: "Тревоги", live: "в реальном времени", reconnecting: "переподключение…",
    notify_deadline: "Уведомить до", notify_overdue: "уведомление просрочено", acknowledge: "Подтвердить",
    ack_note: "Примечание (необязательно)", acked_by: "подтвердил {who} в {when}", not_acked: "не подтверждено",
    new_alarm: "новая",
    a_seal: "Пломба", a_vehicle: "ТС", a_declaration: "Декларация", a_where: "Где",
    seals_title: "Пломбы", escorts_title: "Сопровождения", offices_you: "ваши таможни: {offices}",
    activate_seal: "Активировать", idle: "свободна",
    error_forbidden: "Не разрешено для вашей роли или таможни.", error_not_found: "Не найдено (или не относится к вашим таможням).",
  },
};

export const LANGUAGES = { en: "English", ru: "Русский" };
const KEY = "navseal.lang";

function initial() {
  const chosen = localStorage.getItem(KEY);
  if (chosen && STRINGS[chosen]) return chosen;
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (STRINGS[base]) return base;
  }
  return "en";
}

export let lang = initial();

export function setLanguage(code) {
  if (!STRINGS[code]) return;
  lang = code;
  localStorage.setItem(KEY, code);
  document.documentElement.lang = code;
}

export function t(key, params = {}) {
  let text = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  for (const [name, value] of Object.entries(params)) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}

export function fmtTime(iso) {
  if (!iso) return t("none");
  return new Intl.DateTimeFormat(lang, { dateStyle: "short", timeStyle: "medium", hourCycle: "h23" }).format(new Date(iso));
}

export function fmtAge(seconds) {
  if (seconds == null) return t("none");
  const s = Math.max(0, Math.round(seconds));
  const units = lang === "ru" ? { d: "д", h: "ч", m: "мин", s: "с" } : { d: "d", h: "h", m: "min", s: "s" };
  if (s < 60) return `${s} ${units.s}`;
  if (s < 3600) return `${Math.floor(s / 60)} ${units.m}`;
  if (s < 86400) return `${Math.floor(s / 3600)} ${units.h} ${Math.floor((s % 3600) / 60)} ${units.m}`;
  return `${Math.floor(s / 86400)} ${units.d} ${Math.floor((s % 86400) / 3600)} ${units.h}`;
}

export function fmtNumber(value, digits = 0) {
  if (value == null) return t("none");
  return new Intl.NumberFormat(lang, { maximumFractionDigits: digits }).format(value);
}

document.documentElement.lang = lang;
