// The sign-in window's last page. Keycloak sent it here with the answer in the URL fragment
// (response_mode=fragment: the code never reaches a server); this hands the answer to the
// console that opened the window, over a channel of this origin only, and takes it out of
// the address bar and history. The console checks the state, redeems the code with its PKCE
// verifier and closes this window. Nothing is stored.
const CHANNEL = "hotline-console-sign-in"; // as console.js

const answer = Object.fromEntries(new URLSearchParams(location.hash.slice(1)));
history.replaceState(null, "", location.pathname);
if (answer.state) {
  const channel = new BroadcastChannel(CHANNEL);
  channel.postMessage({ state: answer.state, code: answer.code || null, error: answer.error || null });
  channel.close();
}
