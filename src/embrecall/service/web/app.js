// The page's controller: the form and the key form drive the URL hash; each hash change asks
// the API and renders one view.

import { api, ApiError, storedKey, storeKey } from "./api.js";
import { DEFAULT_K, filterExpressions, parseRoute, routeHash } from "./route.js";
import { homeView, itemView, searchView, timingText, userView } from "./views.js";

const $ = (id) => document.getElementById(id);
const form = $("query-form");
const mode = $("mode");
const query = $("query");
const queryLabel = $("query-label");
const kInput = $("k");
const excludeSeen = $("exclude-seen");
const keyForm = $("key-form");
const keyInput = $("api-key");
const served = $("served");
const message = $("message");
const status = $("status");
const results = $("results");
const filters = $("filters");
const genreChips = $("genre-chips");
const yearMin = $("year-min");
const yearMax = $("year-max");

const QUERY_LABELS = {
  user: ["User id", "e.g. 1"],
  item: ["Item id", "e.g. 260"],
  title: ["Title contains", "e.g. matrix"],
};

let info = null; // GET /v1/info of the served version, once the key (if any) lets us read it
let infoError = null; // why /v1/info did not answer (a missing or refused key); shown at home
let navigation = 0; // answers that arrive after a newer navigation are dropped
let focusResults = false; // after a submit or a followed link, focus lands on the new view

const settle = (promise) => promise.then((value) => ({ value }), (error) => ({ error }));
const defaultK = () => info?.limits?.default_k ?? DEFAULT_K;

// -- views ---------------------------------------------------------------------------------
async function build(route) {
  const ctx = {
    k: route.k ?? defaultK(),
    excludeSeen: route.excludeSeen,
    genres: route.genres,
    yearMin: route.yearMin,
    yearMax: route.yearMax,
  };
  const filter = filterExpressions(route);
  if (route.view === "user") {
    const [recommendations, seen, similar] = await Promise.all([
      settle(api.recommendations(route.id, ctx.k, ctx.excludeSeen, filter)),
      settle(api.seen(route.id)),
      settle(api.similarUsers(route.id, ctx.k)),
    ]);
    if (recommendations.error) throw recommendations.error;
    const view = userView(route.id, { recommendations, seen, similar }, ctx);
    return [view, recommendations.value.timing];
  }
  if (route.view === "item") {
    const [item, similar] = await Promise.all([
      settle(api.item(route.id)),
      settle(api.similarItems(route.id, ctx.k, filter)),
    ]);
    if (item.error) throw item.error;
    return [itemView(item, similar, ctx), item.value.timing];
  }
  if (route.view === "search") {
    const found = await api.findItems(route.q, ctx.k);
    return [searchView({ value: found }, ctx), found.timing];
  }
  return [homeView(info), null];
}

async function show(route) {
  const run = ++navigation;
  syncForm(route);
  hideMessage();
  results.setAttribute("aria-busy", "true");
  status.textContent = "Loading…";
  try {
    const [view, timing] = await build(route);
    if (run !== navigation) return;
    results.replaceChildren(view);
    status.textContent = timing ? `Answered by ${timingText(timing)}` : "";
    if (route.view === "home" && infoError) showError(infoError);
    if (timing?.version && info && timing.version !== info.version) loadInfo(); // a swap
  } catch (error) {
    if (run !== navigation) return;
    focusResults = false; // stay in the field to retype (or in the key field, for a 401)
    results.replaceChildren();
    status.textContent = "";
    showError(error);
  } finally {
    if (run === navigation) results.removeAttribute("aria-busy");
  }
  if (run === navigation && focusResults) {
    focusResults = false;
    ($("view-title") || results).focus();
  }
}

function navigate(route, { focus }) {
  focusResults = focus;
  const hash = routeHash(route);
  if (location.hash === hash) show(parseRoute(hash)); // no hashchange for the same hash
  else location.hash = hash;
}

// -- messages ------------------------------------------------------------------------------
function showError(error) {
  let text = error.message;
  if (error instanceof ApiError && error.status === 401) {
    const problem = storedKey()
      ? "The server refused this API key: type the right one"
      : "This server needs a read API key: type it";
    const said = `The server said: “${error.message}”.`;
    text = `${problem} in the API key field above and press Enter. ${said}`;
  } else if (error instanceof ApiError && error.status) {
    text = `${error.message} (HTTP ${error.status}, ${error.code})`;
  }
  message.textContent = text;
  message.hidden = false;
  if (error.status === 401) keyInput.focus();
}

function hideMessage() {
  message.hidden = true;
  message.textContent = "";
}

// -- the served version --------------------------------------------------------------------
async function loadInfo() {
  try {
    info = (await api.info()).body;
    infoError = null;
  } catch (error) {
    info = null;
    infoError = error;
    const keyProblem = storedKey() ? "The API key was refused." : "A read API key is needed.";
    served.textContent =
      error.status === 401 ? keyProblem : `No answer from /v1/info: ${error.message}`;
    return;
  }
  const parts = [`Serving version ${info.version ?? "none yet"}`];
  if (info.limits?.read_key_required) parts.push("read key in use");
  served.textContent = parts.join(" · ");
  kInput.max = String(info.limits?.max_k ?? kInput.max);
  setUpFilters(info.artifact?.filters?.items ?? {});
}

