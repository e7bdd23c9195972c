// Tally's REST surface as the portal calls it: the signed-in caller's bearer token on every
// call (kept in sessionStorage, never in a URL), errors as words, and exact numbers.

const TOKEN_KEY = "tally.portal.token";

/** The caller's token, kept for this browser tab only. */
export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  keep: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  forget: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** A refusal or failure, with Tally's error code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  /** The token itself was refused (missing, expired, badly signed): the caller must sign in again. */
  get signedOut() {
    return this.status === 401;
  }

  /** The error in words, for the page. */
  describe() {
    const where = this.status ? `HTTP ${this.status}` : "no answer";
    return `${this.message} (${this.code}, ${where})`;
  }
}

// Azure's usage rows carry `quantity` as an exact JSON number; JSON.parse would round it to a
// float. Quoting it first keeps its digits (a "quantity" inside a string is escaped, \"quantity\",
// and does not match).
const EXACT_NUMBERS = /"quantity":(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)/g;

/** JSON.parse, with every `quantity` number kept as its exact text. */
export function parseExact(text) {
  return JSON.parse(text.replace(EXACT_NUMBERS, '"quantity":"$1"'));
}

/**
 * GET `path` (same origin) with the caller's token: the response when it is a success, else an
 * ApiError with Tally's error code and message.
 */
export async function fetchWithToken(path, accept = "application/json") {
  const token = session.token();
  if (!token) {
    throw new ApiError(401, "MissingCredentials", "not signed in");
  }
  let response;
  try {
    response = await fetch(path, {
      headers: { Authorization: `Bearer ${token}`, Accept: accept },
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, "NetworkError", `Tally did not answer: ${error.message}`);
  }
  if (!response.ok) {
    const text = await response.text();
    let code = `HTTP${response.status}`;
    let message = text || response.statusText;
    try {
      const body = JSON.parse(text);
      code = body.error.code;
      message = body.error.message;
    } catch {
      // Not Tally's error body (a proxy's page, say): keep the text as it came.
    }
    throw new ApiError(response.status, code, message);
  }
  return response;
}

/** GET `path` (same origin) with the caller's token; the parsed JSON, or an ApiError. */
export async function get(path) {
  const response = await fetchWithToken(path);
  return parseExact(await response.text());
}

/** Every item of a paged Tally listing: `key` of each page, following `nextPageToken`. */
export async function all(path, key) {
  const items = [];
  let token = "";
  do {
    const separator = path.includes("?") ? "&" : "?";
    const page = await get(token ? `${path}${separator}pageToken=${encodeURIComponent(token)}` : path);
    items.push(...page[key]);
    token = page.nextPageToken;
  } while (token);
  return items;
}

/** Every row of an Azure listing, following `nextLink` (its path and query: same origin). */
export async function allAzure(path) {
  const rows = [];
  let next = path;
  while (next) {
    const page = await get(next);
    rows.push(...page.value);
    next = page.nextLink ? relative(page.nextLink) : null;
  }
  return rows;
}

function relative(link) {
  const url = new URL(link, location.href);
  return url.pathname + url.search;
}
