// The signed-in session: a rotating token pair kept fresh for as long as the page is open.
const REFRESH_AT = 0.8;  // refresh when this share of the access token's life has passed
const RETRY_MS = 2000;   // wait before retrying a refresh the gateway could not answer
// The refresh token survives a reload of this tab (sessionStorage), not other tabs: two
// tabs rotating one token would present a used one, which ends the whole session.
const STORED = "mercato.refreshToken";

let tokens = null;       // {accessToken, refreshToken, expiresIn}; null when signed out
let timer = null, refreshing = null;
const ended = [];

/** A problem+json answer, as an error with its status and stable code. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem ? `${problem.title}: ${problem.detail}` : `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code;
  }
}

/** One call to the gateway, with `token` if given; the JSON body (null for a 204). */
export async function call(method, path, body, token) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  const type = response.headers.get("Content-Type") || "";
  const data = response.status === 204 || !type.includes("json") ? null : await response.json();
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** A call as the signed-in user. A 401 means the access token ran out: refresh once, retry. */
export async function api(method, path, body) {
  if (!tokens) throw new ApiError(401, null);
  try {
    return await call(method, path, body, tokens.accessToken);
  } catch (err) {
    if (err.status !== 401) throw err;
    await refresh();
    return call(method, path, body, tokens.accessToken);
  }
}

/** The current access token (for a stream that sets its own headers). */
export const accessToken = () => tokens?.accessToken;
export const signedIn = () => tokens !== null;
/** `fn(message)` runs when the session ends without the user asking. */
export const onEnded = (fn) => ended.push(fn);

export async function signIn(email, password) {
  keep(await call("POST", "/v1/auth/login", { email, password }));
}

/** Resume the session a reload of this tab left behind; whether there was one. */
export async function restore() {
  const refreshToken = sessionStorage.getItem(STORED);
  if (!refreshToken) return false;
  tokens = { accessToken: null, refreshToken, expiresIn: 0 };
  try {
    await refresh();
    return true;
  } catch {
    return false;
  }
}

export async function signOut() {
  const refreshToken = tokens?.refreshToken;
  forget();
  if (refreshToken) await call("POST", "/v1/auth/logout", { refreshToken }).catch(() => {});
}

function keep(pair) {
  tokens = pair;
  sessionStorage.setItem(STORED, pair.refreshToken);
  schedule(pair.expiresIn * REFRESH_AT * 1000);
}

function forget() {
  tokens = null;
  clearTimeout(timer);
  sessionStorage.removeItem(STORED);
}

function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(() => refresh().catch(() => {}), ms);
}

/** One refresh at a time: refresh tokens rotate, and presenting a used one ends the session. */
export function refresh() {
  if (!tokens) return Promise.reject(new ApiError(401, null));
  refreshing ??= call("POST", "/v1/auth/refresh", { refreshToken: tokens.refreshToken })
    .then(keep, (err) => {
      if (err.status === 401) {
        forget();
        ended.forEach((fn) => fn("Your session has ended: sign in again."));
      } else {
        schedule(RETRY_MS);  // the gateway is unreachable or busy: the pair still holds
      }
      throw err;
    })
    .finally(() => { refreshing = null; });
  return refreshing;
}
