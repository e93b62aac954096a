// Rendering: API answers to DOM. Text goes in through textContent only, never as HTML, so a
// title from the catalog cannot inject markup.

import { routeHash } from "./route.js";

const HISTORY_SHOWN = 500; // a long history is cut here; the count says how many there are
const NUMERIC_COLUMNS = new Set(["Score", "Id"]);
const ITEM_COLUMNS = ["#", "Title", "Genres", "Score"];

/** el("a", {href: "#"}, "text", child) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function itemName(record) {
  return record.title ?? `Item ${record.id}`;
}

function itemLink(record, ctx) {
  const href = routeHash({ ...ctx, view: "item", id: record.id });
  return el("a", { href, class: "item-link", "data-id": record.id }, itemName(record));
}

function userLink(id, ctx) {
  const href = routeHash({ ...ctx, view: "user", id });
  return el("a", { href, class: "user-link", "data-id": id }, `User ${id}`);
}

function genres(value) {
  if (!value) return el("span", { class: "muted" }, "—");
  const tags = String(value)
    .split("|")
    .filter(Boolean)
    .map((g) => el("span", { class: "tag" }, g));
  return el("span", { class: "tags" }, tags);
}

function score(value) {
  return typeof value === "number" ? value.toFixed(3) : "";
}

/** "version v1 · server 0.84 ms · round trip 3.1 ms" */
export function timingText(timing) {
  const parts = [`version ${timing.version ?? "?"}`];
  if (timing.serverMs !== null) parts.push(`server ${timing.serverMs.toFixed(2)} ms`);
  parts.push(`round trip ${timing.roundTripMs.toFixed(1)} ms`);
  return parts.join(" · ");
}

function timingLine(timing) {
  return el("p", { class: "meta timing" }, timingText(timing));
}

function panel(title, label, ...content) {
  return el("section", { class: "panel", "aria-label": label }, el("h3", {}, title), content);
}

function failedPanel(title, error) {
  return panel(title, title, el("p", { class: "panel-error" }, error.message));
}

function table(caption, headers, rows) {
  return el(
    "table",
    {},
    el("caption", { class: "visually-hidden" }, caption),
    el("thead", {}, el(
      "tr",
      {},
      headers.map((h) =>
        el("th", { scope: "col", class: NUMERIC_COLUMNS.has(h) ? "num" : null }, h),
      ),
    )),
    el("tbody", {}, rows),
  );
}

function itemRows(results, ctx, seen = new Set()) {
  return results.map((r, i) =>
    el(
      "tr",
      { "data-id": r.id, class: seen.has(r.id) ? "was-seen" : null },
      el("td", { class: "rank" }, i + 1),
      el(
        "td",
        {},
        itemLink(r, ctx),
        seen.has(r.id) ? el("span", { class: "badge", title: "seen by the user" }, "seen") : null,
      ),
      el("td", {}, genres(r.genres)),
      el("td", { class: "num" }, score(r.score)),
    ),
  );
}

function viewHeading(text, sub) {
  return el(
    "div",
    { class: "view-head" },
    el("h2", { tabindex: "-1", id: "view-title" }, text),
    sub ? el("p", { class: "meta" }, sub) : null,
  );
}

// -- views ---------------------------------------------------------------------------------

/** A user: history beside recommendations, and similar users. Each part is {value} or {error}. */
export function userView(userId, { recommendations, seen, similar }, ctx) {
  const seenIds = new Set(seen.value ? seen.value.body.items : []);
  const recs = recommendations.value;
  const recPanel = panel(
    "Recommendations",
    "Recommendations",
    el(
      "p",
      { class: "meta" },
      ctx.excludeSeen ? "Seen items excluded." : "Seen items included (marked seen).",
    ),
    filterLine(recs.body.filter),
    recs.body.results.length
      ? table("Recommended items", ITEM_COLUMNS, itemRows(recs.body.results, ctx, seenIds))
      : el("p", {}, "No recommendations."),
    timingLine(recs.timing),
  );
  recPanel.id = "recommendations";

  return el(
    "div",
    { class: "view user-view" },
    viewHeading(`User ${userId}`, `${recs.body.metric} scores, ${recs.body.score}`),
    el(
      "div",
      { class: "columns" },
      recPanel, // first: after the heading, Tab reaches the recommendations first
      historyPanel(seen, ctx),
      similarUsersPanel(similar, ctx),
    ),
  );
}

function historyPanel(seen, ctx) {
  if (seen.error) return failedPanel("History", seen.error);
  const { body, timing } = seen.value;
  let content;
  if (body.interactions_loaded === false) {
    content = el(
      "p",
      { class: "notice" },
      "No interactions are loaded in this index version, so there is no history to show and " +
        "nothing is excluded as seen.",
    );
  } else if (!body.records.length) {
    content = el("p", {}, "This user has no interactions.");
  } else {
    const shown = body.records.slice(0, HISTORY_SHOWN);
    content = [
      el("p", { class: "meta" }, `${body.records.length} items seen`),
      el(
        "ul",
        { class: "history" },
        shown.map((r) => el("li", { "data-id": r.id }, itemLink(r, ctx), " ", genres(r.genres))),
      ),
      body.records.length > shown.length
        ? el("p", { class: "meta" }, `…and ${body.records.length - shown.length} more`)
        : null,
    ];
  }
  const node = panel("History", "History", content, timingLine(timing));
  node.id = "history";
  return node;
}

