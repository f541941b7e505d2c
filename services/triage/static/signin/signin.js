// What the signed-in pages share: the buyer page (services/notify/static/buyer.js) and the
// operator console (services/triage/static/console.js) import it. The page helpers, the
// client of the page's crypto worker, and the sign-in.
//
// This folder (services/notify/static/signin/) is the source. Triage serves a byte-for-byte
// copy, made by scripts/vendor-js.sh --copies and checked by tests/unit/test_vendored_js.py,
// so edit it here only.
//
// Sign-in: the OAuth 2.0 authorization code flow with PKCE (S256) on the public client named
// in the page, in a window of its own. The page never navigates away, so the PKCE verifier and
// then the tokens stay in its memory, and nothing needs storing. The window comes back to the
// page's signed-in path, and signed-in.js there hands the code over a BroadcastChannel of this
// origin, named in the page (<body data-sign-in-channel>). This module checks the state,
// redeems the code at Keycloak's token endpoint and closes the window. Tokens are refreshed in
// memory before they expire. No cookie, nothing stored: every request (fetchJson) goes
// without credentials, cache or referrer.

const REFRESH_MARGIN_S = 60; // refresh the access token this long before it expires

export const $ = (id) => document.getElementById(id);
export const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
export const messages = JSON.parse($("messages").textContent);

/** A refusal to show: `key` names one of the page's messages, `values` fill it in. */
export class Refusal extends Error {
  constructor(key, values = {}) {
    super(key);
    this.key = key;
    this.values = values;
  }
}

export function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

export function say(element, key, values = {}) {
  element.textContent = key ? fill(messages[key] || messages.network, values) : "";
}

export function element(tag, text, className) {
  const made = document.createElement(tag);
  if (text !== undefined && text !== null) made.textContent = text;
  if (className) made.className = className;
  return made;
}

/** One row of a `<dl class="fields">`: the page's label `field-<name>`, then the value. */
export function field(name, value) {
  const row = element("div");
  row.dataset.field = name;
  row.append(element("dt", messages[`field-${name}`]), element("dd", value));
  return row;
}

export function when(iso) {
  const date = new Date(iso);
  if (typeof iso !== "string" || Number.isNaN(date.getTime())) return String(iso);
  return new Intl.DateTimeFormat(document.documentElement.lang, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    timeZone: "UTC", // the services write UTC times: shown as such, wherever the reader is
    timeZoneName: "short",
  }).format(date);
}

/** `fetch(url, init)` as every request of these pages goes: no cookie, nothing cached, no
 * referrer. Resolves with the response and its JSON (null when the body is not JSON), or
 * rejects with Refusal("network") when there is no answer at all. */
export async function fetchJson(url, init = {}) {
  let response;
  try {
    response = await fetch(url, { ...init, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" });
  } catch {
    throw new Refusal("network");
  }
  const answer = await response.json().catch(() => null);
  return { response, answer };
}

// --- the crypto worker -------------------------------------------------------------------

/** The client of the page's crypto worker at `url`: `call(op, args)` resolves with its result
 * or rejects with an Error carrying the worker's `reason`; `stop()` ends it and whatever it
 * held. */
export function cryptoWorker(url) {
  let worker = null;
  let nextRequest = 0;
  const pending = new Map();

  function failAll() {
    for (const request of pending.values()) request.reject(new Refusal("network"));
    pending.clear();
  }

  function start() {
    if (worker) return;
    worker = new Worker(url, { type: "module" });
    worker.onmessage = ({ data }) => {
      const request = pending.get(data.id);
      pending.delete(data.id);
      if (data.ok) request.resolve(data.result);
      else request.reject(Object.assign(new Error(data.message), { reason: data.reason }));
    };
    worker.onerror = () => {
      failAll();
      worker = null;
    };
  }

  function call(op, args = {}) {
    start();
    nextRequest += 1;
    const id = nextRequest;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, op, ...args });
    });
  }

  function stop() {
    if (worker) worker.terminate();
    worker = null;
    failAll();
  }

  return { start, call, stop };
}

// --- sign-in (authorization code + PKCE, in a window of its own) --------------------------

function claimsOf(jwt) {
  const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")), (c) =>
    c.charCodeAt(0),
  );
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** The page's sign-in, its session in memory (`.session`: null when signed out, else
 * {accessToken, refreshToken, idToken, user, timer, ...what `accept` kept}).
 *
 * `accept(claims)` checks the access token's claims and returns what the page keeps of them,
 * or throws a Refusal (the account is not one this page serves). `worker` makes the PKCE
 * verifier and state. `onEnd()` runs when the session ends (a refresh refused, or `end()`). */
