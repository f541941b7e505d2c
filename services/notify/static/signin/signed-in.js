// The sign-in window's last page, for the buyer page and the operator console alike. Keycloak
// sent it here with the answer in the URL fragment (response_mode=fragment: the code never
// reaches a server); this hands the answer to the page that opened the window, over the
// channel of this origin that the page names (<body data-sign-in-channel>, as signin.js reads
// it), and takes it out of the address bar and history. The opener checks the state, redeems
// the code with its PKCE verifier and closes this window. Nothing is stored.
//
// The source is services/notify/static/signin/; triage serves a copy (scripts/vendor-js.sh).
const channelName = document.body.dataset.signInChannel;

const answer = Object.fromEntries(new URLSearchParams(location.hash.slice(1)));
history.replaceState(null, "", location.pathname);
if (answer.state) {
  const channel = new BroadcastChannel(channelName);
  channel.postMessage({ state: answer.state, code: answer.code || null, error: answer.error || null });
  channel.close();
}
