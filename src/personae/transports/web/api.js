// The REST API with the signed-in key. The key lives in sessionStorage: it is gone when the
// tab closes and is never written anywhere else.

const KEY = "personae.apiKey";

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const auth = {
  signedIn: () => sessionStorage.getItem(KEY) !== null,
  key: () => sessionStorage.getItem(KEY) ?? "",
  signIn: (key) => sessionStorage.setItem(KEY, key.trim()),
  signOut: () => sessionStorage.clear(),
};

export async function api(path, { method = "GET", json, form } = {}) {
  const headers = {};
  if (auth.key()) headers.Authorization = `Bearer ${auth.key()}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser sets the multipart boundary
  }
  const response = await fetch(path, { method, headers, body });
  const text = await response.text();
  const data = text && response.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text;
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    throw new ApiError(response.status, error.message || `${response.status} ${response.statusText}`, error.code);
  }
  return data;
}

// A binary resource (an avatar, an exported card) fetched with the key, as a blob: URL that
// an <img> or a download link can use (neither can send the Authorization header itself).
const blobs = new Map();

export async function blobUrl(path, { cache = true } = {}) {
  if (cache && blobs.has(path)) return blobs.get(path);
  const headers = auth.key() ? { Authorization: `Bearer ${auth.key()}` } : {};
  const response = await fetch(path, { headers });
  if (!response.ok) throw new ApiError(response.status, `${response.status} ${response.statusText}`);
  const url = URL.createObjectURL(await response.blob());
  if (cache) blobs.set(path, url);
  return url;
}

// Who the signed-in key is: {user, role, tenant, admin}; a refused key throws (401).
export const whoami = () => api("/ui/whoami");

// Signs in with ``key`` if the server accepts it; answers who it is.
export async function signIn(key) {
  auth.signIn(key);
  try {
    return await whoami();
  } catch (error) {
    auth.signOut();
    throw error;
  }
}

export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12)); // randomUUID needs a secure context
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