export function signInSession({ worker, accept, onEnd }) {
  const clientId = meta("hotline-client-id");
  const redirectUri = new URL(meta("hotline-signed-in-path"), location.origin).href;
  const oidc = `${meta("hotline-issuer")}/protocol/openid-connect`;
  const channelName = document.body.dataset.signInChannel; // as signed-in.js
  let session = null;

  /** POST the token endpoint (no cookie is sent or needed); the token answer, or a Refusal. */
  async function tokenRequest(parameters) {
    const { response, answer } = await fetchJson(`${oidc}/token`, {
      method: "POST",
      body: new URLSearchParams({ client_id: clientId, ...parameters }),
    });
    if (!response.ok || !answer || typeof answer.access_token !== "string") throw new Refusal("signin-failed");
    return answer;
  }

  function start(answer) {
    if (session) clearTimeout(session.timer);
    const claims = claimsOf(answer.access_token);
    const kept = accept(claims);
    const refreshIn = Math.max(10, Number(answer.expires_in || 300) - REFRESH_MARGIN_S);
    session = {
      accessToken: answer.access_token,
      refreshToken: answer.refresh_token || null,
      idToken: answer.id_token || (session && session.idToken) || null,
      user: claims.preferred_username || claims.sub,
      ...kept,
      timer: setTimeout(refresh, refreshIn * 1000),
    };
  }

  async function refresh() {
    if (!session || !session.refreshToken) return end();
    try {
      start(await tokenRequest({ grant_type: "refresh_token", refresh_token: session.refreshToken }));
    } catch {
      end();
    }
  }

  /** Drop the session and its refresh, quietly. */
  function forget() {
    if (session) clearTimeout(session.timer);
    session = null;
  }

  /** The session is over (expired, refused): the page says so. */
  function end() {
    forget();
    onEnd();
  }

  /** The sign-in window's answer for `state`, once signed-in.js hands it over. */
  function answerFor(state, popup) {
    return new Promise((resolve, reject) => {
      const channel = new BroadcastChannel(channelName);
      const watch = setInterval(() => {
        if (popup.closed) finish(() => reject(new Refusal("signin-cancelled")));
      }, 500);
      function finish(then) {
        clearInterval(watch);
        channel.close();
        then();
      }
      channel.onmessage = ({ data }) => {
        if (data && data.state === state) finish(() => resolve(data));
      };
    });
  }

  async function signIn() {
    // Opened at once, in the click, or the browser blocks it; it is sent to Keycloak below.
    const popup = window.open("", channelName, "popup,width=520,height=720");
    if (!popup) throw new Refusal("popup-blocked");
    say($("progress"), "signing-in");
    try {
      const { verifier, challenge, state } = await worker.call("pkce");
      const authorize = new URL(`${oidc}/auth`);
      authorize.search = new URLSearchParams({
        client_id: clientId,
        redirect_uri: redirectUri,
        response_type: "code",
        response_mode: "fragment",
        scope: "openid",
        state,
        code_challenge: challenge,
        code_challenge_method: "S256",
      }).toString();
      popup.location.href = authorize.href;
      const answer = await answerFor(state, popup);
      if (!answer.code) throw new Refusal("signin-failed");
      start(
        await tokenRequest({
          grant_type: "authorization_code",
          code: answer.code,
          redirect_uri: redirectUri,
          code_verifier: verifier,
        }),
      );
    } finally {
      popup.close();
      say($("progress"), "");
    }
  }

  /** Sign out at Keycloak too (its session ends, the next sign-in asks for the password),
   * coming back to `returnPath`; `forgetPage()` clears the page first. */
  function signOut(returnPath, forgetPage) {
    const done = new URL(`${oidc}/logout`);
    const parameters = {
      client_id: clientId,
      post_logout_redirect_uri: new URL(returnPath, location.origin).href,
    };
    if (session && session.idToken) parameters.id_token_hint = session.idToken;
    done.search = new URLSearchParams(parameters).toString();
    forget();
    forgetPage();
    location.assign(done.href);
  }

  return {
    get session() {
      return session;
    },
    signIn,
    signOut,
    forget,
    end,
  };
}
