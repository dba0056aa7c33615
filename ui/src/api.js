// The components' HTTP client: bearer token, problem+json errors, one retry after a refresh.

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title || problem.message)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

export class Unauthorized extends ApiError {}
export class Forbidden extends ApiError {}

async function readProblem(response) {
  try {
    return await response.json();
  } catch {
    return {};
  }
}

// One refresh at a time per element: parallel requests that all get a 401 share it.
function refreshToken(host) {
  if (!host._refreshing) {
    host._refreshing = Promise.resolve()
      .then(() => host.tokenRefresh())
      .finally(() => {
        host._refreshing = null;
      });
  }
  return host._refreshing;
}

// `host` is the element: it holds apiBase, token and the optional tokenRefresh callback.
export async function request(host, method, path, { body, raw = false } = {}) {
  const send = (token) =>
    fetch(`${(host.apiBase || "").replace(/\/$/, "")}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token || ""}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const sent = host.token;
  let response = await send(sent);
  if (response.status === 401 && typeof host.tokenRefresh === "function") {
    // A token changed meanwhile (another request's refresh) is tried as it is; otherwise the
    // callback may hand back a fresh token (or set the property itself): try once more.
    if (host.token === sent) {
      const fresh = await refreshToken(host);
      if (typeof fresh === "string" && fresh) host.token = fresh;
    }
    if (host.token && host.token !== sent) response = await send(host.token);
  }
  if (response.ok) {
    if (raw) return response;
    return response.status === 204 ? null : response.json();
  }
  const problem = await readProblem(response);
  if (response.status === 401) throw new Unauthorized(401, problem);
  if (response.status === 403 && problem.type === "/problems/forbidden") {
    throw new Forbidden(403, problem);
  }
  throw new ApiError(response.status, problem);
}
