// The page's state lives in the URL hash, so every view can be linked and Back works:
//   #/user/1?k=20&exclude_seen=false   a user: history, recommendations, similar users
//   #/item/260?k=10                    an item and its similar items
//   #/search?q=matrix&k=20             items by title
//   #/                                 the start view
// Filters ride along on user and item views: genres=Comedy|Drama (any of them), year_min=1990,
// year_max=1999; they apply to recommendations and similar items.

export const DEFAULT_K = 10;

export function parseRoute(hash) {
  const [path, query = ""] = hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  const k = Number.parseInt(params.get("k") || "", 10);
  const route = {
    view: "home",
    id: null,
    q: null,
    k: Number.isFinite(k) && k > 0 ? k : null,
    excludeSeen: params.get("exclude_seen") !== "false",
    genres: (params.get("genres") || "").split("|").filter(Boolean),
    yearMin: year(params.get("year_min")),
    yearMax: year(params.get("year_max")),
  };
  const parts = path.split("/").filter(Boolean);
  if ((parts[0] === "user" || parts[0] === "item") && parts.length === 2) {
    route.view = parts[0];
    route.id = decodeURIComponent(parts[1]);
  } else if (parts[0] === "search" && params.get("q")) {
    route.view = "search";
    route.q = params.get("q");
  }
  return route;
}

function year(text) {
  const value = Number.parseInt(text || "", 10);
  return Number.isFinite(value) ? value : null;
}

/** The API's filter expressions for a route's filters (an empty list: no filter). */
export function filterExpressions({ genres = [], yearMin = null, yearMax = null }) {
  const out = [];
  if (genres.length) out.push(`genres=${genres.join("|")}`);
  if (yearMin !== null) out.push(`year>=${yearMin}`);
  if (yearMax !== null) out.push(`year<=${yearMax}`);
  return out;
}

export function routeHash({ view, id, q, k, excludeSeen, genres, yearMin, yearMax }) {
  const params = new URLSearchParams();
  if (view === "search") params.set("q", q);
  if (k) params.set("k", String(k));
  if (excludeSeen === false) params.set("exclude_seen", "false");
  if (view !== "search") {
    if (genres?.length) params.set("genres", genres.join("|"));
    if (yearMin !== null && yearMin !== undefined) params.set("year_min", String(yearMin));
    if (yearMax !== null && yearMax !== undefined) params.set("year_max", String(yearMax));
  }
  const query = params.toString() ? `?${params}` : "";
  if (view === "user" || view === "item") return `#/${view}/${encodeURIComponent(id)}${query}`;
  if (view === "search") return `#/search${query}`;
  return "#/";
}