function similarUsersPanel(similar, ctx) {
  if (similar.error) return failedPanel("Similar users", similar.error);
  const { body, timing } = similar.value;
  const rows = body.results.map((r, i) =>
    el(
      "tr",
      { "data-id": r.id },
      el("td", { class: "rank" }, i + 1),
      el("td", {}, userLink(r.id, ctx)),
      el("td", { class: "num" }, score(r.score)),
    ),
  );
  const node = panel(
    "Similar users",
    "Similar users",
    rows.length ? table("Similar users", ["#", "User", "Score"], rows) : el("p", {}, "None."),
    timingLine(timing),
  );
  node.id = "similar-users";
  return node;
}

/** Which filter applied, how many items pass it, and how it was answered. */
function filterLine(filter) {
  if (!filter) return null;
  const how = filter.plan === "scan" ? "scored exactly" : "searched in the index";
  const count = filter.passing.toLocaleString("en");
  return el(
    "p",
    { class: "meta filter-line" },
    `Filtered: ${filter.expressions.join(", ")} · ${count} items pass, ${how}.`,
  );
}

/** An item: its own metadata and its similar items. */
export function itemView(item, similar, ctx) {
  const { body, timing } = item.value;
  const record = { id: body.id, ...body.metadata };
  const shown = new Set(["title", "genres"]);
  const extra = Object.entries(body.metadata).filter(([name]) => !shown.has(name));
  const card = el(
    "section",
    { class: "panel item-card", "aria-label": "Item" },
    el("h3", {}, "About this item"),
    el(
      "dl",
      { class: "fields" },
      el("dt", {}, "Item id"),
      el("dd", {}, String(body.id)),
      el("dt", {}, "Genres"),
      el("dd", {}, genres(record.genres)),
      extra.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, String(value ?? "—"))]),
    ),
    timingLine(timing),
  );
  let similarPanel;
  if (similar.error) {
    similarPanel = failedPanel("Similar items", similar.error);
  } else {
    const answer = similar.value;
    similarPanel = panel(
      "Similar items",
      "Similar items",
      el("p", { class: "meta" }, `${answer.body.metric} scores, ${answer.body.score}`),
      filterLine(answer.body.filter),
      answer.body.results.length
        ? table("Similar items", ITEM_COLUMNS, itemRows(answer.body.results, ctx))
        : el("p", {}, "None."),
      timingLine(answer.timing),
    );
  }
  similarPanel.id = "similar-items";
  return el(
    "div",
    { class: "view item-view" },
    viewHeading(itemName(record)),
    el("div", { class: "columns two" }, card, similarPanel),
  );
}

/** Items whose title contains the text. */
export function searchView(found, ctx) {
  const { body, timing } = found.value;
  const rows = body.results.map((r) =>
    el(
      "tr",
      { "data-id": r.id },
      el("td", {}, itemLink(r, ctx)),
      el("td", {}, genres(r.genres)),
      el("td", { class: "num" }, String(r.id)),
    ),
  );
  const count = body.results.length;
  const more = body.has_more ? " shown; more titles match (raise k or refine)" : "";
  const summary = count
    ? `${count} item${count === 1 ? "" : "s"}${more}`
    : `No title contains “${body.q}”.`;
  const results = panel(
    "Matching items",
    "Matching items",
    el("p", { class: "meta" }, summary),
    count ? table("Items by title", ["Title", "Genres", "Id"], rows) : null,
    timingLine(timing),
  );
  results.id = "title-results";
  const heading = viewHeading(`Titles containing “${body.q}”`);
  return el("div", { class: "view search-view" }, heading, results);
}

const HOW_TO = [
  "A user id shows their recommendations beside their history and similar users.",
  "An item id, or words from a title, shows the item and its similar items.",
  "Every movie and user is a link: follow it to open its own view.",
  "Keyboard: Tab through the form and press Enter; Tab to a result, Enter opens it.",
];

/** The start view: what the served version holds and how to use the page. */
export function homeView(info) {
  const artifact = info?.artifact;
  const facts = [];
  if (artifact) {
    const spaces = artifact.spaces || {};
    if (spaces.items) facts.push(`${spaces.items.count} items`);
    if (spaces.users) facts.push(`${spaces.users.count} users`);
    facts.push(artifact.catalog ? "a catalog with titles" : "no catalog (ids only)");
    facts.push(
      artifact.seen
        ? `${artifact.seen.interactions} interactions (history and exclude-seen)`
        : "no interactions (no history; nothing excluded as seen)",
    );
  }
  return el(
    "div",
    { class: "view home-view" },
    viewHeading("Explore recommendations"),
    el(
      "section",
      { class: "panel" },
      facts.length ? el("p", {}, `Version ${info.version} holds ${facts.join(", ")}.`) : null,
      el("ul", {}, HOW_TO.map((line) => el("li", {}, line))),
    ),
  );
}