// -- filters: genre chips (any of them) and a year range, for recommendations and similar items
function setUpFilters(fields) {
  const genres = fields.genres && fields.genres.type !== "number" ? fields.genres : null;
  const year = fields.year?.type === "number" ? fields.year : null;
  genreChips.replaceChildren(
    ...Object.keys(genres?.values ?? {})
      .sort()
      .map((name) => {
        const chip = document.createElement("button");
        chip.type = "button";
        chip.className = "chip";
        chip.dataset.genre = name;
        chip.textContent = name;
        chip.setAttribute("aria-pressed", "false");
        chip.addEventListener("click", () => toggleGenre(name));
        return chip;
      }),
  );
  genreChips.hidden = !genres;
  $("year-range").hidden = !year;
  for (const input of [yearMin, yearMax]) {
    input.min = String(year?.min ?? "");
    input.max = String(year?.max ?? "");
  }
  yearMin.placeholder = String(year?.min ?? "");
  yearMax.placeholder = String(year?.max ?? "");
  filters.hidden = !genres && !year;
}

function syncFilters(route) {
  for (const chip of genreChips.children) {
    chip.setAttribute("aria-pressed", String(route.genres.includes(chip.dataset.genre)));
  }
  yearMin.value = route.yearMin ?? "";
  yearMax.value = route.yearMax ?? "";
}

function refilter(change) {
  const current = parseRoute(location.hash);
  if (current.view !== "user" && current.view !== "item") return;
  navigate({ ...current, ...change }, { focus: false });
}

function toggleGenre(name) {
  const current = parseRoute(location.hash);
  const genres = current.genres.includes(name)
    ? current.genres.filter((g) => g !== name)
    : [...current.genres, name];
  refilter({ genres });
}

const yearOf = (input) => (input.value === "" ? null : Number.parseInt(input.value, 10));
for (const input of [yearMin, yearMax]) {
  input.addEventListener("change", () => {
    if (!input.checkValidity()) return;
    refilter({ yearMin: yearOf(yearMin), yearMax: yearOf(yearMax) });
  });
}
$("clear-filters").addEventListener("click", () =>
  refilter({ genres: [], yearMin: null, yearMax: null }),
);

// -- the form ------------------------------------------------------------------------------
function syncForm(route) {
  if (route.view === "user" || route.view === "item") {
    mode.value = route.view;
    query.value = route.id;
  } else if (route.view === "search") {
    mode.value = "title";
    query.value = route.q;
  }
  kInput.value = String(route.k ?? defaultK());
  excludeSeen.checked = route.excludeSeen;
  syncFilters(route);
  labelQuery();
}

function labelQuery() {
  const [label, placeholder] = QUERY_LABELS[mode.value];
  queryLabel.textContent = label;
  query.placeholder = placeholder;
}

function formRoute() {
  const text = query.value.trim();
  const k = Number.parseInt(kInput.value, 10) || defaultK();
  const current = parseRoute(location.hash); // a new lookup keeps the filters on screen
  const base = {
    k,
    excludeSeen: excludeSeen.checked,
    genres: current.genres,
    yearMin: current.yearMin,
    yearMax: current.yearMax,
  };
  if (mode.value === "title") return { ...base, view: "search", q: text };
  return { ...base, view: mode.value, id: text };
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!query.value.trim()) {
    query.focus();
    return;
  }
  navigate(formRoute(), { focus: true });
});

// k and exclude-seen apply at once to the view on screen (not to a half-typed new query)
for (const control of [kInput, excludeSeen]) {
  control.addEventListener("change", () => {
    const current = parseRoute(location.hash);
    if (current.view === "home" || !kInput.checkValidity()) return;
    const k = Number.parseInt(kInput.value, 10);
    if (k === (current.k ?? defaultK()) && excludeSeen.checked === current.excludeSeen) return;
    navigate({ ...current, k, excludeSeen: excludeSeen.checked }, { focus: false });
  });
}

mode.addEventListener("change", labelQuery);

// a followed link (mouse or Enter) moves focus to the view it opens
results.addEventListener("click", (event) => {
  if (event.target.closest("a[href^='#/']")) focusResults = true;
});

// -- the key -------------------------------------------------------------------------------
keyForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  storeKey(keyInput.value.trim());
  await loadInfo();
  show(parseRoute(location.hash));
});

$("forget-key").addEventListener("click", async () => {
  keyInput.value = "";
  storeKey("");
  await loadInfo();
  show(parseRoute(location.hash));
});

// -- start ---------------------------------------------------------------------------------
window.addEventListener("hashchange", () => show(parseRoute(location.hash)));
keyInput.value = storedKey();
labelQuery();
await loadInfo();
await show(parseRoute(location.hash));
