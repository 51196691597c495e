// REST client of the workspace. The session is the HttpOnly `sb_session` cookie set by
// login; JavaScript never sees the token. Every failure becomes an ApiError carrying the
// server's stable code (docs/errors.md) and its message.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Called with the error when the server says the session is gone (the shell shows login).
let onSessionLost = () => {};
export function setSessionLostHandler(handler) {
  onSessionLost = handler;
}

export async function request(method, path, body) {
  const init = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (_) {
    throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection and try again.');
  }
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  const payload = type.includes('json') ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) {
    const code = payload && payload.code ? payload.code : 'http_' + response.status;
    const message = payload && payload.message ? payload.message : 'The server answered ' + response.status + '.';
    const error = new ApiError(response.status, code, message);
    if (response.status === 401 && path !== '/api/v1/auth/login') onSessionLost(error);
    throw error;
  }
  return payload;
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body ?? {});
export const patch = (path, body) => request('PATCH', path, body);
export const put = (path, body) => request('PUT', path, body);
export const del = (path) => request('DELETE', path);

// Builds a query string from an object, skipping null/undefined/'' values.
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? '?' + text : '';
}
