// Tiny JSON client for /api/v1. Errors: the server answers {"code","message","field"?,"reason"?}
// (older shape {"error":{...}} accepted too).
export class ApiError extends Error {
  constructor(status, code, message, extra = {}) {
    super(message || code || String(status));
    this.name = 'ApiError';
    this.status = status;
    this.code = code || 'http_' + status;
    this.field = extra.field;
    this.reason = extra.reason;
    this.body = extra.body;
  }
}

export async function api(path, { method = 'GET', body, token, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = 'Bearer ' + token;
  let res;
  try {
    res = await fetch('/api/v1' + (path.startsWith('/') ? path : '/' + path), {
      method, headers, signal, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', e && e.message);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = null; } }
  if (!res.ok) {
    const e = (data && (data.error && typeof data.error === 'object' ? data.error : data)) || {};
    throw new ApiError(res.status, e.code, e.message || res.statusText, { field: e.field, reason: e.reason, body: data });
  }
  return data;
}
